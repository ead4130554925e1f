package verify

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/verify/capture"
)

func hw(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// modelTopo builds a parent h0 with a host stack, two children of the given
// modes and one outside host.
func modelTopo(modeA, modeB string, reflects bool) Topology {
	return Topology{
		Parent: Parent{Name: "h0", NetNS: "p", MAC: hw("02:00:00:00:00:01"), Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		Switch: Switch{Reflects: &reflects},
		Endpoints: []Endpoint{
			{Name: "a", NetNS: "na", Interface: "a0", Kind: KindMacvlan, Mode: modeA, MAC: hw("02:00:00:00:00:0a"), Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.10/24")}},
			{Name: "b", NetNS: "nb", Interface: "b0", Kind: KindMacvlan, Mode: modeB, MAC: hw("02:00:00:00:00:0b"), Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.11/24")}},
			{Name: "out", NetNS: "sw", Interface: "o0", Kind: KindOutside, MAC: hw("02:00:00:00:00:0f"), Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.99/24")}},
		},
	}
}

// Indices in modelTopo's expectation: a 0, b 1, out 2, host 3 (appended).
const (
	iA, iB, iOut, iHost = 0, 1, 2, 3
)

func TestModelSiblings(t *testing.T) {
	R, B := Reachable, Blocked
	tests := []struct {
		a, b     string
		reflects bool
		ab, ba   Reach
		path     Path
		in, out  int // wire sightings of a→b
		why      string
	}{
		{"bridge", "bridge", false, R, R, PathLocal, 1, 0, "directly"},
		{"bridge", "bridge", true, R, R, PathLocal, 1, 0, "directly"},
		{"vepa", "vepa", false, B, B, PathNone, 0, 0, "does not reflect"},
		{"vepa", "vepa", true, R, R, PathReflected, 1, 1, "reflects"},
		{"private", "private", false, B, B, PathNone, 0, 0, "private mode drops frames from a sibling even when the switch reflects them"},
		{"private", "private", true, B, B, PathNone, 0, 0, "private mode drops frames from a sibling even when the switch reflects them"},
		{"private", "bridge", true, B, B, PathNone, 0, 0, "private mode"},
		{"private", "vepa", true, B, B, PathNone, 0, 0, "private mode"},
		{"bridge", "vepa", false, B, B, PathNone, 0, 0, "never talk inside the kernel"},
		{"bridge", "vepa", true, R, R, PathReflected, 1, 1, "through the switch"},
		{"source", "bridge", true, B, B, PathNone, 0, 0, "source-mode"},
		{"source", "vepa", false, B, B, PathNone, 0, 0, "source-mode"},
		{"passthru", "bridge", true, B, B, PathNone, 0, 0, "cannot exist"},
	}
	for _, tc := range tests {
		t.Run(tc.a+"-"+tc.b+map[bool]string{true: "-reflect", false: "-noreflect"}[tc.reflects], func(t *testing.T) {
			e := Model(modelTopo(tc.a, tc.b, tc.reflects))
			ab, ba := e.Pair(iA, iB), e.Pair(iB, iA)
			if ab.Reach != tc.ab || ba.Reach != tc.ba {
				t.Fatalf("a→b %v (%s), b→a %v (%s); want %v, %v", ab.Reach, ab.Why, ba.Reach, ba.Why, tc.ab, tc.ba)
			}
			if ab.Path != tc.path {
				t.Errorf("a→b path %v, want %v", ab.Path, tc.path)
			}
			if ab.Reach == Reachable && (ab.WireIn != tc.in || ab.WireOut != tc.out) {
				t.Errorf("a→b wire out %d in %d, want out %d in %d", ab.WireOut, ab.WireIn, tc.out, tc.in)
			}
			if !strings.Contains(ab.Why, tc.why) {
				t.Errorf("a→b why %q does not say %q", ab.Why, tc.why)
			}
		})
	}
}

func TestModelHostAndOutside(t *testing.T) {
	R, B := Reachable, Blocked
	tests := []struct {
		mode     string
		reflects bool
		toHost   Reach // child → host
		fromHost Reach // host → child
		toOut    Reach // child → outside
		fromOut  Reach // outside → child
		hostOut  Reach // host → outside
	}{
		{"bridge", false, B, B, R, R, R},
		{"bridge", true, R, R, R, R, R},
		{"vepa", false, B, B, R, R, R},
		{"vepa", true, R, R, R, R, R},
		{"private", false, B, B, R, R, R},
		// A private child's broadcast comes back to itself only, but the
		// host's broadcast is flooded to it like any outside sender's.
		{"private", true, B, R, R, R, R},
		{"passthru", false, B, B, R, R, B},
		{"passthru", true, B, B, R, R, B},
		// Source mode with no listed sources hears nobody.
		{"source", false, B, B, B, B, R},
		{"source", true, B, B, B, B, R},
	}
	for _, tc := range tests {
		name := tc.mode + map[bool]string{true: "-reflect", false: "-noreflect"}[tc.reflects]
		t.Run(name, func(t *testing.T) {
			// b is a bridge child that never matters here except passthru,
			// which must be alone: drop b.
			topo := modelTopo(tc.mode, "bridge", tc.reflects)
			topo.Endpoints = []Endpoint{topo.Endpoints[0], topo.Endpoints[2]}
			e := Model(topo)
			const a, out, host = 0, 1, 2
			if got := e.Endpoints[host].Kind; got != KindHost {
				t.Fatalf("endpoint 2 is %q, want the host stack appended", got)
			}
			for _, c := range []struct {
				name     string
				from, to int
				want     Reach
			}{
				{"child→host", a, host, tc.toHost},
				{"host→child", host, a, tc.fromHost},
				{"child→outside", a, out, tc.toOut},
				{"outside→child", out, a, tc.fromOut},
				{"host→outside", host, out, tc.hostOut},
			} {
				p := e.Pair(c.from, c.to)
				if p.Reach != c.want {
					t.Errorf("%s: %v (%s), want %v", c.name, p.Reach, p.Why, c.want)
				}
				if p.Why == "" {
					t.Errorf("%s: no reason", c.name)
				}
			}
		})
	}
}

func TestModelIsolationReason(t *testing.T) {
	e := Model(modelTopo("bridge", "bridge", false))
	p := e.Pair(iA, iHost)
	if p.Reach != Blocked || !strings.Contains(p.Why, "host-to-macvlan isolation") {
		t.Fatalf("child→host: %v %q", p.Reach, p.Why)
	}
	p = e.Pair(iHost, iA)
	if p.Reach != Blocked || !strings.Contains(p.Why, "host-to-macvlan isolation") {
		t.Fatalf("host→child: %v %q", p.Reach, p.Why)
	}
}

func TestModelSourceListed(t *testing.T) {
	topo := modelTopo("source", "vepa", true)
	topo.Endpoints[0].SourceMACs = []net.HardwareAddr{hw("02:00:00:00:00:0f"), hw("02:00:00:00:00:0b")}
	e := Model(topo)
	if p := e.Pair(iA, iOut); p.Reach != Reachable {
		t.Errorf("source→listed outside: %v %s", p.Reach, p.Why)
	}
	if p := e.Pair(iB, iA); p.Reach != Reachable {
		t.Errorf("listed vepa sibling→source: %v %s", p.Reach, p.Why)
	}
	if p := e.Pair(iA, iB); p.Reach != Blocked {
		t.Errorf("source→sibling: %v %s", p.Reach, p.Why)
	}
}

// Two source-mode siblings that list each other talk through a reflecting
// switch (macvlan_forward_source runs before the "forward to original
// port" of a source child's broadcast); one-sided lists or no reflection
// block.
func TestModelSourceSiblingsListed(t *testing.T) {
	macA, macB := hw("02:00:00:00:00:0a"), hw("02:00:00:00:00:0b")
	for _, tc := range []struct {
		name           string
		reflects       bool
		aLists, bLists bool
		ab, ba         Reach
	}{
		{"mutual/reflect", true, true, true, Reachable, Reachable},
		{"mutual/noreflect", false, true, true, Blocked, Blocked},
		{"b-lists-a/reflect", true, false, true, Blocked, Blocked},
		{"none/reflect", true, false, false, Blocked, Blocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topo := modelTopo("source", "source", tc.reflects)
			if tc.aLists {
				topo.Endpoints[0].SourceMACs = []net.HardwareAddr{macB}
			}
			if tc.bLists {
				topo.Endpoints[1].SourceMACs = []net.HardwareAddr{macA}
			}
			e := Model(topo)
			ab, ba := e.Pair(iA, iB), e.Pair(iB, iA)
			if ab.Reach != tc.ab || ba.Reach != tc.ba {
				t.Fatalf("a→b %v (%s), b→a %v (%s); want %v, %v", ab.Reach, ab.Why, ba.Reach, ba.Why, tc.ab, tc.ba)
			}
			if ab.Reach == Reachable && (ab.Path != PathReflected || ab.WireOut != 1 || ab.WireIn != 1) {
				t.Errorf("a→b path %v out %d in %d, want reflected out 1 in 1", ab.Path, ab.WireOut, ab.WireIn)
			}
		})
	}
	// A bridge child listed by a source sibling reaches it; the source
	// child's own broadcast never reaches the bridge child.
	topo := modelTopo("bridge", "source", true)
	topo.Endpoints[1].SourceMACs = []net.HardwareAddr{macA}
	e := Model(topo)
	if p := e.Pair(iA, iB); p.Reach != Reachable {
		t.Errorf("bridge→source listing it: %v %s", p.Reach, p.Why)
	}
	if p := e.Pair(iB, iA); p.Reach != Blocked {
		t.Errorf("source→bridge: %v %s", p.Reach, p.Why)
	}
}

func TestModelVLANs(t *testing.T) {
	yes := true
	v10 := []VLANTag{{ID: 10, Protocol: 0x8100}}
	v20 := []VLANTag{{ID: 20}}
	topo := Topology{
		Parent: Parent{Name: "h0", NetNS: "p", MAC: hw("02:00:00:00:00:01"), Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		Switch: Switch{Reflects: &yes, VLANs: []uint16{10}},
		Endpoints: []Endpoint{
			{NetNS: "p", Interface: "h0.10", Kind: KindVLAN, VLANs: v10, MAC: hw("02:00:00:00:00:01")},       // 0
			{NetNS: "n1", Interface: "m1", Kind: KindMacvlan, Mode: "bridge", Lower: "h0.10", VLANs: v10},    // 1
			{NetNS: "n2", Interface: "m2", Kind: KindMacvlan, Mode: "bridge", Lower: "h0.10", VLANs: v10},    // 2
			{NetNS: "n3", Interface: "m3", Kind: KindMacvlan, Mode: "bridge"},                                // 3 untagged, on h0
			{NetNS: "n4", Interface: "h0.20", Kind: KindVLAN, VLANs: v20},                                    // 4 not carried
			{NetNS: "sw", Interface: "o10", Kind: KindOutside, VLANs: v10},                                   // 5
			{NetNS: "sw", Interface: "o20", Kind: KindOutside, VLANs: []VLANTag{{ID: 20, Protocol: 0x8100}}}, // 6
		},
	}
	e := Model(topo)
	cells := []struct {
		from, to int
		want     Reach
		why      string
	}{
		{1, 2, Reachable, "bridge-mode siblings"},
		{1, 3, Blocked, "different VLANs"},
		{1, 7, Blocked, "different VLANs"}, // macvlan on h0.10 → host (untagged)
		{1, 0, Reachable, "reflects"},      // macvlan → its VLAN lower's stack, reflected
		{0, 1, Reachable, "reflects"},
		{1, 5, Reachable, "outside"},
		{4, 6, Blocked, "does not carry"},
		{0, 4, Blocked, "different VLANs"},
	}
	for _, c := range cells {
		p := e.Pair(c.from, c.to)
		if p.Reach != c.want || !strings.Contains(p.Why, c.why) {
			t.Errorf("%s → %s: %v %q, want %v containing %q", EndpointID(e.Endpoints[c.from]), EndpointID(e.Endpoints[c.to]), p.Reach, p.Why, c.want, c.why)
		}
	}
	// Sibling frames on a VLAN lower are handed across on h0.10, not h0.
	if p := e.Pair(1, 2); p.WireIn != 0 || p.WireOut != 0 {
		t.Errorf("siblings on h0.10 show on h0: out %d in %d", p.WireOut, p.WireIn)
	}
	// The VLAN link shares the parent's MAC with a different stack.
	var tagged bool
	for _, s := range e.Sources {
		if s.MAC == capture.MACFrom(hw("02:00:00:00:00:01")) && s.Stack.Len() == 1 {
			tagged = true
		}
	}
	if !tagged {
		t.Errorf("sources %v lack the parent MAC tagged 10", e.Sources)
	}
}

func TestModelPairsComplete(t *testing.T) {
	e := Model(modelTopo("bridge", "vepa", true))
	n := len(e.Endpoints)
	if len(e.Pairs) != n*(n-1) {
		t.Fatalf("%d pairs for %d endpoints", len(e.Pairs), n)
	}
	for i := range n {
		for j := range n {
			if i == j {
				if e.Pair(i, j) != nil {
					t.Fatalf("Pair(%d,%d) not nil", i, j)
				}
				continue
			}
			p := e.Pair(i, j)
			if p.From != i || p.To != j {
				t.Fatalf("Pair(%d,%d) = %d→%d", i, j, p.From, p.To)
			}
			if p.Reach != Reachable && p.Reach != Blocked {
				t.Fatalf("Pair(%d,%d) verdict %v", i, j, p.Reach)
			}
		}
	}
}

func TestModelUnknownReflection(t *testing.T) {
	topo := modelTopo("vepa", "vepa", false)
	topo.Switch.Reflects = nil
	e := Model(topo)
	if e.ReflectsKnown || e.SwitchReflects {
		t.Fatalf("known %v reflects %v", e.ReflectsKnown, e.SwitchReflects)
	}
	if p := e.Pair(iA, iB); p.Reach != Blocked {
		t.Fatalf("vepa siblings with unknown switch: %v", p.Reach)
	}
}

func TestModelPassthruSource(t *testing.T) {
	topo := modelTopo("passthru", "bridge", false)
	topo.Endpoints = []Endpoint{topo.Endpoints[0]}
	e := Model(topo)
	for _, s := range e.Sources {
		if s.Owner == "na/a0" && s.MAC != capture.MACFrom(topo.Parent.MAC) {
			t.Fatalf("passthru child allowed source %v, want the parent's MAC", s.MAC)
		}
	}
}

// The host stack beside a VLAN link in one namespace: Linux answers ARP for
// the host's address on the VLAN link too (weak host), and replies through
// the interface whose subnet holds the asker.
func TestModelWeakHost(t *testing.T) {
	no := false
	v10 := []VLANTag{{ID: 10}}
	pfx := netip.MustParsePrefix
	topo := Topology{
		Parent: Parent{Name: "h0", NetNS: "p", MAC: hw("02:00:00:00:00:01"), Addrs: []netip.Prefix{pfx("10.70.0.1/24")}},
		Switch: Switch{Reflects: &no},
		Endpoints: []Endpoint{
			{NetNS: "p", Interface: "h0.10", Kind: KindVLAN, VLANs: v10, Addrs: []netip.Prefix{pfx("10.10.0.1/24")}},                                   // 0
			{NetNS: "s", Interface: "eth0", Kind: KindOutside, VLANs: v10, Addrs: []netip.Prefix{pfx("10.10.0.99/24")}},                                // 1
			{NetNS: "n1", Interface: "m1", Kind: KindMacvlan, Mode: "bridge", Lower: "h0.10", VLANs: v10, Addrs: []netip.Prefix{pfx("10.10.0.11/24")}}, // 2
		},
	}
	e := Model(topo)
	const host = 3
	if p := e.Pair(1, host); p.Reach != Reachable || !strings.Contains(p.Why, "arp_ignore 0") {
		t.Fatalf("station on VLAN 10 → host address: %v %q", p.Reach, p.Why)
	}
	// IPv6 has no weak host for neighbour solicitations (ndisc_recv_ns
	// answers only for the receiving interface's addresses).
	if p := e.Pair(1, host); p.IPv6.Reach != Blocked {
		t.Fatalf("station on VLAN 10 → host address in IPv6: %v %q", p.IPv6.Reach, p.IPv6.Why)
	}
	// Without reflection the macvlan reaches neither h0.10 nor, through it,
	// the host.
	if p := e.Pair(2, host); p.Reach != Blocked {
		t.Fatalf("macvlan on h0.10 → host without reflection: %v %q", p.Reach, p.Why)
	}
	yes := true
	topo.Switch.Reflects = &yes
	e = Model(topo)
	if p := e.Pair(2, host); p.Reach != Reachable || !strings.Contains(p.Why, "h0.10") {
		t.Fatalf("macvlan on h0.10 → host with reflection: %v %q", p.Reach, p.Why)
	}
	// The host → station cell is the host's own interface's business.
	if p := e.Pair(host, 1); p.Reach != Blocked {
		t.Fatalf("host → station on VLAN 10: %v %q", p.Reach, p.Why)
	}
}

// The ipvlan rules the VM taught the model (TestModelMatchesKernelIPVlan):
// siblings by flag, the host stack only in L2 through a reflecting switch,
// the outside only in L2 (L3 ipvlans have no ARP).
func TestModelIPVlan(t *testing.T) {
	R, B := Reachable, Blocked
	for _, tc := range []struct {
		mode, flag           string
		reflects             bool
		sib, toHost, fromOut Reach
	}{
		{"l2", "bridge", false, R, B, R},
		{"l2", "bridge", true, R, R, R},
		{"l2", "private", false, B, B, R},
		{"l2", "private", true, B, R, R},
		{"l2", "vepa", false, B, B, R},
		{"l2", "vepa", true, R, R, R},
		{"l3", "bridge", true, R, B, B},
		{"l3", "private", true, B, B, B},
		{"l3", "vepa", true, B, B, B},
		{"", "", false, R, B, B}, // the kernel's default: L3, bridge
	} {
		t.Run(fmt.Sprintf("%s-%s-%v", tc.mode, tc.flag, tc.reflects), func(t *testing.T) {
			topo := modelTopo("", "", tc.reflects)
			for i := range 2 {
				topo.Endpoints[i].Kind, topo.Endpoints[i].Mode, topo.Endpoints[i].IPVlanFlag = KindIPVlan, tc.mode, tc.flag
			}
			e := Model(topo)
			for _, c := range []struct {
				name     string
				from, to int
				want     Reach
			}{
				{"a→b", iA, iB, tc.sib}, {"b→a", iB, iA, tc.sib},
				{"a→host", iA, iHost, tc.toHost}, {"host→a", iHost, iA, tc.toHost},
				{"out→a", iOut, iA, tc.fromOut}, {"a→out", iA, iOut, tc.fromOut},
			} {
				if p := e.Pair(c.from, c.to); p.Reach != c.want || p.Why == "" {
					t.Errorf("%s: %v (%s), want %v", c.name, p.Reach, p.Why, c.want)
				}
			}
			if p := e.Pair(iA, iB); tc.flag == "vepa" && p.Reach == Reachable && (p.Path != PathReflected || p.WireOut != 1 || p.WireIn != 1) {
				t.Errorf("vepa siblings: path %v out %d in %d, want reflected 1/1", p.Path, p.WireOut, p.WireIn)
			}
		})
	}
}

// TestModelHostShimAndSubnets: the host's replies leave through the
// interface its routing table picks. With a host shim whose route to the
// containers' range is more specific than the host's own subnet, a
// container reaches the host through the shim both ways (the README's
// --ip-range + --host-shim recipe); with the shim's route only as long as
// the host's connected route, the connected route wins (metric 0 against
// the shim's 50) and the replies go out of the parent, which the
// container cannot hear. Endpoints in different subnets have no route to
// each other: no L3 reach although their frames meet.
func TestModelHostShimAndSubnets(t *testing.T) {
	no := false
	pfx := netip.MustParsePrefix
	shimTopo := func(route string) Topology {
		return Topology{
			Parent: Parent{Name: "h0", NetNS: "p", MAC: hw("02:00:00:00:00:01"), Addrs: []netip.Prefix{pfx("10.0.10.5/24")}},
			Switch: Switch{Reflects: &no},
			Endpoints: []Endpoint{
				{Name: "shim", NetNS: "p", Interface: "vms-1", Kind: KindMacvlan, Mode: "bridge", MAC: hw("02:00:00:00:00:02"),
					Addrs: []netip.Prefix{pfx("10.0.10.128/32")}, Routes: []Route{{Dst: pfx(route), Metric: 50}}}, // 0
				{Name: "c1", NetNS: "c1", Interface: "eth0", Kind: KindMacvlan, Mode: "bridge", MAC: hw("02:00:00:00:00:0a"),
					Addrs: []netip.Prefix{pfx("10.0.10.129/24")}}, // 1
			},
		}
	}
	const shim, c1, host = 0, 1, 2
	e := Model(shimTopo("10.0.10.128/25"))
	// (host → c1 stays blocked: the host's probe is bound to the parent.)
	for _, p := range []*PairExpectation{e.Pair(c1, host), e.Pair(c1, shim), e.Pair(shim, c1)} {
		if p.Reach != Reachable {
			t.Errorf("with --ip-range: %s → %s = %v (%s), want reachable through the shim", e.Endpoints[p.From].Name, e.Endpoints[p.To].Name, p.Reach, p.Why)
		}
	}
	if p := e.Pair(c1, host); !strings.Contains(p.Why, "vms-1") {
		t.Errorf("c1 → host: %q does not say the shim carries it", p.Why)
	}
	e = Model(shimTopo("10.0.10.0/24"))
	if p := e.Pair(c1, host); p.Reach != Blocked {
		t.Errorf("shim route as long as the connected one: c1 → host = %v (%s), want blocked", p.Reach, p.Why)
	}

	two := Topology{
		Parent: Parent{Name: "h0", NetNS: "p", MAC: hw("02:00:00:00:00:01")},
		Switch: Switch{Reflects: &no},
		Endpoints: []Endpoint{
			{Name: "a", NetNS: "na", Interface: "eth0", Kind: KindMacvlan, Mode: "bridge", MAC: hw("02:00:00:00:00:0a"), Addrs: []netip.Prefix{pfx("10.1.0.2/24")}},
			{Name: "b", NetNS: "nb", Interface: "eth0", Kind: KindMacvlan, Mode: "bridge", MAC: hw("02:00:00:00:00:0b"), Addrs: []netip.Prefix{pfx("10.2.0.2/24")}},
		},
	}
	e = Model(two)
	for _, p := range []*PairExpectation{e.Pair(0, 1), e.Pair(1, 0)} {
		if p.Reach != Blocked || !strings.Contains(p.Why, "no route back") {
			t.Errorf("different subnets: %d → %d = %v (%s), want blocked: no route", p.From, p.To, p.Reach, p.Why)
		}
	}
}
