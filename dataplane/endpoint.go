package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/feature"
	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// Namespace names a network namespace: Name is one under /run/netns (as
// `ip netns add` makes), Path any namespace file (a CNI runtime's
// /var/run/netns/X or /proc/PID/ns/net). The zero value is the caller's
// namespace.
type Namespace struct {
	Name string
	Path string
}

// NamedNS is the namespace /run/netns/name ("" is the caller's).
func NamedNS(name string) Namespace { return Namespace{Name: name} }

func (n Namespace) String() string {
	switch {
	case n.Name != "":
		return n.Name
	case n.Path != "":
		return n.Path
	}
	return ""
}

func (n Namespace) label() string {
	if n.Name == "" && n.Path == "" {
		return nsLabel("")
	}
	return "netns " + n.String()
}

// isCurrent reports whether n is the caller's namespace.
func (n Namespace) isCurrent() bool { return n.Name == "" && n.Path == "" }

// open opens the namespace file (nil for the caller's namespace).
func (n Namespace) open() (*netns.NS, error) {
	switch {
	case n.Name != "":
		return netns.Open(n.Name)
	case n.Path != "":
		return netns.OpenPath(n.Path)
	}
	return nil, nil
}

// dial opens an rtnetlink socket in the namespace.
func (n Namespace) dial() (*rtnl.Conn, error) {
	h, err := n.open()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return rtnl.Dial(nil)
	}
	defer h.Close()
	c, err := rtnl.Dial(&rtnl.DialOptions{NetNS: h.FD()})
	if err != nil {
		return nil, fmt.Errorf("open netlink in %s: %w", n.label(), err)
	}
	return c, nil
}

// do runs fn on a thread inside the namespace.
func (n Namespace) do(fn func() error) error {
	h, err := n.open()
	if err != nil {
		return err
	}
	if h == nil {
		return fn()
	}
	defer h.Close()
	return h.Do(fn)
}

// EndpointLinkSpec is one interface of a container: a link on a parent in
// Host, created inside NetNS, with its addresses and routes. `vmlink up`,
// `vmlink net connect`, the labs and the CNI plugin all build their
// interfaces from it.
type EndpointLinkSpec struct {
	// Link is the interface: a macvlan, macvtap, ipvlan or VLAN spec whose
	// Name is the interface's name inside NetNS (it may be a name Host has
	// too: link.Create creates it under a temporary name and renames it)
	// and whose Parent is a link in Host. Its MAC (Address), MTU and kind
	// options are used as given; NetNS, Group and Alias are set from NetNS
	// and Mark, and Up is ignored (the link comes up once addressed).
	Link link.Spec
	// Host holds the parent; the zero value is the caller's namespace.
	Host Namespace
	// NetNS is the container's namespace.
	NetNS Namespace
	// Mark and Object are the ownership mark: the link's group is
	// Mark.Group() and its alias Mark.Alias(Object).
	Mark   Mark
	Object string
	// Addrs are the interface's addresses.
	Addrs []netip.Prefix
	// Routes are installed through the interface once it is up.
	Routes []Route
	// Broadcast gives IPv4 addresses their subnet's broadcast address
	// (`ip addr add … brd +`), as the reference CNI plugins' netlink
	// library does; iproute2 without `brd` sets none.
	Broadcast bool
	// LinkOnly stops after creating the link: down, without addresses or
	// routes. A second build with the addresses completes it. It is the
	// CNI plugin's order, whose IPAM plugin runs between the two and may
	// need the link (dhcp), while the link comes up only once addressed,
	// so the kernel announces the addresses as it does (see Announce).
	LinkOnly bool
}

// Route is a route through an endpoint's interface.
type Route struct {
	// Dst is the destination; the zero value is the default route.
	Dst netip.Prefix
	// Gateway is the next hop; the zero value makes the route on-link.
	Gateway netip.Addr
	// IfNoDefault adds a default route only when the namespace has no
	// default route of the gateway's family yet (docker's rule for a
	// container's second network).
	IfNoDefault bool
	// Metric is the route's priority (RTA_PRIORITY); 0 leaves it out, as
	// `ip route add` without `metric` does. A CNI result's route carries
	// one (spec 1.1.0 "priority"), and two routes to one destination
	// differ only by it.
	Metric uint32
	// Table is the routing table; 0 is main. A CNI result's route may
	// name another (spec 1.1.0 "table": source-based routing).
	Table uint32
	// Scope is the route's scope (unix.RT_SCOPE_*); nil keeps the
	// default: link for a route without gateway, universe with one.
	Scope *uint8
}

// EndpointLink is an interface BuildEndpointLink built (or found, already built).
type EndpointLink struct {
	NetNS Namespace
	Name  string
	Index int32
	MAC   net.HardwareAddr
	Addrs []netip.Prefix
	// Created is false when the link existed with the mark and was
	// completed instead; AddedAddrs then counts the addresses it lacked.
	Created    bool
	AddedAddrs int
	// Replaced lists why an existing link with the mark was deleted and
	// made again ("mode: have bridge, want private"); empty otherwise.
	Replaced []string
	// RemovedAddrs counts the addresses an existing link had that the spec
	// no longer gives: they were removed.
	RemovedAddrs int
	mark         Mark
	// kernelAnnounced: the link came up with its addresses and the
	// kernel's arp_notify/ndisc_notify set, so the kernel announced them.
	kernelAnnounced bool
}

// ForeignLinkError is BuildEndpointLink finding a link of the interface's name
// in the namespace that does not carry the mark: it is somebody else's and
// is left alone.
type ForeignLinkError struct {
	Name  string
	NetNS Namespace
	Group uint32
	Alias string
}

func (e *ForeignLinkError) Error() string {
	return fmt.Sprintf("%s exists in %s and is not ours (group %d, alias %q): remove or rename it", e.Name, e.NetNS.label(), e.Group, e.Alias)
}

// featureOf is the kernel feature (module) behind a link kind, from
// internal/feature's one map.
func featureOf(kind string) string {
	if m := feature.Module(kind); m != "" {
		return m
	}
	return kind
}

// BuildEndpointLink builds spec's interface: the link (created in the
// container's namespace, renamed there when its name clashes in Host,
// marked), its addresses, up, its routes. A link of that name carrying the
// mark is completed instead (idempotent re-runs); one without the mark is
// a *ForeignLinkError. When a step fails after the link was created, the
// link is deleted again: nothing is left half-built. The announcement
// (gratuitous ARP / unsolicited NA) is the caller's to send, with
// EndpointLink.Announce, once the wire is ready.
func BuildEndpointLink(ctx context.Context, spec EndpointLinkSpec) (*EndpointLink, error) {
	b := spec.Link.Base()
	name := b.Name
	ec, err := spec.NetNS.dial()
	if err != nil {
		return nil, err
	}
	defer ec.Close()
	ep := &EndpointLink{NetNS: spec.NetNS, Name: name, Addrs: spec.Addrs, mark: spec.Mark}
	eh := link.New(ec)
	m, err := eh.Get(ctx, name)
	if err != nil && !errors.Is(err, link.ErrNotFound) {
		return nil, fmt.Errorf("%s/%s: %w", spec.NetNS, name, err)
	}
	if err == nil {
		if !spec.Mark.Owns(m.Group, m.Alias) {
			return nil, &ForeignLinkError{Name: name, NetNS: spec.NetNS, Group: m.Group, Alias: m.Alias}
		}
		diffs, err := endpointDiffs(ctx, ec, spec)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", spec.NetNS, name, err)
		}
		if len(diffs) == 0 {
			ep.Index, ep.MAC = m.Index, m.Address
			if spec.LinkOnly {
				return ep, nil
			}
			return ep, ep.complete(ctx, ec, spec, m.Up())
		}
		// What the kernel cannot change on a live link (its kind, parent,
		// mode, MAC): the link is made again as the spec says.
		if err := ec.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("%s/%s: replace it (%s): %w", spec.NetNS, name, strings.Join(diffs, "; "), err)
		}
		ep.Replaced = diffs
	}
	if err := createEndpointLink(ctx, spec); err != nil {
		return nil, err
	}
	if m, err = eh.Get(ctx, name); err != nil {
		return nil, fmt.Errorf("read back %s/%s: %w", spec.NetNS, name, err)
	}
	ep.Index, ep.MAC, ep.Created = m.Index, m.Address, true
	if spec.LinkOnly {
		return ep, nil
	}
	if err := ep.complete(ctx, ec, spec, false); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := ec.DelLink(cctx, &rtnl.LinkMessage{Index: m.Index}); derr != nil && !errors.Is(derr, unix.ENODEV) {
			return nil, fmt.Errorf("%w; deleting the new link %s/%s failed too: %v", err, spec.NetNS, name, derr)
		}
		return nil, err
	}
	return ep, nil
}

// createEndpointLink creates spec's link in its namespace through Host.
func createEndpointLink(ctx context.Context, spec EndpointLinkSpec) error {
	b := spec.Link.Base()
	b.Group, b.Alias, b.Up = spec.Mark.Group(), spec.Mark.Alias(spec.Object), false
	tgt, err := spec.NetNS.open()
	if err != nil {
		return err
	}
	if tgt == nil {
		b.NetNS = nil
	} else {
		defer tgt.Close()
		b.NetNS = &link.Target{FD: tgt.FD()}
		if spec.NetNS.Name != "" {
			b.NetNS = &link.Target{Name: spec.NetNS.Name}
		}
	}
	hc, err := spec.Host.dial()
	if err != nil {
		return err
	}
	defer hc.Close()
	if _, err := link.New(hc).Create(ctx, spec.Link); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return &FeatureError{Feature: featureOf(spec.Link.Kind()), Err: err}
		}
		return err
	}
	return nil
}

// complete gives the link its addresses, brings it up and installs the
// routes.
func (ep *EndpointLink) complete(ctx context.Context, ec *rtnl.Conn, spec EndpointLinkSpec, up bool) error {
	where := spec.NetNS.String() + "/" + ep.Name
	if !ep.Created {
		n, err := removeOtherAddrs(ctx, ec, ep.Index, spec.Addrs)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		ep.RemovedAddrs = n
		if mtu := spec.Link.Base().MTU; mtu != 0 {
			if err := ec.SetLink(ctx, &rtnl.LinkMessage{Index: ep.Index, Attrs: rtnl.LinkAttrs{MTU: &mtu}}); err != nil {
				return fmt.Errorf("%s: set mtu %d: %w", where, mtu, err)
			}
		}
	}
	for _, p := range spec.Addrs {
		added, err := ensureAddrBrd(ctx, ec, ep.Index, p, spec.Broadcast)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if added && !ep.Created {
			ep.AddedAddrs++
		}
	}
	if !up {
		// Best effort: without the sysctls, Announce sends the frames.
		ep.kernelAnnounced = spec.NetNS.kernelAnnounces(ep.Name, spec.Addrs) == nil
		up = true
		if err := link.New(ec).Set(ctx, ep.Name, link.Change{Up: &up}); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	for _, r := range spec.Routes {
		if r.IfNoDefault && !r.Dst.IsValid() {
			has, err := hasDefaultRoute(ctx, ec, r.Gateway.Is6())
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if has {
				continue
			}
		}
		rr := rtnl.Route{Gateway: r.Gateway, OIF: uint32(ep.Index), Metric: r.Metric, Table: r.Table, Scope: r.Scope}
		if r.Dst.IsValid() && r.Dst.Bits() > 0 {
			rr.Dst = r.Dst.Masked()
		}
		if err := ensureRoute(ctx, ec, rr); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	// The MAC as the kernel has it once up (a macvtap may change it).
	if l, err := link.New(ec).Get(ctx, ep.Name); err == nil {
		ep.MAC = l.Address
	}
	return nil
}

// removeOtherAddrs removes the link's global addresses that are not in
// want (an address the file no longer declares: "replace", not "add"). The
// kernel's own IPv6 link-local address stays.
func removeOtherAddrs(ctx context.Context, c *rtnl.Conn, index int32, want []netip.Prefix) (int, error) {
	have, err := c.Addrs(ctx, unix.AF_UNSPEC, uint32(index))
	if err != nil {
		return 0, fmt.Errorf("list addresses: %w", err)
	}
	n := 0
	for i := range have {
		p := have[i].Prefix()
		if !p.IsValid() || p.Addr().IsLinkLocalUnicast() || slices.Contains(want, p) {
			continue
		}
		if err := c.DelAddr(ctx, uint32(index), p); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return n, fmt.Errorf("remove address %s: %w", p, err)
		}
		n++
	}
	return n, nil
}

// endpointDiffs compares the existing link called like spec's with the
// spec, in what only making it again changes: kind, parent, MAC, mode
// (macvlan, macvtap, ipvlan and its flag), VLAN id.
func endpointDiffs(ctx context.Context, ec *rtnl.Conn, spec EndpointLinkSpec) ([]string, error) {
	b := spec.Link.Base()
	l, err := link.New(ec).Get(ctx, b.Name)
	if err != nil {
		return nil, err
	}
	var diffs []string
	diff := func(what string, have, want any) {
		if fmt.Sprint(have) != fmt.Sprint(want) {
			diffs = append(diffs, fmt.Sprintf("%s: have %v, want %v", what, have, want))
		}
	}
	diff("kind", l.Kind, spec.Link.Kind())
	if len(diffs) > 0 {
		return diffs, nil
	}
	hc, err := spec.Host.dial()
	if err != nil {
		return nil, err
	}
	defer hc.Close()
	if pm, err := link.New(hc).Get(ctx, b.Parent); err != nil && !errors.Is(err, link.ErrNotFound) {
		return nil, err
	} else if err == nil && l.ParentIndex != 0 && l.ParentIndex != pm.Index {
		// (A link whose parent's namespace has no id in its own is
		// reported without IFLA_LINK: its parent is then unknown here.)
		diffs = append(diffs, fmt.Sprintf("parent: want %s", b.Parent))
	}
	if b.Address != nil {
		diff("address", l.Address, b.Address)
	}
	switch v := spec.Link.(type) {
	case *link.Macvlan:
		diff("mode", macvlanModeOf(l), orBridge(v.Mode))
	case *link.Macvtap:
		diff("mode", macvlanModeOf(l), orBridge(v.Mode))
	case *link.IPVlan:
		if l.IPVlan != nil {
			if v.Mode != link.IPVlanModeUnset {
				diff("mode", l.IPVlan.Mode, v.Mode)
			}
			have := link.IPVlanFlagBridge
			if l.IPVlan.Flag != nil && *l.IPVlan.Flag != link.IPVlanFlagUnset {
				have = *l.IPVlan.Flag
			}
			want := v.Flag
			if want == link.IPVlanFlagUnset {
				want = link.IPVlanFlagBridge
			}
			diff("flag", have, want)
		}
	case *link.VLAN:
		if l.VLAN != nil {
			diff("id", l.VLAN.ID, v.ID)
		}
	}
	return diffs, nil
}

func macvlanModeOf(l *link.Link) link.MacvlanMode {
	if l.Macvlan == nil {
		return link.MacvlanModeUnset
	}
	return l.Macvlan.Mode
}

func orBridge(m link.MacvlanMode) link.MacvlanMode {
	if m == link.MacvlanModeUnset {
		return link.MacvlanModeBridge
	}
	return m
}

// hasDefaultRoute reports whether the main table has a default route of
// the family.
func hasDefaultRoute(ctx context.Context, c *rtnl.Conn, v6 bool) (bool, error) {
	fam := uint8(unix.AF_INET)
	if v6 {
		fam = unix.AF_INET6
	}
	rs, err := c.Routes(ctx, fam)
	if err != nil {
		return false, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range rs {
		if r.DstLen == 0 && r.Table == unix.RT_TABLE_MAIN {
			return true, nil
		}
	}
	return false, nil
}

// announcement is the endpoint's gratuitous ARP / unsolicited NA.
func (ep *EndpointLink) announcement() announcement {
	return announcement{NetNS: ep.NetNS, Index: int(ep.Index), Name: ep.Name, MAC: ep.MAC, Addrs: ep.Addrs}
}

// Announce makes sure a gratuitous ARP for each IPv4 address and an
// unsolicited neighbour advertisement for each IPv6 address of the
// endpoint went out, so neighbours and switches forget a previous holder's
// MAC. When the build brought the link up with its addresses, the kernel
// already sent them (kernelAnnounces); otherwise (a link that was up
// before its addresses came) they are sent from a packet socket.
func (ep *EndpointLink) Announce() error {
	if ep.kernelAnnounced {
		return nil
	}
	an := ep.announcement()
	return an.send()
}

// Remove deletes the endpoint's interface if it is still there and ours.
func (ep *EndpointLink) Remove(ctx context.Context) error {
	return RemoveEndpointLink(ctx, ep.NetNS, ep.Name, ep.mark)
}

// RemoveEndpointLink deletes the interface called name in ns if it carries the
// mark. An interface or namespace already gone is no error (a CNI DEL may
// come twice); a link of that name without the mark is left alone.
func RemoveEndpointLink(ctx context.Context, ns Namespace, name string, mark Mark) error {
	if ns.Name != "" && !netns.Exists(ns.Name) {
		return nil
	}
	ec, err := ns.dial()
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	defer ec.Close()
	m, err := link.New(ec).Get(ctx, name)
	switch {
	case errors.Is(err, link.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if !mark.Owns(m.Group, m.Alias) {
		return nil
	}
	if err := ec.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("remove %s from %s: %w", name, ns.label(), err)
	}
	return nil
}
