package verify

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/verify/capture"
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

func frame(src string, dir capture.Direction, vids ...uint16) *capture.Frame {
	f := &capture.Frame{Src: capture.MACFrom(hw(src)), Dst: capture.MACFrom(ethernetBroadcast), Dir: dir, EtherType: capture.EtherTypeARP}
	for _, v := range vids {
		f.VLANs = append(f.VLANs, capture.Tag{TPID: capture.EtherType8021Q, VID: v})
	}
	return f
}

func TestCheckVLANTags(t *testing.T) {
	exp := Model(checkTopo())
	good := []*capture.Frame{
		frame("02:00:00:00:00:0a", capture.DirOutgoing, 10),
		frame("02:00:00:00:00:01", capture.DirOutgoing, 10), // the VLAN link
		frame("02:00:00:00:00:01", capture.DirOutgoing),     // the host, same MAC, untagged
		frame("02:00:00:00:00:0b", capture.DirOutgoing),
	}
	if c := checkVLANTags(exp, &evidence{exp: exp, frames: good, captured: true}); !c.OK {
		t.Fatalf("good frames failed: %s", c.Detail)
	}
	leak := append(good, frame("02:00:00:00:00:0a", capture.DirOutgoing))
	c := checkVLANTags(exp, &evidence{exp: exp, frames: leak, captured: true})
	if c.OK || !strings.Contains(c.Detail, "untagged frame from 02:00:00:00:00:0a leaked") {
		t.Fatalf("leak not caught: %+v", c)
	}
	wrong := append(good, frame("02:00:00:00:00:0a", capture.DirOutgoing, 20))
	c = checkVLANTags(exp, &evidence{exp: exp, frames: wrong, captured: true})
	if c.OK || !strings.Contains(c.Detail, "802.1Q 20") {
		t.Fatalf("wrong VID not caught: %+v", c)
	}
	if c := checkVLANTags(exp, &evidence{exp: exp}); !c.OK || !c.Skipped {
		t.Fatalf("no capture: %+v", c)
	}
	// Nothing tagged to check is a skip, never a pass.
	untagged := checkTopo()
	untagged.Endpoints = slices.DeleteFunc(untagged.Endpoints, func(ep Endpoint) bool { return len(ep.VLANs) > 0 || ep.Kind == KindVLAN })
	untagged.VLANLinks = nil
	ue := Model(untagged)
	if c := checkVLANTags(ue, &evidence{exp: ue, frames: good, captured: true}); !c.OK || !c.Skipped {
		t.Fatalf("no VLAN endpoint: %+v, want a skip", c)
	}
}

// A reachability check over pairs none of which was probed is a skip, not
// a pass; --min-pairs fails a run that probed fewer than asked.
func TestCheckNothingProbed(t *testing.T) {
	pairs := []PairResult{{From: "a/eth0", To: "b/eth0", Expected: Reachable, Observed: NotProbed, OK: true}}
	if c := checkReachability(pairs); !c.OK || !c.Skipped {
		t.Fatalf("nothing probed: %+v, want a skip", c)
	}
	pairs[0].Observed = Reachable
	if c := checkReachability(pairs); !c.OK || c.Skipped {
		t.Fatalf("one pair probed: %+v, want a pass", c)
	}
	if c := checkMinPairs(1, 2); c.OK || !strings.Contains(c.Detail, "only 1") {
		t.Fatalf("min-pairs 2 with 1 probed: %+v", c)
	}
	if c := checkMinPairs(2, 2); !c.OK {
		t.Fatalf("min-pairs 2 with 2 probed: %+v", c)
	}
}

func TestCheckMACSources(t *testing.T) {
	exp := Model(checkTopo())
	good := []*capture.Frame{
		frame("02:00:00:00:00:0b", capture.DirOutgoing),
		frame("02:00:00:00:00:0b", capture.DirOtherHost), // reflected
		frame("02:00:00:00:00:77", capture.DirBroadcast), // someone beyond the switch
	}
	if c := checkMACSources(exp, &evidence{exp: exp, frames: good, captured: true}); !c.OK {
		t.Fatalf("good frames failed: %s", c.Detail)
	}
	stranger := append(good, frame("02:00:00:00:00:66", capture.DirOutgoing))
	c := checkMACSources(exp, &evidence{exp: exp, frames: stranger, captured: true})
	if c.OK || !strings.Contains(c.Detail, "no endpoint owns") {
		t.Fatalf("unknown sender not caught: %+v", c)
	}
	tagged := append(good, frame("02:00:00:00:00:0b", capture.DirOutgoing, 10))
	c = checkMACSources(exp, &evidence{exp: exp, frames: tagged, captured: true})
	if c.OK || !strings.Contains(c.Detail, "sends untagged") {
		t.Fatalf("untagged owner seen tagged not caught: %+v", c)
	}
	// Another station behind the switch sends from :0b: received, and
	// not the same bytes as anything the parent sent.
	imp := frame("02:00:00:00:00:0b", capture.DirBroadcast)
	imp.Data = []byte("another station's frame")
	c = checkMACSources(exp, &evidence{exp: exp, frames: append(good, imp), captured: true})
	if c.OK || !strings.Contains(c.Detail, "another station uses this MAC") {
		t.Fatalf("station sending from an endpoint's MAC not caught: %+v", c)
	}
	// A bridge-mode sibling's unicast shows as received: not evidence.
	sib := frame("02:00:00:00:00:0b", capture.DirOtherHost)
	sib.Dst, sib.Data = capture.MACFrom(hw("02:00:00:00:00:0a")), []byte("sibling")
	if c := checkMACSources(exp, &evidence{exp: exp, frames: append(good, sib), captured: true}); !c.OK {
		t.Fatalf("a sibling's unicast taken for another station: %s", c.Detail)
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
	ev.echo[echoKey{id: 77}] = &wireCount{Out: 1, In: 1}
	if c := checkWire(exp, results, ev); !c.OK || c.Skipped {
		t.Fatalf("matching evidence: %+v", c)
	}
	ev.echo[echoKey{id: 77}] = &wireCount{Out: 1}
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
		{Parent: Parent{Name: "h0"}, Endpoints: []Endpoint{{Interface: "a", Kind: KindIPVlan, Mode: "l4"}}},
		{Parent: Parent{Name: "h0"}, Endpoints: []Endpoint{{Interface: "a", Kind: KindIPVlan, IPVlanFlag: "hub"}}},
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
	err := bad[4].Validate()
	if want := `endpoint a has Mode "l4": unknown ipvlan mode: use l2, l3 or l3s`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("bad ipvlan mode: %v, want %q", err, want)
	}
}

// A VLAN link that is no endpoint (a lower without an address) sends its
// own frames — IPv6 router and neighbour solicitations — with the parent's
// MAC and its tag: mac-sources and vlan-tags credit them to it, and only to
// the stacks of VLAN links the topology has.
func TestCheckMACSourcesVLANLink(t *testing.T) {
	parent := "02:00:00:00:00:01"
	topo := checkTopo()
	topo.Endpoints = topo.Endpoints[2:] // the host and an untagged macvlan
	solicit := []*capture.Frame{frame(parent, capture.DirOutgoing, 30)}
	exp := Model(topo)
	if c := checkMACSources(exp, &evidence{exp: exp, frames: solicit, captured: true}); c.OK {
		t.Fatalf("parent MAC tagged 30 without a VLAN link 30 passed: %+v", c)
	}
	topo.VLANLinks = []Endpoint{{NetNS: "p", Interface: "h0.30", Kind: KindVLAN, VLANs: []VLANTag{{ID: 30, Protocol: 0x8100}}}}
	exp = Model(topo)
	var credited bool
	for _, s := range exp.Sources {
		if s.MAC == capture.MACFrom(hw(parent)) && s.Stack == capture.StackOf([]capture.Tag{{TPID: capture.EtherType8021Q, VID: 30}}) && s.Owner == "p/h0.30" {
			credited = true
		}
	}
	if !credited {
		t.Errorf("sources %v do not credit the parent MAC tagged 30 to p/h0.30", exp.Sources)
	}
	for _, check := range []func(*Expectation, *evidence) CheckResult{checkMACSources, checkVLANTags} {
		if c := check(exp, &evidence{exp: exp, frames: solicit, captured: true}); !c.OK {
			t.Errorf("the VLAN link's own frame flagged: %+v", c)
		}
	}
	// With a tagged owner, a wrong stack is vlan-tags' to report.
	other := []*capture.Frame{frame(parent, capture.DirOutgoing, 40)}
	if c := checkVLANTags(exp, &evidence{exp: exp, frames: other, captured: true}); c.OK {
		t.Errorf("parent MAC tagged 40 (no VLAN link 40) passed: %+v", c)
	}
}

// A passthru child's lower must be promiscuous, unless the child has
// nopromisc (macvlan_open); other topologies have no such check.
func TestCheckPromisc(t *testing.T) {
	topo := modelTopo("passthru", "bridge", false)
	topo.Endpoints = []Endpoint{topo.Endpoints[0]}
	exp := Model(topo)
	if len(exp.Promisc) != 1 || exp.Promisc[0].Port != "h0" || !exp.Promisc[0].Want {
		t.Fatalf("model promisc rules %+v, want h0 promiscuous", exp.Promisc)
	}
	if c := checkPromisc(exp, map[string]promiscReading{"h0": {Count: 1}}); !c.OK {
		t.Errorf("promiscuous h0 failed: %+v", c)
	}
	if c := checkPromisc(exp, map[string]promiscReading{"h0": {Count: 0}}); c.OK || !strings.Contains(c.Detail, "h0 is not promiscuous") {
		t.Errorf("non-promiscuous h0 passed: %+v", c)
	}
	if c := checkPromisc(exp, nil); c.OK {
		t.Errorf("unread promiscuity passed: %+v", c)
	}
	topo.Endpoints[0].NoPromisc = true
	exp = Model(topo)
	if len(exp.Promisc) != 1 || exp.Promisc[0].Want {
		t.Fatalf("nopromisc: rules %+v, want h0 not promiscuous", exp.Promisc)
	}
	if c := checkPromisc(exp, map[string]promiscReading{"h0": {Count: 0}}); !c.OK {
		t.Errorf("nopromisc, h0 not promiscuous failed: %+v", c)
	}
	if c := checkPromisc(exp, map[string]promiscReading{"h0": {Count: 1}}); c.OK {
		t.Errorf("nopromisc, h0 promiscuous passed: %+v", c)
	}
	exp = Model(modelTopo("bridge", "vepa", true))
	if len(exp.Promisc) != 0 {
		t.Errorf("no passthru child, yet promisc rules %+v", exp.Promisc)
	}
	results := make([]probeResult, len(exp.Pairs))
	ev := &evidence{exp: exp}
	for _, c := range runChecks(exp, comparePairs(exp, results, ev), results, ev) {
		if c.Name == CheckPromisc {
			t.Errorf("passthru-promisc ran without a passthru child: %+v", c)
		}
	}
}
