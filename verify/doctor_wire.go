package verify

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify/capture"
	"golang.org/x/sys/unix"
)

// checkVEPA reports vepa children with siblings on a switch that does not
// reflect, detected the way verify's Run detects it.
func (d *doctor) checkVEPA(ctx context.Context, t Topology, pid string, pace *pacer) {
	byLower := map[string][]Endpoint{}
	var order []string
	for _, ep := range t.Endpoints {
		if ep.Kind != KindMacvlan && ep.Kind != KindMacvtap {
			continue
		}
		l := lowerOf(t, ep)
		if _, ok := byLower[l]; !ok {
			order = append(order, l)
		}
		byLower[l] = append(byLower[l], ep)
	}
	var refl *reflection
	for _, l := range order {
		kids := byLower[l]
		var vepa []Endpoint
		for _, k := range kids {
			if k.macvlanMode() == rtnl.MacvlanModeVEPA {
				vepa = append(vepa, k)
			}
		}
		if len(vepa) == 0 || len(kids) < 2 {
			continue
		}
		if refl == nil {
			r, err := detectReflection(ctx, t.Parent.NetNS, t.Parent.Name, pace.budget())
			if err != nil {
				d.rep.skip("switch reflection", pid, "%v", err)
				return
			}
			refl = &r
		}
		if refl.Reflects {
			return
		}
		var names []string
		fix := []string{"turn on reflective relay (802.1Qbg) on the switch port " + t.Parent.Name + " is plugged into; a Linux bridge: bridge link set dev PORT hairpin on"}
		for _, k := range vepa {
			names = append(names, EndpointID(k))
			verb := "macvlan"
			if k.Kind == KindMacvtap {
				verb = "macvtap"
			}
			fix = append(fix, fmt.Sprintf("or %s link set %s type %s mode bridge", tool("vmlink", k.NetNS), k.Interface, verb))
		}
		d.rep.add(Finding{
			ID: FindVEPANoReflect, Severity: SeverityError, Subject: subject(t.Parent.NetNS, l),
			What: fmt.Sprintf("vepa children %s on %s cannot reach their siblings: the switch does not reflect (%s)", strings.Join(names, ", "), l, refl.Detail),
			Why:  "in vepa mode the kernel sends every frame for a sibling out of the parent (macvlan_queue_xmit); only a switch that sends frames back out of the port they came in on (reflective relay, hairpin) delivers it",
			Fix:  fix,
		})
	}
}

// checkChildMACs sends the same ARP probe (RFC 5227: sender 0.0.0.0, so
// no neighbour cache learns anything) for a station the parent or its
// children have talked to, first from the parent's own MAC, then from each
// macvlan child's. A station that answers the parent but not the
// children sits behind a switch port that accepts one MAC: port security,
// or a virtual switch refusing promiscuous mode / forged transmits.
func (d *doctor) checkChildMACs(ctx context.Context, t Topology, pid string, pace *pacer) {
	var kids []Endpoint
	own := map[capture.MAC]bool{capture.MACFrom(t.Parent.MAC): true}
	for _, ep := range append(append([]Endpoint(nil), t.VLANLinks...), t.Endpoints...) {
		if len(ep.MAC) == 6 {
			own[capture.MACFrom(ep.MAC)] = true
		}
		if ep.Kind != KindMacvlan || ep.Lower != "" || len(ep.MAC) != 6 || bytes.Equal(ep.MAC, t.Parent.MAC) {
			continue
		}
		if m := ep.macvlanMode(); m == rtnl.MacvlanModePassthru || m == rtnl.MacvlanModeSource {
			continue // no MAC of its own on the wire / receives only from listed senders
		}
		if _, ok := firstIPv4(ep); !ok {
			continue // the ARP socket needs an IPv4 address on the interface
		}
		if l := d.linkOf(ep.NetNS, ep.Interface); l == nil || l.Flags&unix.IFF_UP == 0 {
			continue
		}
		if len(kids) < 8 {
			kids = append(kids, ep)
		}
	}
	if len(kids) == 0 {
		return
	}
	if _, ok := firstIPv4(Endpoint{Addrs: t.Parent.Addrs}); !ok {
		d.rep.skip("child MACs on the wire", pid, "%s has no IPv4 address: the ARP probe from the parent's own MAC, which the children's are compared with, is sent from a socket that needs one", t.Parent.Name)
		return
	}
	targets := d.stations(t, kids, own)
	if len(targets) == 0 {
		d.rep.skip("child MACs on the wire", pid, "no station on the wire is known to probe (no complete ARP entry on %s or its children, no network gateway): ping one from the host or a child, then run doctor again", t.Parent.Name)
		return
	}
	unspec := netip.IPv4Unspecified()
	for _, target := range targets {
		var mac net.HardwareAddr
		err := netns.DoIn(t.Parent.NetNS, func() error {
			var err error
			mac, err = arpProbe(ctx, t.Parent.Name, unspec, target, pace)
			return err
		})
		if err != nil {
			d.rep.skip("child MACs on the wire", pid, "ARP probe from %s: %v", t.Parent.Name, err)
			return
		}
		if mac == nil {
			continue
		}
		answered := make([]bool, len(kids))
		errs := make([]error, len(kids))
		done := make(chan int, len(kids))
		for i, k := range kids {
			go func() {
				errs[i] = netns.DoIn(k.NetNS, func() error {
					m, err := arpProbe(ctx, k.Interface, unspec, target, pace)
					answered[i] = m != nil
					return err
				})
				done <- i
			}()
		}
		for range kids {
			<-done
		}
		var dropped []string
		for i, k := range kids {
			if errs[i] != nil {
				d.rep.skip("child MACs on the wire", EndpointID(k), "ARP probe: %v", errs[i])
				continue
			}
			if !answered[i] {
				dropped = append(dropped, fmt.Sprintf("%s (%s)", EndpointID(k), k.MAC))
			}
		}
		if len(dropped) > 0 {
			d.rep.add(Finding{
				ID: FindChildMACDropped, Severity: SeverityError, Subject: pid,
				What: fmt.Sprintf("%s answered an ARP request from %s's own MAC %s within %v, but not the same request from %s", target, t.Parent.Name, t.Parent.MAC, pace.budget().Round(time.Millisecond), strings.Join(dropped, ", ")),
				Why:  "the switch port behind " + t.Parent.Name + " accepts frames from (or delivers frames to) the parent's MAC only: port security with a MAC limit or sticky MACs, or a virtual switch that refuses promiscuous mode, MAC changes or forged transmits (VMware vSwitch, cloud VPCs); every macvlan child has a MAC of its own",
				Fix: []string{
					"allow more MACs on the switch port (port security's maximum), or on a VMware port group set Promiscuous mode, MAC address changes and Forged transmits to Accept",
					fmt.Sprintf("or use ipvlan, whose children share %s's MAC: %s link add ipv0 link %s type ipvlan mode l2", t.Parent.Name, tool("vmlink", t.Parent.NetNS), t.Parent.Name),
				},
			})
		}
		return
	}
	d.rep.skip("child MACs on the wire", pid, "no known station answered %s's own ARP probe (%s): nothing to compare the children with", t.Parent.Name, joinAddrs(targets))
}

func joinAddrs(as []netip.Addr) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

// stations are up to three IPv4 addresses of stations beyond the parent:
// complete ARP entries on the parent and on the children (whose MAC is none
// of the topology's own), and the gateways of the networks on the parent.
func (d *doctor) stations(t Topology, kids []Endpoint, own map[capture.MAC]bool) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr) {
		if a.Is4() && !seen[a] && len(out) < 3 {
			seen[a] = true
			out = append(out, a)
		}
	}
	look := func(ns, ifname string) {
		_ = netns.DoIn(ns, func() error {
			b, err := os.ReadFile("/proc/thread-self/net/arp")
			if err != nil {
				return err
			}
			for _, e := range parseProcARP(string(b), ifname) {
				if !own[capture.MACFrom(e.mac)] {
					add(e.addr)
				}
			}
			return nil
		})
	}
	look(t.Parent.NetNS, t.Parent.Name)
	for _, k := range kids {
		look(k.NetNS, k.Interface)
	}
	for _, n := range d.o.Networks {
		if n.Host == t.Parent.NetNS && n.Parent == t.Parent.Name {
			for _, g := range n.Gateways {
				add(g)
			}
		}
	}
	return out
}

type arpEntry struct {
	addr netip.Addr
	mac  net.HardwareAddr
}

// parseProcARP reads /proc/net/arp ("IP address HW type Flags HW address
// Mask Device") and returns the complete entries (ATF_COM) on ifname.
func parseProcARP(s, ifname string) []arpEntry {
	var out []arpEntry
	for i, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 6 || f[5] != ifname {
			continue
		}
		flags, err := strconv.ParseUint(f[2], 0, 32)
		if err != nil || flags&0x2 == 0 {
			continue
		}
		a, err1 := netip.ParseAddr(f[0])
		mac, err2 := net.ParseMAC(f[3])
		if err1 != nil || err2 != nil || capture.MACFrom(mac).IsZero() {
			continue
		}
		out = append(out, arpEntry{a, mac})
	}
	return out
}
