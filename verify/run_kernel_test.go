package verify

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv"
	"github.com/vmlink/vmlink/verify/capture"
)

// kernelLab is a parent in its own namespace, wired by a veth to a switch
// namespace holding a Linux bridge (testenv.NewParent: the parent's port
// with hairpin on or off) and an outside station on the same bridge in a
// namespace of its own. Children are added per case.
//
// The outside station must not live in the switch's namespace: there, br0
// would answer ARP for the station's address with its own MAC (arp_ignore 0
// answers for any local address on any interface), and the host's echo
// replies would go to the bridge instead of the station.
type kernelLab struct {
	p                   *testenv.Parent
	out                 *testenv.Endpoint
	parentMAC, outMAC   net.HardwareAddr
	hostAddr, outAddr   netip.Prefix
	hostAddr6, outAddr6 netip.Prefix // newKernelLab6 only
}

func (l *kernelLab) childAddr(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, 0, byte(10 + i)}), 24)
}

func (l *kernelLab) childMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0, 0, 0, 0x02, byte(i)}
}

// quietIPv6 turns IPv6 off in a namespace: the checks cope with IPv6
// neighbour discovery, but fewer frames make quieter failure logs.
func quietIPv6(t *testing.T, ns *testenv.NetNS) {
	t.Helper()
	for _, k := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
		if err := ns.WriteSysctl(k, "1"); err != nil {
			t.Fatalf("%s in %s: %v", k, ns.Name(), err)
		}
	}
}

func newKernelLab(t *testing.T) *kernelLab {
	testenv.Require(t, testenv.FeatureMacvlan, testenv.FeatureBridge, testenv.FeatureIPRoute2)
	l := &kernelLab{
		parentMAC: hw("02:00:00:00:01:01"),
		outMAC:    hw("02:00:00:00:01:99"),
		hostAddr:  netip.MustParsePrefix("10.77.0.1/24"),
		outAddr:   netip.MustParsePrefix("10.77.0.99/24"),
	}
	l.p = testenv.NewParent(t, testenv.ParentOptions{Name: "h0", MAC: l.parentMAC, Addrs: []netip.Prefix{l.hostAddr}})
	l.out = l.p.Switch.Attach(t, testenv.EndpointOptions{MAC: l.outMAC, Addrs: []netip.Prefix{l.outAddr}})
	for _, ns := range []*testenv.NetNS{l.p.Host, l.p.Switch.NS, l.out.NetNS} {
		quietIPv6(t, ns)
	}
	return l
}

func (l *kernelLab) hairpin(t *testing.T, on bool) {
	t.Helper()
	if err := l.p.Switch.SetHairpin(on); err != nil {
		t.Fatal(err)
	}
}

// addChild creates macvlan c<i> on the parent in mode, moves it into a new
// namespace (removed when t ends, the macvlan deleted first so the parent is
// free for the next case) and gives it an address. Source-mode children
// list the outside station's and the parent's MACs, and extra.
func (l *kernelLab) addChild(t *testing.T, i int, mode string, extra ...net.HardwareAddr) Endpoint {
	t.Helper()
	ns := testenv.NewEndpoint(t)
	quietIPv6(t, ns.NetNS)
	name := fmt.Sprintf("c%d", i)
	mac := l.childMAC(i)
	args := []string{"link", "add", name, "link", l.p.Name}
	noPromisc := false
	if m, ok := strings.CutSuffix(mode, "-nopromisc"); ok {
		mode, noPromisc = m, true
	}
	if mode != "passthru" {
		args = append(args, "address", mac.String())
	} else {
		mac = l.parentMAC
	}
	args = append(args, "type", "macvlan", "mode", mode)
	if noPromisc {
		args = append(args, "nopromisc")
	}
	l.p.Host.Run(t, "ip", args...)
	ep := Endpoint{Name: name, NetNS: ns.Name(), Interface: name, Kind: KindMacvlan, Mode: mode, NoPromisc: noPromisc, MAC: mac, Addrs: []netip.Prefix{l.childAddr(i)}}
	if mode == "source" {
		ep.SourceMACs = append([]net.HardwareAddr{l.outMAC, l.parentMAC}, extra...)
		args := []string{"link", "set", name, "type", "macvlan", "macaddr", "set"}
		for _, m := range ep.SourceMACs {
			args = append(args, m.String())
		}
		l.p.Host.Run(t, "ip", args...)
	}
	l.p.Host.Run(t, "ip", "link", "set", name, "netns", ns.Name())
	t.Cleanup(func() { _, _ = ns.Exec(context.Background(), "ip", "link", "del", name) })
	ns.Run(t, "ip", "addr", "add", l.childAddr(i).String(), "dev", name)
	ns.Run(t, "ip", "link", "set", name, "up")
	return ep
}

func (l *kernelLab) topology(eps ...Endpoint) Topology {
	return Topology{
		Parent: Parent{Name: l.p.Name, NetNS: l.p.Host.Name(), MAC: l.parentMAC, Addrs: []netip.Prefix{l.hostAddr}},
		Endpoints: append(eps, Endpoint{Name: "outside", NetNS: l.out.Name(), Interface: l.out.Interface, Kind: KindOutside,
			MAC: l.outMAC, Addrs: []netip.Prefix{l.outAddr}}),
	}
}

// runAgainstModel runs Run and returns the cells where the kernel and the
// model disagree. A disagreement is confirmed by a second run with four
// times the wait before it counts, so a slow machine (the VM tier emulates
// its CPU) cannot pass off a late answer as a model error; a real one
// repeats.
func runAgainstModel(t *testing.T, topo Topology, frames *[]*capture.Frame) (*Report, []PairResult) {
	t.Helper()
	var wait time.Duration
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		*frames = nil
		rep, err := Run(ctx, topo, Options{Wait: wait, OnFrame: func(f *capture.Frame) { *frames = append(*frames, f) }})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var bad []PairResult
		for _, p := range rep.Pairs {
			if p.Observed != p.Expected {
				bad = append(bad, p)
			}
		}
		failed := len(bad) > 0
		for _, c := range rep.Checks {
			failed = failed || !c.OK
		}
		if !failed || attempt == 1 {
			return rep, bad
		}
		wait = 4 * rep.Wait
		var cells []string
		for _, p := range bad {
			cells = append(cells, fmt.Sprintf("%s→%s %s (%s)", p.From, p.To, p.Observed, p.Probe))
		}
		for _, c := range rep.Checks {
			if !c.OK {
				cells = append(cells, "check "+c.Name+": "+c.Detail)
			}
		}
		t.Logf("disagreement with the model after waiting %v, again with %v: %s", rep.Wait, wait, strings.Join(cells, "; "))
	}
}

// TestModelMatchesKernel builds every macvlan mode (two children, one for
// passthru) and a few mixed pairs with the switch reflecting and not, runs
// Run with reflection detection, and asserts that every cell observed on
// the kernel is the model's, and that every check passes. The "/listed"
// cases make every source-mode child list its siblings' MACs as well
// (macvlan_forward_source delivers a sibling's reflected frames to it).
func TestModelMatchesKernel(t *testing.T) {
	l := newKernelLab(t)
	cases := []struct {
		modes  []string
		listed bool // source children list their siblings
	}{
		{modes: []string{"bridge", "bridge"}},
		{modes: []string{"vepa", "vepa"}},
		{modes: []string{"private", "private"}},
		{modes: []string{"passthru"}},
		{modes: []string{"passthru-nopromisc"}},
		{modes: []string{"source", "source"}},
		{modes: []string{"source", "source"}, listed: true},
		{modes: []string{"bridge", "vepa"}},
		{modes: []string{"bridge", "private"}},
		{modes: []string{"vepa", "private"}},
		{modes: []string{"bridge", "source"}},
		{modes: []string{"bridge", "source"}, listed: true},
	}
	for _, tc := range cases {
		modes := tc.modes
		for _, reflect := range []bool{false, true} {
			name := strings.Join(modes, "+") + map[bool]string{true: "/listed", false: ""}[tc.listed] + map[bool]string{true: "/reflect", false: "/noreflect"}[reflect]
			t.Run(name, func(t *testing.T) {
				l.hairpin(t, reflect)
				var eps []Endpoint
				for i, m := range modes {
					var extra []net.HardwareAddr
					if tc.listed {
						for j := range modes {
							if j != i {
								extra = append(extra, l.childMAC(j+1))
							}
						}
					}
					eps = append(eps, l.addChild(t, i+1, m, extra...))
				}
				var frames []*capture.Frame
				rep, bad := runAgainstModel(t, l.topology(eps...), &frames)
				if rep.SwitchReflects != reflect {
					t.Errorf("detected reflection %v with hairpin %v: %s", rep.SwitchReflects, reflect, rep.ReflectDetail)
				}
				for _, p := range bad {
					t.Errorf("%s → %s: kernel %s, model %s (%s); probe: %s; %s", p.From, p.To, p.Observed, p.Expected, p.Why, p.Probe, p.Evidence)
				}
				promisc := false
				for _, c := range rep.Checks {
					if !c.OK {
						t.Errorf("check %s failed: %s", c.Name, c.Detail)
					}
					promisc = promisc || (c.Name == CheckPromisc && !c.Skipped)
				}
				if strings.HasPrefix(modes[0], "passthru") && !promisc {
					t.Errorf("no %s check for a passthru child: %+v", CheckPromisc, rep.Checks)
				}
				if t.Failed() {
					var b strings.Builder
					_ = rep.WriteTable(&b)
					t.Log("\n" + b.String())
					for _, f := range frames {
						t.Logf("%s %s %s", f.Time.Format("05.000000"), f.Dir, f.Summary())
					}
				}
			})
		}
	}
}

// newKernelLab6 is newKernelLab with IPv6 on: the host and the outside
// station also get an IPv6 address (without duplicate address detection,
// so it is usable at once).
func newKernelLab6(t *testing.T) *kernelLab {
	testenv.Require(t, testenv.FeatureMacvlan, testenv.FeatureBridge, testenv.FeatureIPRoute2)
	l := &kernelLab{
		parentMAC: hw("02:00:00:00:01:01"),
		outMAC:    hw("02:00:00:00:01:99"),
		hostAddr:  netip.MustParsePrefix("10.77.0.1/24"),
		outAddr:   netip.MustParsePrefix("10.77.0.99/24"),
		hostAddr6: netip.MustParsePrefix("fd77::1/64"),
		outAddr6:  netip.MustParsePrefix("fd77::99/64"),
	}
	l.p = testenv.NewParent(t, testenv.ParentOptions{Name: "h0", MAC: l.parentMAC, Addrs: []netip.Prefix{l.hostAddr}})
	l.out = l.p.Switch.Attach(t, testenv.EndpointOptions{MAC: l.outMAC, Addrs: []netip.Prefix{l.outAddr}})
	l.p.Host.Run(t, "ip", "addr", "add", l.hostAddr6.String(), "dev", l.p.Name, "nodad")
	l.out.Run(t, "ip", "addr", "add", l.outAddr6.String(), "dev", l.out.Interface, "nodad")
	return l
}

// addChild6 creates macvlan c<i> in mode with IPv4 and/or IPv6 addresses
// (fd77::<10+i>, without duplicate address detection).
func (l *kernelLab) addChild6(t *testing.T, i int, mode string, v4, v6 bool) Endpoint {
	t.Helper()
	ns := testenv.NewEndpoint(t)
	name := fmt.Sprintf("c%d", i)
	mac := l.childMAC(i)
	l.p.Host.Run(t, "ip", "link", "add", name, "link", l.p.Name, "address", mac.String(), "type", "macvlan", "mode", mode)
	l.p.Host.Run(t, "ip", "link", "set", name, "netns", ns.Name())
	t.Cleanup(func() { _, _ = ns.Exec(context.Background(), "ip", "link", "del", name) })
	ep := Endpoint{Name: name, NetNS: ns.Name(), Interface: name, Kind: KindMacvlan, Mode: mode, MAC: mac}
	if v4 {
		ns.Run(t, "ip", "addr", "add", l.childAddr(i).String(), "dev", name)
		ep.Addrs = append(ep.Addrs, l.childAddr(i))
	}
	if v6 {
		a := netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x77, 15: byte(10 + i)}), 64)
		ns.Run(t, "ip", "addr", "add", a.String(), "dev", name, "nodad")
		ep.Addrs = append(ep.Addrs, a)
	}
	ns.Run(t, "ip", "link", "set", name, "up")
	return ep
}

// TestModelMatchesKernelIPv6 probes in IPv6: c1 has an IPv6 address only,
// c2 both families, beside a dual-stack host and outside station, for
// bridge, VEPA and private children with the switch reflecting and not.
// Every cell must be the model's in both families, c1's pairs must be
// probed (in IPv6), and the dual-stack pairs must carry an IPv6 verdict.
func TestModelMatchesKernelIPv6(t *testing.T) {
	l := newKernelLab6(t)
	for _, mode := range []string{"bridge", "vepa", "private"} {
		for _, reflect := range []bool{false, true} {
			t.Run(mode+map[bool]string{true: "/reflect", false: "/noreflect"}[reflect], func(t *testing.T) {
				l.hairpin(t, reflect)
				for _, ns := range []*testenv.NetNS{l.p.Host, l.out.NetNS} {
					ns.Run(t, "ip", "neigh", "flush", "all")
				}
				eps := []Endpoint{l.addChild6(t, 1, mode, false, true), l.addChild6(t, 2, mode, true, true)}
				topo := l.topology(eps...)
				topo.Parent.Addrs = append(topo.Parent.Addrs, l.hostAddr6)
				last := len(topo.Endpoints) - 1
				topo.Endpoints[last].Addrs = append(topo.Endpoints[last].Addrs, l.outAddr6)
				var frames []*capture.Frame
				rep, bad := runAgainstModel(t, topo, &frames)
				for _, p := range bad {
					t.Errorf("%s → %s: kernel %s, model %s (%s); probe: %s; %s", p.From, p.To, p.Observed, p.Expected, p.Why, p.Probe, p.Evidence)
				}
				c1 := EndpointID(eps[0])
				v6only, dual := 0, 0
				for _, p := range rep.Pairs {
					if !p.OK {
						t.Errorf("%s → %s not OK: expected %s/%s observed %s/%s (%s)", p.From, p.To, p.Expected, p.ExpectedV6, p.Observed, p.ObservedV6, p.Probe)
					}
					if (p.From == c1 || p.To == c1) && (p.Observed == NotProbed || p.Family != 6) {
						t.Errorf("%s → %s: %s in family %d, want probed in IPv6 (%s)", p.From, p.To, p.Observed, p.Family, p.Probe)
					}
					if p.Family == 6 {
						v6only++
					}
					if p.ObservedV6 != 0 {
						dual++
					}
				}
				if v6only == 0 || dual == 0 {
					t.Errorf("%d pairs probed in IPv6 only, %d in both families; want some of each", v6only, dual)
				}
				for _, c := range rep.Checks {
					if !c.OK {
						t.Errorf("check %s failed: %s", c.Name, c.Detail)
					}
				}
				if t.Failed() {
					var b strings.Builder
					_ = rep.WriteTable(&b)
					t.Log("\n" + b.String())
					for _, f := range frames {
						t.Logf("%s %s %s", f.Time.Format("05.000000"), f.Dir, f.Summary())
					}
				}
			})
		}
	}
}
