package verify

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify/capture"
	"golang.org/x/sys/unix"
)

// checkLinkState reports a parent that is down or up without carrier, and
// says whether frames can pass at all.
func (d *doctor) checkLinkState(pl *rtnl.LinkMessage, pid string) bool {
	switch {
	case pl.Flags&unix.IFF_UP == 0:
		d.rep.add(Finding{
			ID: FindParentDown, Severity: SeverityError, Subject: pid,
			What: pid + " is down",
			Why:  "a macvlan, ipvlan or VLAN link sends and receives through its parent: while the parent is down no frame leaves or arrives, and the children stay without carrier (state LOWERLAYERDOWN)",
			Fix:  []string{fmt.Sprintf("%s link set %s up", tool("vmlink", d.o.NetNS), pl.Attrs.Name)},
		})
		return false
	case pl.Flags&unix.IFF_LOWER_UP == 0:
		fix := []string{"connect " + pl.Attrs.Name + "'s cable, or bring the port at the far end up"}
		if ns, peer, ok := d.vethPeer(pl); ok {
			fix = []string{fmt.Sprintf("%s link set %s up   (%s is a veth: its peer is down)", tool("vmlink", ns), peer, pl.Attrs.Name)}
		}
		d.rep.add(Finding{
			ID: FindNoCarrier, Severity: SeverityError, Subject: pid,
			What: pid + " is up but has no carrier",
			Why:  "without carrier the kernel sends nothing out of the parent: every child's frames are dropped, and the children report no carrier either",
			Fix:  fix,
		})
		return false
	}
	return true
}

// vethPeer returns the namespace and name of a veth parent's peer when it
// lives in a namespace doctor opened.
func (d *doctor) vethPeer(pl *rtnl.LinkMessage) (ns, name string, ok bool) {
	if pl.Attrs.Info == nil || pl.Attrs.Info.Kind != "veth" || pl.Attrs.Link == nil {
		return "", "", false
	}
	si := 0
	if pl.Attrs.LinkNetNSID != nil {
		all := make([]int, len(d.spaces))
		for i := range all {
			all[i] = i
		}
		if si = d.home().spaceOfNSID(context.Background(), *pl.Attrs.LinkNetNSID, all, d.spaces); si < 0 {
			return "", "", false
		}
	}
	for _, l := range d.spaces[si].links {
		if uint32(l.Index) == *pl.Attrs.Link {
			return d.spaces[si].name, l.Attrs.Name, true
		}
	}
	return "", "", false
}

// checkWireless looks for the parent's wireless directory in sysfs. sysfs
// shows the interfaces of the namespace it was mounted in, so the entry
// counts only when its ifindex is the parent's.
func (d *doctor) checkWireless(t Topology, pl *rtnl.LinkMessage, pid string) {
	dir := filepath.Join(d.o.SysRoot, "class", "net", pl.Attrs.Name)
	b, err := os.ReadFile(filepath.Join(dir, "ifindex"))
	idx, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil || int32(idx) != pl.Index {
		d.rep.skip("wireless parent", pid, "%s does not show this namespace's %s (sysfs shows the namespace it was mounted in): run doctor through `vmlink netns exec NS -- vmlink doctor`, which mounts the namespace's own sysfs", dir, pl.Attrs.Name)
		return
	}
	wireless := false
	for _, f := range []string{"wireless", "phy80211"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			wireless = true
		}
	}
	if !wireless {
		return
	}
	var macs []string
	for _, ep := range t.Endpoints {
		if (ep.Kind == KindMacvlan || ep.Kind == KindMacvtap) && ep.macvlanMode() != rtnl.MacvlanModePassthru {
			macs = append(macs, EndpointID(ep))
		}
	}
	what := pid + " is a wireless interface"
	sev := SeverityWarning
	if len(macs) > 0 {
		what += " with macvlan children (" + strings.Join(macs, ", ") + ")"
		sev = SeverityError
	}
	d.rep.add(Finding{
		ID: FindWirelessParent, Severity: sev, Subject: pid, What: what,
		Why: "an 802.11 station may send only with the MAC it associated with: the access point drops frames from any other source MAC, so macvlan children (each with a MAC of its own) get no traffic through; ipvlan children share the parent's MAC",
		Fix: []string{
			fmt.Sprintf("%s link add ipv0 link %s type ipvlan mode l2   (or vmlink net create -d ipvlan -o parent=%s -o ipvlan_mode=l2 --subnet SUBNET NAME)", tool("vmlink", d.o.NetNS), pl.Attrs.Name, pl.Attrs.Name),
		},
	})
}

// lowerOf is the interface an endpoint sits on: its Lower or the parent.
func lowerOf(t Topology, ep Endpoint) string {
	if ep.Lower != "" {
		return ep.Lower
	}
	return t.Parent.Name
}

// checkHostIsolation finds lowers with addresses of the host's own (the
// parent, or a VLAN link of it with addresses) whose macvlan children in
// other namespaces have addresses too: the host cannot reach them unless a
// bridge-mode macvlan of the host's (a shim) sits on the same lower.
func (d *doctor) checkHostIsolation(t Topology) {
	type lower struct {
		ns, name string
		addrs    []netip.Prefix
	}
	lowers := []lower{{t.Parent.NetNS, t.Parent.Name, t.Parent.Addrs}}
	for _, ep := range t.Endpoints {
		if ep.Kind == KindVLAN && len(ep.Addrs) > 0 {
			lowers = append(lowers, lower{ep.NetNS, ep.Interface, ep.Addrs})
		}
	}
	for _, l := range lowers {
		if len(l.addrs) == 0 {
			continue
		}
		var kids []Endpoint
		shim := false
		for _, ep := range t.Endpoints {
			if (ep.Kind != KindMacvlan && ep.Kind != KindMacvtap) || lowerOf(t, ep) != l.name || len(ep.Addrs) == 0 {
				continue
			}
			if ep.NetNS == l.ns {
				shim = shim || ep.Kind == KindMacvlan && ep.macvlanMode() == rtnl.MacvlanModeBridge
				continue
			}
			kids = append(kids, ep)
		}
		if shim || len(kids) == 0 {
			continue
		}
		var names []string
		for _, k := range kids {
			names = append(names, EndpointID(k))
		}
		lid := subject(l.ns, l.name)
		d.rep.add(Finding{
			ID: FindHostIsolation, Severity: SeverityWarning, Subject: lid,
			What: fmt.Sprintf("the host has %s on %s, and cannot reach its macvlan children %s", joinPrefixes(l.addrs), lid, strings.Join(names, ", ")),
			Why:  "the kernel never hands a macvlan's frames to its parent's own stack, nor the parent's to its macvlans (host-to-macvlan isolation): the host needs a macvlan of its own on " + l.name + " (a shim) to reach them",
			Fix:  d.shimFix(l.ns, l.name, l.addrs, kids),
		})
	}
}

// shimFix is the fix of host-to-macvlan isolation: the network's own
// --host-shim when the children belong to a vmlink network, else the
// commands that build a shim by hand.
func (d *doctor) shimFix(ns, lowerName string, hostAddrs []netip.Prefix, kids []Endpoint) []string {
	for _, n := range d.o.Networks {
		if n.Host != ns || n.Parent != lowerName || n.Driver != "macvlan" || n.HostShim {
			continue
		}
		vm := tool("vmlink", n.Host)
		args := []string{vm, "net", "create", "-d", "macvlan"}
		for _, s := range n.Subnets {
			args = append(args, "--subnet", s.String())
		}
		for _, g := range n.Gateways {
			args = append(args, "--gateway", g.String())
		}
		for _, r := range n.IPRanges {
			args = append(args, "--ip-range", r.String())
		}
		args = append(args, "-o", "parent="+n.Parent)
		if n.Mode != "" {
			args = append(args, "-o", "macvlan_mode="+n.Mode)
		}
		args = append(args, "--host-shim", n.Name)
		fix := []string{vm + " net rm " + n.Name + "   (after `" + vm + " net disconnect " + n.Name + " CONTAINER` for each container)", strings.Join(args, " ")}
		if len(n.Endpoints) > 0 {
			fix = append(fix, vm+" net connect "+n.Name+" CONTAINER   (for each container again)")
		}
		return fix
	}
	shim := d.freeName(ns, "vmshim")
	fix := []string{
		fmt.Sprintf("%s link add %s link %s type macvlan mode bridge", tool("vmlink", ns), shim, lowerName),
		fmt.Sprintf("%s link set %s up", tool("vmlink", ns), shim),
	}
	for _, a := range hostAddrs {
		fix = append(fix, fmt.Sprintf("%s addr add %s dev %s", tool("ip", ns), netip.PrefixFrom(a.Addr(), a.Addr().BitLen()), shim))
	}
	for _, k := range kids {
		for _, a := range k.Addrs {
			fix = append(fix, fmt.Sprintf("%s route add %s dev %s", tool("ip", ns), netip.PrefixFrom(a.Addr(), a.Addr().BitLen()), shim))
		}
	}
	return fix
}

// freeName is prefix+N, the first that no link of namespace ns has.
func (d *doctor) freeName(ns, prefix string) string {
	s := d.space(ns)
	for i := 0; ; i++ {
		n := prefix + strconv.Itoa(i)
		if s == nil || s.byName(n) == nil {
			return n
		}
	}
}

func joinPrefixes(ps []netip.Prefix) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ", ")
}

// linkOf returns the link message of an interface in an opened namespace.
func (d *doctor) linkOf(ns, name string) *rtnl.LinkMessage {
	if s := d.space(ns); s != nil {
		return s.byName(name)
	}
	return nil
}

// checkMTU compares every child's MTU with its lower's. The kernel keeps
// macvlan and VLAN children at or below their lower's MTU, but an ipvlan
// may be given any MTU up to the lower's maximum.
func (d *doctor) checkMTU(t Topology, pl *rtnl.LinkMessage) {
	lowerMTU := func(ep Endpoint) (uint32, string, string) {
		if ep.Lower == "" {
			if pl.Attrs.MTU == nil {
				return 0, "", ""
			}
			return *pl.Attrs.MTU, t.Parent.NetNS, t.Parent.Name
		}
		for _, v := range append(append([]Endpoint(nil), t.VLANLinks...), t.Endpoints...) {
			if v.Kind == KindVLAN && v.Interface == ep.Lower {
				if l := d.linkOf(v.NetNS, v.Interface); l != nil && l.Attrs.MTU != nil {
					return *l.Attrs.MTU, v.NetNS, v.Interface
				}
			}
		}
		return 0, "", ""
	}
	for _, ep := range append(append([]Endpoint(nil), t.VLANLinks...), t.Endpoints...) {
		l := d.linkOf(ep.NetNS, ep.Interface)
		if l == nil || l.Attrs.MTU == nil {
			continue
		}
		want, lns, lname := lowerMTU(ep)
		if want == 0 || *l.Attrs.MTU <= want {
			continue
		}
		id := EndpointID(ep)
		d.rep.add(Finding{
			ID: FindMTUAboveParent, Severity: SeverityError, Subject: id,
			What: fmt.Sprintf("%s has MTU %d, above the %d of %s it sends through", id, *l.Attrs.MTU, want, subject(lns, lname)),
			Why:  "packets larger than the lower's MTU are dropped when they reach it: pings and small requests work while bulk transfers stall (path MTU discovery never hears of it, the drop is local)",
			Fix: []string{
				fmt.Sprintf("%s link set %s mtu %d", tool("vmlink", ep.NetNS), ep.Interface, want),
				fmt.Sprintf("or raise the lower's, when its wire carries it: %s link set %s mtu %d", tool("vmlink", lns), lname, *l.Attrs.MTU),
			},
		})
	}
}

// addrUse is one subnet in use on the parent's wire: an interface's
// address or a network's subnet.
type addrUse struct {
	Who     string // "ns1/c1", "network n1"
	NetNS   string // where it lives ("network:NAME" for a network)
	Segment string // the VLAN stack: "" untagged, "10", "100.10"
	Prefix  netip.Prefix
	Network string // the vmlink network it belongs to, "" unknown
	// Iface and Addr are the interface (in NetNS) and its address, for an
	// interface's use; "" for a network's subnet.
	Iface string
	Addr  netip.Prefix
}

// hostRoute reports a /32 or /128: an address without a subnet (a shim's,
// a loopback-style service address), which plans nothing.
func hostRoute(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

// overlaps returns the pairs of uses that put two overlapping address
// plans on one segment: overlapping but different subnets in different
// namespaces, or two networks sharing any address. Uses of the same
// subnet by interfaces of one network (or of no known network) are one
// plan, not an overlap. Each pair of subnets is reported once.
func overlaps(uses []addrUse) [][2]addrUse {
	var out [][2]addrUse
	seen := map[string]bool{}
	for i, a := range uses {
		for _, b := range uses[i+1:] {
			if a.Segment != b.Segment || a.NetNS == b.NetNS || !a.Prefix.Overlaps(b.Prefix) || hostRoute(a.Prefix) || hostRoute(b.Prefix) {
				continue
			}
			twoNets := a.Network != "" && b.Network != "" && a.Network != b.Network
			if a.Prefix == b.Prefix && !twoNets {
				continue
			}
			if a.Network != "" && a.Network == b.Network {
				continue
			}
			k1, k2 := a.Segment+" "+a.Prefix.String()+" "+a.Network, a.Segment+" "+b.Prefix.String()+" "+b.Network
			if k2 < k1 {
				k1, k2 = k2, k1
			}
			if seen[k1+"|"+k2] {
				continue
			}
			seen[k1+"|"+k2] = true
			out = append(out, [2]addrUse{a, b})
		}
	}
	return out
}

func segmentOf(vlans []VLANTag) string {
	var s []string
	for _, v := range vlans {
		s = append(s, strconv.Itoa(int(v.ID)))
	}
	return strings.Join(s, ".")
}

// checkOverlap collects the subnets in use on the parent's wire (the
// host's, every child's, every vmlink network's on the parent or its VLAN
// links) and reports overlapping address plans.
func (d *doctor) checkOverlap(t Topology) {
	netOf := map[string]string{}
	for _, n := range d.o.Networks {
		for _, e := range n.Endpoints {
			netOf[e.NetNS+"\x00"+e.Interface] = n.Name
		}
	}
	segOf := map[string]string{t.Parent.Name: ""}
	var uses []addrUse
	for _, p := range t.Parent.Addrs {
		uses = append(uses, addrUse{Who: subject(t.Parent.NetNS, t.Parent.Name), NetNS: t.Parent.NetNS, Prefix: p.Masked(), Iface: t.Parent.Name, Addr: p})
	}
	for _, ep := range append(append([]Endpoint(nil), t.VLANLinks...), t.Endpoints...) {
		seg := segmentOf(ep.VLANs)
		if ep.Kind == KindVLAN {
			segOf[ep.Interface] = seg
		}
		for _, p := range ep.Addrs {
			uses = append(uses, addrUse{Who: EndpointID(ep), NetNS: ep.NetNS, Segment: seg, Prefix: p.Masked(), Network: netOf[ep.NetNS+"\x00"+ep.Interface], Iface: ep.Interface, Addr: p})
		}
	}
	for _, n := range d.o.Networks {
		seg, ok := segOf[n.Parent]
		if n.Host != t.Parent.NetNS || !ok {
			continue
		}
		for _, s := range n.Subnets {
			uses = append(uses, addrUse{Who: "network " + n.Name, NetNS: "network:" + n.Name, Segment: seg, Prefix: s.Masked(), Network: n.Name})
		}
	}
	for _, pr := range overlaps(uses) {
		a, b := pr[0], pr[1]
		wire := subject(t.Parent.NetNS, t.Parent.Name)
		if a.Segment != "" {
			wire += " VLAN " + a.Segment
		}
		d.rep.add(Finding{
			ID: FindOverlap, Severity: SeverityError, Subject: a.Prefix.String() + " and " + b.Prefix.String() + " on " + wire,
			What: fmt.Sprintf("%s (%s) and %s (%s) use overlapping subnets on one wire", a.Who, a.Prefix, b.Who, b.Prefix),
			Why:  "two address plans on one segment: each side's addresses can be handed out on the other too (duplicate IPs), and a station whose subnet is the smaller one sends replies to the other plan's addresses through its gateway instead of on the wire (asymmetric, often dropped)",
			Fix:  overlapFix(a, b, wire, t.Parent.NetNS),
		})
	}
}

// overlapFix widens the narrower of two overlapping interface subnets to
// the wider one (its address lies inside it, as one of two overlapping
// prefixes contains the other); a network, or two networks sharing a
// subnet, must move to a subnet of its own.
func overlapFix(a, b addrUse, wire, host string) []string {
	wide, narrow := a, b
	if narrow.Prefix.Bits() < wide.Prefix.Bits() {
		wide, narrow = narrow, wide
	}
	if narrow.Iface == "" || narrow.Prefix == wide.Prefix {
		n := narrow
		if n.Network == "" {
			n = wide
		}
		vm := tool("vmlink", host)
		return []string{fmt.Sprintf("give %s a subnet of its own on %s: %s net rm %s, then %s net create … --subnet SUBNET %s with a SUBNET that overlaps nothing on it", n.Who, wire, vm, n.Network, vm, n.Network)}
	}
	bits := netip.PrefixFrom(narrow.Addr.Addr(), wide.Prefix.Bits())
	return []string{fmt.Sprintf("%s addr del %s dev %s && %s addr add %s dev %s",
		tool("ip", narrow.NetNS), narrow.Addr, narrow.Iface, tool("ip", narrow.NetNS), bits, narrow.Iface)}
}

// checkDuplicateMACs reports a child MAC that an interface in another
// namespace carries too (the kernel refuses only siblings on the same
// lower), looking through every namespace discovery opened. Interfaces in
// the child's own namespace are left out: links stacked on the child (a
// VLAN on it) share its MAC by design.
func (d *doctor) checkDuplicateMACs(t Topology) {
	for _, ep := range t.Endpoints {
		if (ep.Kind != KindMacvlan && ep.Kind != KindMacvtap) || ep.macvlanMode() == rtnl.MacvlanModePassthru || len(ep.MAC) != 6 {
			continue
		}
		m := capture.MACFrom(ep.MAC)
		if d.seenMAC[m] {
			continue
		}
		var others []string
		for _, s := range d.spaces {
			if s.name == ep.NetNS {
				continue
			}
			for _, l := range s.links {
				if bytes.Equal(l.Attrs.Address, ep.MAC) {
					others = append(others, subject(s.name, l.Attrs.Name))
				}
			}
		}
		if len(others) == 0 {
			continue
		}
		d.seenMAC[m] = true
		id := EndpointID(ep)
		d.rep.add(Finding{
			ID: FindDuplicateMAC, Severity: SeverityError, Subject: m.String(),
			What: fmt.Sprintf("%s has MAC %s, and so does %s", id, m, strings.Join(others, ", ")),
			Why:  "switches (and a parent's macvlan port) deliver a MAC to one place: frames for one interface reach the other, the switch's table flaps between them, and each loses traffic",
			Fix:  []string{fmt.Sprintf("%s link set %s address %s", tool("vmlink", ep.NetNS), ep.Interface, spareMAC())},
		})
	}
}
