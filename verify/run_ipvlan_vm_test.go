//go:build vm

package verify

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/testenv"
	"github.com/vmlink/vmlink/verify/capture"
)

// addIPVlan creates ipvlan c<i> on the parent in mode (l2, l3, l3s) with
// the port flag (bridge, private, vepa), moves it into a new namespace and
// gives it an address. All ipvlans of a parent share its mode and flag.
func (l *kernelLab) addIPVlan(t *testing.T, i int, mode, flag string) Endpoint {
	t.Helper()
	ns := testenv.NewEndpoint(t)
	quietIPv6(t, ns.NetNS)
	name := fmt.Sprintf("c%d", i)
	l.p.Host.Run(t, "ip", "link", "add", name, "link", l.p.Name, "type", "ipvlan", "mode", mode, flag)
	l.p.Host.Run(t, "ip", "link", "set", name, "netns", ns.Name())
	t.Cleanup(func() { _, _ = ns.Exec(context.Background(), "ip", "link", "del", name) })
	ns.Run(t, "ip", "addr", "add", l.childAddr(i).String(), "dev", name)
	ns.Run(t, "ip", "link", "set", name, "up")
	return Endpoint{Name: name, NetNS: ns.Name(), Interface: name, Kind: KindIPVlan, Mode: mode, IPVlanFlag: flag,
		MAC: l.parentMAC, Addrs: []netip.Prefix{l.childAddr(i)}}
}

// TestModelMatchesKernelIPVlan checks the ipvlan half of the model against
// a kernel with ipvlan (the VM tier): two ipvlans on the parent in L2 mode
// with each port flag (bridge, private, vepa) and in L3 mode, with the
// switch reflecting and not, beside the host stack and an outside station.
// Every cell must be the model's and every check must pass.
func TestModelMatchesKernelIPVlan(t *testing.T) {
	testenv.Require(t, testenv.FeatureIPVlan)
	l := newKernelLab(t)
	for _, c := range []struct{ mode, flag string }{
		{"l2", "bridge"}, {"l2", "private"}, {"l2", "vepa"},
		{"l3", "bridge"}, {"l3", "private"}, {"l3", "vepa"},
	} {
		for _, reflect := range []bool{false, true} {
			name := c.mode + "-" + c.flag + map[bool]string{true: "/reflect", false: "/noreflect"}[reflect]
			t.Run(name, func(t *testing.T) {
				l.hairpin(t, reflect)
				// Every case reuses the children's addresses with the
				// parent's MAC: forget what earlier cases taught the
				// neighbour caches, or an L3 case (no ARP) would live
				// on an L2 case's answers.
				for _, ns := range []*testenv.NetNS{l.p.Host, l.out.NetNS} {
					ns.Run(t, "ip", "neigh", "flush", "all")
				}
				eps := []Endpoint{l.addIPVlan(t, 1, c.mode, c.flag), l.addIPVlan(t, 2, c.mode, c.flag)}
				var frames []*capture.Frame
				rep, bad := runAgainstModel(t, l.topology(eps...), &frames)
				if rep.SwitchReflects != reflect {
					t.Errorf("detected reflection %v with hairpin %v: %s", rep.SwitchReflects, reflect, rep.ReflectDetail)
				}
				for _, p := range bad {
					t.Errorf("%s → %s: kernel %s, model %s (%s); probe: %s; %s", p.From, p.To, p.Observed, p.Expected, p.Why, p.Probe, p.Evidence)
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
