package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
	"golang.org/x/sys/unix"
)

// DoctorOptions say where Doctor looks and what it knows besides the
// kernel's state.
type DoctorOptions struct {
	// NetNS holds the parent(s); "" is the caller's namespace.
	NetNS string
	// Parent is the interface to diagnose; "" diagnoses every interface of
	// NetNS that has macvlan, macvtap, ipvlan or VLAN links on it (in any
	// namespace), and the parents of Networks.
	Parent string
	// Networks are the docker-style networks of a state directory (vmlink
	// net): their subnets take part in the overlap check and their
	// definitions shape the fixes.
	Networks []DoctorNetwork
	// VLANSupport tells whether the kernel can create VLAN links: nil when
	// it can, an error wrapping unix.EOPNOTSUPP when it cannot (the
	// project's feature probe, dataplane.Probe(ctx, "8021q")). nil means
	// unknown: an X.N name that does not exist is then reported missing.
	VLANSupport func(context.Context) error
	// SysRoot is where sysfs is mounted; "" means /sys. Tests point it at
	// a fake tree (a wireless parent needs a wireless NIC otherwise).
	SysRoot string
	// Wait is the least the wire probes (reflection, ARP) wait for an
	// answer; 0 means 300 ms. It grows with the slowest answer seen.
	Wait time.Duration
}

// DoctorNetwork is one docker-style network as doctor needs it.
type DoctorNetwork struct {
	Name     string
	Host     string // namespace holding the parent ("" the caller's)
	Parent   string
	Driver   string // macvlan, macvtap, ipvlan
	Mode     string
	Subnets  []netip.Prefix
	Gateways []netip.Addr
	IPRanges []netip.Prefix
	HostShim bool
	// Endpoints are the container interfaces connected to the network.
	Endpoints []DoctorEndpoint
}

// DoctorEndpoint is one container interface of a network.
type DoctorEndpoint struct{ NetNS, Interface string }

// Doctor diagnoses the classic macvlan/VLAN problems from kernel state,
// plus two short probes on the wire (whether the switch reflects, and
// whether it answers the children's MACs as it answers the parent's). An
// error means nothing could be inspected (ErrEnvironment: no privileges, no
// such parent or namespace, nothing with children to look at); a report
// with findings is not an error.
func Doctor(ctx context.Context, o DoctorOptions) (*DoctorReport, error) {
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.Wait <= 0 {
		o.Wait = 300 * time.Millisecond
	}
	spaces, err := openSpaces(o.NetNS)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range spaces {
			s.close()
		}
	}()
	d := &doctor{o: o, spaces: spaces, rep: &DoctorReport{}, seenMAC: map[MAC]bool{}}
	parents, err := d.parents(ctx)
	if err != nil {
		return nil, err
	}
	if len(parents) == 0 && len(d.rep.Findings) == 0 {
		return nil, fmt.Errorf("%w: nothing to inspect: no interface of namespace %s has a macvlan, macvtap, ipvlan or VLAN link on it (%d namespaces searched): name one with --parent",
			ErrEnvironment, nsWord(o.NetNS), len(spaces))
	}
	if len(parents) > 0 {
		owners, err := DiscoverOwners(ctx)
		if err != nil {
			d.rep.skip("duplicate MACs", "some namespaces", "%v", err)
		}
		d.owners = owners
	}
	for _, p := range parents {
		if err := d.inspect(ctx, p); err != nil {
			return nil, err
		}
	}
	d.rep.sort()
	return d.rep, nil
}

type doctor struct {
	o       DoctorOptions
	spaces  []*space
	rep     *DoctorReport
	owners  Owners
	seenMAC map[MAC]bool
}

// home is the namespace of the parents.
func (d *doctor) home() *space { return d.spaces[0] }

// space returns the opened namespace called name, as Discover names
// endpoints' namespaces.
func (d *doctor) space(name string) *space {
	for _, s := range d.spaces {
		if s.name == name {
			return s
		}
	}
	return nil
}

// parents decides which interfaces to inspect. An X.N name that cannot
// exist because the kernel has no 802.1Q support is a finding, not a
// parent.
func (d *doctor) parents(ctx context.Context) ([]string, error) {
	home := d.home()
	if d.o.Parent != "" {
		if home.byName(d.o.Parent) != nil {
			return []string{d.o.Parent}, nil
		}
		lower, id, ok := link.SplitVLANName(d.o.Parent)
		if ok && home.byName(lower) != nil {
			if d.no8021q(ctx, d.o.NetNS, d.o.Parent, lower, id) {
				d.rep.Parents = append(d.rep.Parents, subject(d.o.NetNS, d.o.Parent))
				return nil, nil
			}
			return nil, fmt.Errorf("%w: no interface %q in namespace %s: create VLAN %d on %s with `%s link add %s link %s type vlan id %d`",
				ErrEnvironment, d.o.Parent, nsWord(d.o.NetNS), id, lower, tool("vmlink", d.o.NetNS), d.o.Parent, lower, id)
		}
		return nil, fmt.Errorf("%w: no interface %q in namespace %s", ErrEnvironment, d.o.Parent, nsWord(d.o.NetNS))
	}
	var out []string
	seen := map[string]bool{}
	addRoot := func(index int32) {
		name := d.root(index)
		if name != "" && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for si, s := range d.spaces {
		for _, l := range s.links {
			if l.Attrs.Link == nil || l.Attrs.Info == nil || !childKind(l.Attrs.Info.Kind) {
				continue
			}
			in := si
			if l.Attrs.LinkNetNSID != nil {
				in = s.spaceOfNSID(*l.Attrs.LinkNetNSID, d.spaces)
			}
			if in == 0 {
				addRoot(int32(*l.Attrs.Link))
			}
		}
	}
	for _, n := range d.o.Networks {
		if n.Host != d.o.NetNS {
			continue
		}
		if l := home.byName(n.Parent); l != nil {
			addRoot(l.Index)
			continue
		}
		if lower, id, ok := link.SplitVLANName(n.Parent); ok && home.byName(lower) != nil {
			d.no8021q(ctx, n.Host, n.Parent, lower, id)
		}
	}
	return out, nil
}

func childKind(kind string) bool {
	switch kind {
	case "macvlan", "macvtap", "ipvlan", "vlan":
		return true
	}
	return false
}

// root follows a home link down through the VLAN links it sits on to the
// interface Discover starts from.
func (d *doctor) root(index int32) string {
	home := d.home()
	for range 8 {
		var l *rtnl.LinkMessage
		for i := range home.links {
			if home.links[i].Index == index {
				l = &home.links[i]
			}
		}
		if l == nil {
			return ""
		}
		if l.Attrs.Info == nil || l.Attrs.Info.Kind != "vlan" || l.Attrs.Link == nil || l.Attrs.LinkNetNSID != nil {
			return l.Attrs.Name
		}
		index = int32(*l.Attrs.Link)
	}
	return ""
}

// no8021q reports (and records as a finding) that name, VLAN id on lower,
// cannot exist because the kernel lacks 802.1Q support.
func (d *doctor) no8021q(ctx context.Context, ns, name, lower string, id uint16) bool {
	if d.o.VLANSupport == nil {
		return false
	}
	err := d.o.VLANSupport(ctx)
	switch {
	case err == nil:
		return false
	case !errors.Is(err, unix.EOPNOTSUPP):
		d.rep.skip("802.1Q support", name, "the probe could not tell: %v", err)
		return false
	}
	d.rep.add(Finding{
		ID: FindNo8021Q, Severity: SeverityError, Subject: subject(ns, name),
		What: fmt.Sprintf("%s names VLAN %d on %s, and this kernel has no 802.1Q support: the VLAN link cannot be created", name, id, lower),
		Why:  "VLAN links need the kernel's 8021q module; without it the kernel refuses every VLAN link (\"Unknown device type\"), so nothing on " + name + " can exist (docker's -o parent=" + name + " and vmlink net create fail the same way)",
		Fix: []string{
			"modprobe 8021q   (or boot a kernel built with CONFIG_VLAN_8021Q)",
			fmt.Sprintf("%s link add %s link %s type vlan id %d", tool("vmlink", ns), name, lower, id),
		},
	})
	return true
}

// inspect runs every check on one parent.
func (d *doctor) inspect(ctx context.Context, parent string) error {
	t, err := Discover(ctx, d.o.NetNS, parent)
	if err != nil {
		return err
	}
	pl := d.home().byName(parent)
	if pl == nil {
		return fmt.Errorf("%w: interface %q vanished from namespace %s", ErrEnvironment, parent, nsWord(d.o.NetNS))
	}
	pid := subject(d.o.NetNS, parent)
	d.rep.Parents = append(d.rep.Parents, pid)
	wireOK := d.checkLinkState(pl, pid)
	d.checkWireless(t, pl, pid)
	d.checkHostIsolation(t)
	d.checkMTU(t, pl)
	d.checkOverlap(t)
	d.checkDuplicateMACs(t)
	if !wireOK {
		d.rep.skip("switch reflection and child MACs on the wire", pid, "the parent is down or has no carrier: no frame can pass")
		return nil
	}
	pace := &pacer{floor: d.o.Wait}
	d.checkVEPA(ctx, t, pid, pace)
	d.checkChildMACs(ctx, t, pid, pace)
	return nil
}

// subject names an interface as the user knows it: "eth0" or "ns1/eth0".
func subject(ns, name string) string { return EndpointID(Endpoint{NetNS: ns, Interface: name}) }

// tool is a command prefix that runs inside ns: "vmlink -n ns1", "ip -n ns1".
func tool(cmd, ns string) string {
	if ns == "" {
		return cmd
	}
	return cmd + " -n " + ns
}

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
		if peer := d.vethPeer(pl); peer != "" {
			fix = []string{fmt.Sprintf("%s link set %s up   (%s is a veth: its peer is down)", tool("vmlink", peerNS(peer)), peerName(peer), pl.Attrs.Name)}
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

// vethPeer returns "NS\x00NAME" of a veth parent's peer when it lives in
// a namespace doctor opened, or "".
func (d *doctor) vethPeer(pl *rtnl.LinkMessage) string {
	if pl.Attrs.Info == nil || pl.Attrs.Info.Kind != "veth" || pl.Attrs.Link == nil {
		return ""
	}
	si := 0
	if pl.Attrs.LinkNetNSID != nil {
		if si = d.home().spaceOfNSID(*pl.Attrs.LinkNetNSID, d.spaces); si < 0 {
			return ""
		}
	}
	for _, l := range d.spaces[si].links {
		if uint32(l.Index) == *pl.Attrs.Link {
			return d.spaces[si].name + "\x00" + l.Attrs.Name
		}
	}
	return ""
}

func peerNS(p string) string   { ns, _, _ := strings.Cut(p, "\x00"); return ns }
func peerName(p string) string { _, n, _ := strings.Cut(p, "\x00"); return n }

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
		if (ep.Kind == KindMacvlan || ep.Kind == KindMacvtap) && ep.Mode != "passthru" {
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
				shim = shim || ep.Kind == KindMacvlan && ep.Mode == "bridge"
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
		args := []string{"vmlink", "net", "create", "-d", "macvlan"}
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
		fix := []string{"vmlink net rm " + n.Name + "   (after `vmlink net disconnect " + n.Name + " CONTAINER` for each container)", strings.Join(args, " ")}
		if len(n.Endpoints) > 0 {
			fix = append(fix, "vmlink net connect "+n.Name+" CONTAINER   (for each container again)")
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
			Fix:  overlapFix(a, b, wire),
		})
	}
}

// overlapFix widens the narrower of two overlapping interface subnets to
// the wider one (its address lies inside it, as one of two overlapping
// prefixes contains the other); a network, or two networks sharing a
// subnet, must move to a subnet of its own.
func overlapFix(a, b addrUse, wire string) []string {
	wide, narrow := a, b
	if narrow.Prefix.Bits() < wide.Prefix.Bits() {
		wide, narrow = narrow, wide
	}
	if narrow.Iface == "" || narrow.Prefix == wide.Prefix {
		n := narrow
		if n.Network == "" {
			n = wide
		}
		return []string{fmt.Sprintf("give %s a subnet of its own on %s: vmlink net rm %s, then vmlink net create … --subnet SUBNET %s with a SUBNET that overlaps nothing on it", n.Who, wire, n.Network, n.Network)}
	}
	bits := netip.PrefixFrom(narrow.Addr.Addr(), wide.Prefix.Bits())
	return []string{fmt.Sprintf("%s addr del %s dev %s && %s addr add %s dev %s",
		tool("ip", narrow.NetNS), narrow.Addr, narrow.Iface, tool("ip", narrow.NetNS), bits, narrow.Iface)}
}

// checkDuplicateMACs reports a child MAC that another interface in another
// namespace carries too (the kernel refuses only siblings on the same
// lower). Interfaces in the child's own namespace are left out: links
// stacked on the child (a VLAN on it) share its MAC by design.
func (d *doctor) checkDuplicateMACs(t Topology) {
	if d.owners == nil {
		return
	}
	for _, ep := range t.Endpoints {
		if (ep.Kind != KindMacvlan && ep.Kind != KindMacvtap) || ep.Mode == "passthru" || len(ep.MAC) != 6 {
			continue
		}
		m := MACFrom(ep.MAC)
		if d.seenMAC[m] {
			continue
		}
		var others []string
		for _, o := range strings.Split(d.owners.Owner(m), ",") {
			ifname, ns, _ := strings.Cut(o, "@")
			if o == "" || ns == ep.NetNS {
				continue
			}
			others = append(others, subject(ns, ifname))
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
			if k.Mode == "vepa" {
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
	own := map[MAC]bool{MACFrom(t.Parent.MAC): true}
	for _, ep := range append(append([]Endpoint(nil), t.VLANLinks...), t.Endpoints...) {
		if len(ep.MAC) == 6 {
			own[MACFrom(ep.MAC)] = true
		}
		if ep.Kind != KindMacvlan || ep.Lower != "" || len(ep.MAC) != 6 || bytesEqual(ep.MAC, t.Parent.MAC) {
			continue
		}
		if ep.Mode == "passthru" || ep.Mode == "source" {
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
		err := inNetNS(t.Parent.NetNS, func() error {
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
				errs[i] = inNetNS(k.NetNS, func() error {
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

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

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
func (d *doctor) stations(t Topology, kids []Endpoint, own map[MAC]bool) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr) {
		if a.Is4() && !seen[a] && len(out) < 3 {
			seen[a] = true
			out = append(out, a)
		}
	}
	look := func(ns, ifname string) {
		_ = inNetNS(ns, func() error {
			b, err := os.ReadFile("/proc/thread-self/net/arp")
			if err != nil {
				return err
			}
			for _, e := range parseProcARP(string(b), ifname) {
				if !own[MACFrom(e.mac)] {
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
		if err1 != nil || err2 != nil || MACFrom(mac).IsZero() {
			continue
		}
		out = append(out, arpEntry{a, mac})
	}
	return out
}
