package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// ConnectSpec is `vmlink net connect`.
type ConnectSpec struct {
	Network   string
	Container string // the namespace; created when missing
	IPs       []netip.Addr
	MAC       net.HardwareAddr
}

// Connect attaches a container (a named namespace, created when missing
// and then owned) to a network: an interface named eth0, eth1… with its
// addresses, a default route via the gateway when the namespace has none of
// that family, and a gratuitous ARP / unsolicited NA.
func (n *Networks) Connect(ctx context.Context, spec ConnectSpec) (*Attached, error) {
	var out *Attached
	err := n.with(func(st *netState) error {
		rec := st.Networks[spec.Network]
		if rec == nil {
			return conflict("network %s not found", spec.Network)
		}
		if err := n.checkHost(rec); err != nil {
			return err
		}
		if err := netns.ValidateName(spec.Container); err != nil {
			return refuse("container %q: %v", spec.Container, err)
		}
		if _, ok := rec.Endpoints[spec.Container]; ok {
			return conflict("endpoint with name %s already exists in network %s", spec.Container, rec.Name)
		}
		if rec.Mode == "passthru" && len(rec.Endpoints) > 0 {
			return conflict("network %s is passthru: it takes one container, and %s is attached", rec.Name, firstKey(rec.Endpoints))
		}
		if spec.MAC != nil && rec.Driver == "ipvlan" {
			return refuse("--mac-address %s: ipvlan interfaces share the parent's MAC address: drop --mac-address", spec.MAC)
		}
		if spec.MAC != nil {
			if err := link.CheckUnicastMAC(spec.MAC); err != nil {
				return refuse("--mac-address %s: %v", spec.MAC, err)
			}
		}
		addrs, err := allocate(rec, spec.Container, spec.IPs)
		if err != nil {
			return err
		}
		a, err := n.attach(ctx, st, rec, spec, addrs)
		if err != nil {
			return err
		}
		if err := n.shimHostRoutes(ctx, rec, a.Addrs, true); err != nil {
			_ = n.detach(context.WithoutCancel(ctx), st, rec, spec.Container, a)
			return err
		}
		if rec.Endpoints == nil {
			rec.Endpoints = map[string]*Attached{}
		}
		rec.Endpoints[spec.Container] = a
		st.Pending = slices.DeleteFunc(st.Pending, func(p string) bool { return p == spec.Container })
		out = a
		return nil
	})
	return out, err
}

func firstKey(m map[string]*Attached) string {
	for k := range m {
		return k
	}
	return ""
}

func (n *Networks) attach(ctx context.Context, st *netState, rec *NetworkRecord, spec ConnectSpec, addrs []netip.Prefix) (a *Attached, err error) {
	ns := spec.Container
	created := false
	switch {
	case !netns.Exists(ns):
		// Intent first: a kill after this leaves a record the next
		// reconcile (or this connect, retried) acts on.
		if !slices.Contains(st.Pending, ns) {
			st.Pending = append(st.Pending, ns)
		}
		if err := writeFileAtomic(n.statePath(), st); err != nil {
			return nil, err
		}
		if err := createNS(ctx, ns, n.mark().nsAlias()); err != nil {
			netns.Delete(ns)
			return nil, err
		}
		created = true
	case slices.Contains(st.Pending, ns):
		// A connect killed after creating the namespace, maybe before
		// marking it: it is still ours. Mark it now.
		if err := markNS(ctx, ns, n.mark().nsAlias()); err != nil {
			return nil, err
		}
		created = true
	default:
		if owned, _ := nsOwned(ctx, ns, n.mark().nsAlias()); owned {
			created = true // created by an earlier connect: still ours
		}
	}
	// What an interrupted connect of this container to this network left
	// (no record, since the container is not attached) goes first, so a
	// retry ends with one interface, not two with the same address.
	if err := n.removeUnrecorded(ctx, rec, ns); err != nil {
		return nil, fmt.Errorf("connect %s to %s: %w", ns, rec.Name, err)
	}
	// cleanup removes a namespace this connect made; the interface is
	// BuildEndpointLink's to remove when it fails.
	cleanup := func() {
		if created && !usedElsewhere(st, rec, ns) {
			netns.Delete(ns)
		}
	}
	ec, err := rtnl.DialNetNS(ns, nil)
	if err != nil {
		cleanup()
		return nil, err
	}
	defer ec.Close()
	links, err := ec.Links(ctx)
	if err != nil {
		cleanup()
		return nil, err
	}
	ifname := ""
	for i := 0; i < 100 && ifname == ""; i++ {
		cand := fmt.Sprintf("eth%d", i)
		if !slices.ContainsFunc(links, func(m rtnl.LinkMessage) bool { return m.Attrs.Name == cand }) {
			ifname = cand
		}
	}
	common := link.Common{Name: ifname, Parent: rec.Parent, Address: spec.MAC}
	var ls link.Spec
	switch rec.Driver {
	case "ipvlan":
		mode, _ := link.ParseIPVlanMode(rec.Mode)
		flag, _ := parseIPVlanFlag(rec.Flag)
		ls = &link.IPVlan{Common: common, Mode: mode, Flag: flag}
	default:
		mode, _ := link.ParseMacvlanMode(rec.Mode)
		mv := link.Macvlan{Common: common, Mode: mode}
		if rec.Driver == "macvtap" {
			mt := link.Macvtap(mv)
			ls = &mt
		} else {
			ls = &mv
		}
	}
	es := EndpointLinkSpec{Link: ls, Host: NamedNS(rec.Host), NetNS: NamedNS(ns), Mark: n.mark(), Object: endpointObject(rec.Name, ns, ifname), Addrs: addrs}
	if !rec.Internal {
		for _, c := range rec.IPAM {
			if c.Gateway.IsValid() {
				es.Routes = append(es.Routes, Route{Gateway: c.Gateway, IfNoDefault: true})
			}
		}
	}
	ep, err := BuildEndpointLink(ctx, es)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("connect %s to %s: %w", ns, rec.Name, err)
	}
	_ = ep.Announce()
	return &Attached{NetNS: ns, Interface: ifname, MAC: ep.MAC.String(), Addrs: addrs, EndpointID: newID(), NSCreated: created}, nil
}

// usedElsewhere reports whether ns is attached to a network other than rec.
func usedElsewhere(st *netState, rec *NetworkRecord, ns string) bool {
	for _, o := range st.Networks {
		if o == rec {
			continue
		}
		if _, ok := o.Endpoints[ns]; ok {
			return true
		}
	}
	return false
}

// Disconnect detaches a container: its interface goes, and the namespace
// too when connect created it and no other network uses it.
func (n *Networks) Disconnect(ctx context.Context, network, container string) error {
	return n.with(func(st *netState) error {
		rec := st.Networks[network]
		if rec == nil {
			return conflict("network %s not found", network)
		}
		if err := n.checkHost(rec); err != nil {
			return err
		}
		a := rec.Endpoints[container]
		if a == nil {
			return conflict("container %s is not connected to network %s", container, network)
		}
		if err := n.detach(ctx, st, rec, container, a); err != nil {
			return err
		}
		if err := n.shimHostRoutes(ctx, rec, a.Addrs, false); err != nil {
			return err
		}
		delete(rec.Endpoints, container)
		return nil
	})
}

func (n *Networks) detach(ctx context.Context, st *netState, rec *NetworkRecord, container string, a *Attached) error {
	if !netns.Exists(a.NetNS) {
		return nil
	}
	// The interface goes by its own RTM_DELLINK even when its namespace
	// goes too. The kernel tears a deleted namespace's links down later,
	// in its cleanup work, and until then an ipvlan keeps its addresses
	// on the parent's port (ipvlan_addr_busy walks every ipvlan of the
	// port), so a connect of the same address right after would fail with
	// "Address already assigned to an ipvlan device". RTM_DELLINK takes
	// them off the port before it returns (ipvlan_link_delete).
	if err := RemoveEndpointLink(ctx, NamedNS(a.NetNS), a.Interface, n.mark()); err != nil {
		return fmt.Errorf("disconnect %s: %w", container, err)
	}
	if a.NSCreated && !usedElsewhere(st, rec, container) {
		if err := netns.Delete(a.NetNS); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// endpointObject is the alias object of a container's interface on a
// network: "ep/NETWORK/CONTAINER/IFNAME", naming the interface so that a
// reconcile tells the recorded interface from one an interrupted connect
// left. (Before, the alias lacked "/IFNAME": legacyEndpointObject.)
func endpointObject(network, ns, ifname string) string {
	return legacyEndpointObject(network, ns) + "/" + ifname
}

func legacyEndpointObject(network, ns string) string { return "ep/" + network + "/" + ns }

// removeUnrecorded deletes the links in container ns that a connect of ns
// to rec left unrecorded: those marked as rec's interfaces in ns, and any
// link of this state's group without an alias yet (a creation killed
// before its alias was set). Called under the state lock with ns not
// attached to rec, so none of them is recorded.
func (n *Networks) removeUnrecorded(ctx context.Context, rec *NetworkRecord, ns string) error {
	c, err := rtnl.DialNetNS(ns, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	links, err := link.New(c).List(ctx, link.Filter{})
	if err != nil {
		return err
	}
	mark := n.mark()
	legacy := mark.Alias(legacyEndpointObject(rec.Name, ns))
	for _, m := range links {
		alias := m.Alias
		if m.Name == "lo" || m.Group != mark.Group() ||
			(alias != "" && alias != legacy && !strings.HasPrefix(alias, legacy+"/")) {
			continue
		}
		if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("remove %s left by an interrupted connect: %w", m.Name, err)
		}
	}
	return nil
}
