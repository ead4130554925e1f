package verify

import (
	"net/netip"
	"strings"
	"testing"
)

// checkTopo: host on h0 (MAC :01), a VLAN link h0.10 sharing that MAC, a
// macvlan on h0.10 (:0a, tagged 10) and a macvlan on h0 (:0b, untagged).
func checkTopo() Topology {
	yes := true
	v10 := []VLANTag{{ID: 10, Protocol: 0x8100}}
	return Topology{
		Parent: Parent{Name: "h0", NetNS: "p", MAC: hw("02:00:00:00:00:01"), Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		Switch: Switch{Reflects: &yes},
		Endpoints: []Endpoint{
			{NetNS: "p", Interface: "h0.10", Kind: KindVLAN, VLANs: v10, MAC: hw("02:00:00:00:00:01"), Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}},
			{NetNS: "na", Interface: "a0", Kind: KindMacvlan, Mode: "bridge", Lower: "h0.10", VLANs: v10, MAC: hw("02:00:00:00:00:0a"), Addrs: []netip.Prefix{netip.MustParsePrefix("10.1.0.10/24")}},
			{NetNS: "nb", Interface: "b0", Kind: KindMacvlan, Mode: "vepa", MAC: hw("02:00:00:00:00:0b"), Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.11/24")}},
		},
	}
}

func frame(src string, dir Direction, vids ...uint16) *Frame {
	f := &Frame{Src: MACFrom(hw(src)), Dst: MACFrom(ethernetBroadcast), Dir: dir, EtherType: EtherTypeARP}
	for _, v := range vids {
		f.VLANs = append(f.VLANs, Tag{TPID: EtherType8021Q, VID: v})
	}
	return f
}

func TestCheckVLANTags(t *testing.T) {
	exp := Model(checkTopo())
	good := []*Frame{
		frame("02:00:00:00:00:0a", DirOutgoing, 10),
		frame("02:00:00:00:00:01", DirOutgoing, 10), // the VLAN link
		frame("02:00:00:00:00:01", DirOutgoing),     // the host, same MAC, untagged
		frame("02:00:00:00:00:0b", DirOutgoing),
	}
	if c := checkVLANTags(exp, &evidence{exp: exp, frames: good, captured: true}); !c.OK {
		t.Fatalf("good frames failed: %s", c.Detail)
	}
	leak := append(good, frame("02:00:00:00:00:0a", DirOutgoing))
	c := checkVLANTags(exp, &evidence{exp: exp, frames: leak, captured: true})
	if c.OK || !strings.Contains(c.Detail, "untagged frame from 02:00:00:00:00:0a leaked") {
		t.Fatalf("leak not caught: %+v", c)
	}
	wrong := append(good, frame("02:00:00:00:00:0a", DirOutgoing, 20))
	c = checkVLANTags(exp, &evidence{exp: exp, frames: wrong, captured: true})
	if c.OK || !strings.Contains(c.Detail, "802.1Q 20") {
		t.Fatalf("wrong VID not caught: %+v", c)
	}
	if c := checkVLANTags(exp, &evidence{exp: exp}); !c.OK || !c.Skipped {
		t.Fatalf("no capture: %+v", c)
	}
}

func TestCheckMACSources(t *testing.T) {
	exp := Model(checkTopo())
	good := []*Frame{
		frame("02:00:00:00:00:0b", DirOutgoing),
		frame("02:00:00:00:00:0b", DirOtherHost), // reflected
		frame("02:00:00:00:00:77", DirBroadcast), // someone beyond the switch
	}
	if c := checkMACSources(exp, &evidence{exp: exp, frames: good, captured: true}); !c.OK {
		t.Fatalf("good frames failed: %s", c.Detail)
	}
	stranger := append(good, frame("02:00:00:00:00:66", DirOutgoing))
	c := checkMACSources(exp, &evidence{exp: exp, frames: stranger, captured: true})
	if c.OK || !strings.Contains(c.Detail, "no endpoint owns") {
		t.Fatalf("unknown sender not caught: %+v", c)
	}
	tagged := append(good, frame("02:00:00:00:00:0b", DirOutgoing, 10))
	c = checkMACSources(exp, &evidence{exp: exp, frames: tagged, captured: true})
	if c.OK || !strings.Contains(c.Detail, "sends untagged") {
		t.Fatalf("untagged owner seen tagged not caught: %+v", c)
	}
	// Two children with one MAC.
	topo := checkTopo()
	topo.Endpoints[2].MAC = hw("02:00:00:00:00:0c")
	topo.Endpoints = append(topo.Endpoints, Endpoint{NetNS: "nc", Interface: "c0", Kind: KindMacvlan, Mode: "vepa", MAC: hw("02:00:00:00:00:0c")})
	exp = Model(topo)
	c = checkMACSources(exp, &evidence{exp: exp})
	if c.OK || !strings.Contains(c.Detail, "used by both") {
		t.Fatalf("duplicate MAC not caught: %+v", c)
	}
}

func TestCheckReachabilityAndIsolation(t *testing.T) {
	exp := Model(checkTopo())
	results := make([]probeResult, len(exp.Pairs))
	for i, p := range exp.Pairs {
		results[i] = probeResult{Observed: p.Reach}
	}
	pairs := comparePairs(exp, results, &evidence{exp: exp})
	if c := checkReachability(pairs); !c.OK {
		t.Fatalf("agreeing matrix failed: %s", c.Detail)
	}
	if c := checkIsolation(exp, pairs); !c.OK || c.Skipped {
		t.Fatalf("isolation: %+v", c)
	}
	// Flip host → b0 (a host↔macvlan cell).
	host := len(exp.Endpoints) - 1
	for i, p := range exp.Pairs {
		if p.From == host && p.To == 2 {
			results[i].Observed = Blocked
			results[i].Detail = "no ARP reply"
		}
	}
	pairs = comparePairs(exp, results, &evidence{exp: exp})
	if c := checkReachability(pairs); c.OK || !strings.Contains(c.Detail, "p/h0→nb/b0 expected reachable, observed blocked") {
		t.Fatalf("mismatch not reported: %+v", c)
	}
	if c := checkIsolation(exp, pairs); c.OK {
		t.Fatalf("isolation mismatch not reported: %+v", c)
	}
	// A probe error is a failure, not-probed is not.
	results[0].Observed = ProbeError
	pairs = comparePairs(exp, results, &evidence{exp: exp})
	if pairs[0].OK {
		t.Fatal("probe error counted as agreement")
	}
}

func TestCheckWire(t *testing.T) {
	exp := Model(checkTopo())
	// b0 (vepa) → host with the switch reflecting: echo out once, in once.
	host := len(exp.Endpoints) - 1
	var idx int
	for i, p := range exp.Pairs {
		if p.From == 2 && p.To == host {
			idx = i
		}
	}
	results := make([]probeResult, len(exp.Pairs))
	results[idx] = probeResult{Observed: Reachable, ICMPTried: true, ICMP: true, ICMPID: 77}
	ev := &evidence{exp: exp, captured: true}
	ev.index()
	ev.echo[77] = &wireCount{Out: 1, In: 1}
	if c := checkWire(exp, results, ev); !c.OK || c.Skipped {
		t.Fatalf("matching evidence: %+v", c)
	}
	ev.echo[77] = &wireCount{Out: 1}
	if c := checkWire(exp, results, ev); c.OK || !strings.Contains(c.Detail, "out 1 in 0, model says out 1 in 1") {
		t.Fatalf("missing reflection not caught: %+v", c)
	}
}

func TestValidate(t *testing.T) {
	bad := []Topology{
		{},
		{Parent: Parent{Name: "h0"}, Endpoints: []Endpoint{{Kind: KindMacvlan, Mode: "bridge"}}},
		{Parent: Parent{Name: "h0"}, Endpoints: []Endpoint{{Interface: "a", Kind: "tun"}}},
		{Parent: Parent{Name: "h0"}, Endpoints: []Endpoint{{Interface: "a", Kind: KindMacvlan, Mode: "hub"}}},
		{Parent: Parent{Name: "h0"}, Endpoints: []Endpoint{{Interface: "a", Kind: KindVLAN}, {Interface: "a", Kind: KindVLAN}}},
	}
	for i, topo := range bad {
		if err := topo.Validate(); err == nil {
			t.Errorf("%d: no error", i)
		}
	}
	if err := checkTopo().Validate(); err != nil {
		t.Fatal(err)
	}
}
