package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify"
)

// AppliedVerifyTopologies reads back from the kernel what `vmlink up`
// applied for t, without creating or changing anything, and describes it
// the way package verify judges it: one verify.Topology per root parent,
// as (*Built).VerifyTopologies gives right after Up. It is how
// `vmlink verify --topology FILE` finds a topology file's objects: by the
// names the file gives (parents in the host namespace, each endpoint's
// interfaces in its namespace, host shims), with the MACs and addresses the
// kernel has — those Up allocated included. VLAN parents Up created for
// "X.N" networks are listed in Topology.VLANLinks, so their own frames are
// credited to them.
//
// An interface the file names that does not exist means the file was not
// applied (or was taken down): the error wraps verify.ErrEnvironment.
func AppliedVerifyTopologies(ctx context.Context, t *Topology) ([]verify.Topology, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	c := conns{}
	defer c.close()
	a := &applier{t: t}
	b := &Built{Topology: t}
	notApplied := func(what, ns string) error {
		return fmt.Errorf("%w: topology %s: %s does not exist in %s: apply the file first (vmlink up -f FILE)", verify.ErrEnvironment, t.Name, what, nsLabel(ns))
	}
	read := func(ns, name, what string) (*link.Link, []netip.Prefix, error) {
		conn, err := c.get(ns)
		if err != nil {
			if nsMissing(err) {
				return nil, nil, notApplied("namespace "+ns, ns)
			}
			return nil, nil, fmt.Errorf("%w: %s: %w", verify.ErrEnvironment, what, err)
		}
		m, err := link.New(conn).Get(ctx, name)
		switch {
		case errors.Is(err, link.ErrNotFound):
			return nil, nil, notApplied(what, ns)
		case err != nil:
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		addrs, err := linkAddrs(ctx, conn, uint32(m.Index))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", what, err)
		}
		return m, addrs, nil
	}
	for _, p := range t.Parents {
		m, _, err := read(t.Host, p.Name, "parent "+p.Name)
		if err != nil {
			return nil, err
		}
		b.Parents = append(b.Parents, builtParent(&p, t.Host, m))
	}
	for _, e := range t.Endpoints {
		for j, it := range e.Interfaces {
			n := a.network(it.Network)
			ns, ifname := e.netns(), it.name(j)
			m, addrs, err := read(ns, ifname, fmt.Sprintf("interface %s of endpoint %s", ifname, e.Name))
			if err != nil {
				return nil, err
			}
			bi := BuiltInterface{Endpoint: e.Name, NetNS: ns, Name: ifname, Network: n.Name, Kind: n.driver(), Mode: effectiveMode(n),
				Lower: n.Parent, NoPromisc: n.NoPromisc, Sources: it.SourceMACs, MAC: m.Address, Addrs: addrs}
			bi.Parent, bi.VLAN, _ = a.lower(n)
			b.Interfaces = append(b.Interfaces, bi)
		}
	}
	for _, s := range t.HostShims {
		n := a.network(s.Network)
		m, addrs, err := read(t.Host, s.Name, "host shim "+s.Name)
		if err != nil {
			return nil, err
		}
		bi := BuiltInterface{Endpoint: "host", NetNS: t.Host, Name: s.Name, Network: n.Name, Kind: "macvlan", Mode: "bridge",
			Lower: n.Parent, Shim: true, MAC: m.Address, Addrs: addrs, Routes: shimRoutes(&s)}
		bi.Parent, bi.VLAN, _ = a.lower(n)
		b.Interfaces = append(b.Interfaces, bi)
	}
	out := b.VerifyTopologies()
	for i := range out {
		// Parents used directly (not declared) have no MAC yet: read it.
		if len(out[i].Parent.MAC) == 0 {
			if m, _, err := read(t.Host, out[i].Parent.Name, "parent "+out[i].Parent.Name); err == nil {
				out[i].Parent.MAC = m.Address
			}
		}
	}
	// The "X.N" VLAN parents: lowers on the root parent's wire.
	seen := map[string]bool{}
	for _, n := range t.Networks {
		root, vid, isVLAN := a.lower(&n)
		if !isVLAN || seen[n.Parent] {
			continue
		}
		seen[n.Parent] = true
		for i := range out {
			if out[i].Parent.Name == root {
				out[i].VLANLinks = append(out[i].VLANLinks, verify.Endpoint{
					Name: n.Parent, NetNS: t.Host, Interface: n.Parent, Kind: verify.KindVLAN,
					VLANs: []verify.VLANTag{{ID: vid, Protocol: rtnl.VLANProtocol8021Q}},
				})
			}
		}
	}
	return out, nil
}

// linkAddrs returns a link's addresses, IPv4 first, without IPv6
// link-local ones (every interface has one; verify probes what the
// topology gave).
func linkAddrs(ctx context.Context, c *rtnl.Conn, index uint32) ([]netip.Prefix, error) {
	msgs, err := c.Addrs(ctx, unix.AF_UNSPEC, index)
	if err != nil {
		return nil, fmt.Errorf("read addresses: %w", err)
	}
	var v4, v6 []netip.Prefix
	for i := range msgs {
		p := msgs[i].Prefix()
		switch {
		case !p.IsValid() || p.Addr().IsLinkLocalUnicast():
		case p.Addr().Is4():
			v4 = append(v4, p)
		default:
			v6 = append(v6, p)
		}
	}
	return append(v4, v6...), nil
}

// nsMissing reports whether dialling a namespace failed because it does
// not exist.
func nsMissing(err error) bool {
	return errors.Is(err, unix.ENOENT)
}
