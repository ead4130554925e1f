package dataplane

// Up's parents: the sandbox switch (bridge, veth wire), the parents the
// topology declares and the VLAN parents it creates, and the wait for the
// wires to carry frames.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

func (a *applier) ensureBridge(ctx context.Context, p *Parent) error {
	s := p.Sandbox
	name := s.bridge(p.Name)
	c, err := a.c.get(s.Switch)
	if err != nil {
		return err
	}
	h := link.New(c)
	m, err := h.Get(ctx, name)
	switch {
	case err == nil:
		if err := a.claim(m, s.Switch, "sandbox.bridge"); err != nil {
			return err
		}
		if m.Kind != "bridge" {
			return fmt.Errorf("%s in %s is a %s, not a bridge", name, nsLabel(s.Switch), m.Kind)
		}
		return nil
	case !errors.Is(err, link.ErrNotFound):
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	msg := &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name, Info: &rtnl.LinkInfo{Kind: "bridge"}}}
	if s.MAC != "" {
		msg.Attrs.Address, _ = parseMAC(s.MAC)
	}
	m, err = a.newMarkedLink(ctx, s.Switch, msg, "switch/"+p.Name)
	if err != nil {
		return err
	}
	for _, as := range s.Addresses {
		pfx, _ := parsePrefix(as)
		if _, err := ensureAddr(ctx, c, m.Index, pfx); err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
	}
	up := true
	if err := h.Set(ctx, name, link.Change{Up: &up}); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if len(s.Addresses) > 0 {
		mac := m.Address
		if m2, err := h.Get(ctx, name); err == nil {
			mac = m2.Address
		}
		var addrs []netip.Prefix
		for _, as := range s.Addresses {
			pfx, _ := parsePrefix(as)
			addrs = append(addrs, pfx)
		}
		a.announces = append(a.announces, announcement{NetNS: NamedNS(s.Switch), Index: int(m.Index), Name: name, MAC: mac, Addrs: addrs})
	}
	return nil
}

func (a *applier) ensureVeth(ctx context.Context, p *Parent) error {
	s := p.Sandbox
	hc, err := a.c.get(a.t.Host)
	if err != nil {
		return err
	}
	sc, err := a.c.get(s.Switch)
	if err != nil {
		return err
	}
	m, err := link.New(hc).Get(ctx, p.Name)
	switch {
	case err == nil:
		if err := a.claim(m, a.t.Host, "parents[].name"); err != nil {
			return err
		}
		if m.Kind != "veth" {
			return fmt.Errorf("%s in %s is a %s, not the sandbox's veth", p.Name, nsLabel(a.t.Host), m.Kind)
		}
		return a.convergeVethMTU(ctx, p, hc, sc, m)
	case !errors.Is(err, link.ErrNotFound):
		return fmt.Errorf("parent %s: %w", p.Name, err)
	}
	sw, err := netns.Open(s.Switch)
	if err != nil {
		return err
	}
	defer sw.Close()
	fd, g := uint32(sw.FD()), a.mark.Group()
	msg := &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: p.Name, Info: &rtnl.LinkInfo{Kind: "veth", Data: &rtnl.Veth{
		Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: p.Name, NetNSFD: &fd, Group: &g}},
	}}}}
	if p.MTU != 0 {
		mtu := p.MTU
		msg.Attrs.MTU = &mtu
		msg.Attrs.Info.Data.(*rtnl.Veth).Peer.Attrs.MTU = &mtu
	}
	m, err = a.newMarkedLink(ctx, a.t.Host, msg, "parent/"+p.Name)
	if err != nil {
		return err
	}
	// The switch's end: marked, on the bridge, hairpin as asked, up.
	sh := link.New(sc)
	alias, br, up := a.mark.Alias("port/"+p.Name), s.bridge(p.Name), true
	if err := sh.Set(ctx, p.Name, link.Change{Alias: &alias}); err != nil {
		return fmt.Errorf("switch port %s in %s: %w", p.Name, nsLabel(s.Switch), err)
	}
	if err := sh.Set(ctx, p.Name, link.Change{Master: &br}); err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	if s.Hairpin {
		if err := sh.Set(ctx, p.Name, link.Change{BridgePort: &link.BridgePortChange{Hairpin: &up}}); err != nil {
			return fmt.Errorf("port %s: %w", p.Name, err)
		}
	}
	if err := sh.Set(ctx, p.Name, link.Change{Up: &up}); err != nil {
		return fmt.Errorf("port %s: %w", p.Name, err)
	}
	return link.New(hc).Set(ctx, m.Name, link.Change{Up: &up})
}

// convergeVethMTU gives an existing sandbox veth (both ends) the MTU the
// topology now declares.
func (a *applier) convergeVethMTU(ctx context.Context, p *Parent, hc, sc *rtnl.Conn, m *link.Link) error {
	if p.MTU == 0 || m.MTU == p.MTU {
		return nil
	}
	mtu := p.MTU
	port, err := link.New(sc).Get(ctx, p.Name)
	if err != nil {
		return fmt.Errorf("find the switch port %s in %s: %w", p.Name, nsLabel(p.Sandbox.Switch), err)
	}
	for _, end := range []struct {
		c     *rtnl.Conn
		index int32
	}{{sc, port.Index}, {hc, m.Index}} {
		if err := end.c.SetLink(ctx, &rtnl.LinkMessage{Index: end.index, Attrs: rtnl.LinkAttrs{MTU: &mtu}}); err != nil {
			return fmt.Errorf("parent %s: set mtu %d: %w", p.Name, mtu, err)
		}
	}
	a.built.Created++
	return nil
}

// ensureParent checks the parent exists, brings a sandbox parent up and
// gives the host stack its addresses.
func (a *applier) ensureParent(ctx context.Context, p *Parent) error {
	c, err := a.c.get(a.t.Host)
	if err != nil {
		return err
	}
	h := link.New(c)
	m, err := h.Get(ctx, p.Name)
	switch {
	case errors.Is(err, link.ErrNotFound):
		return fmt.Errorf("parent %s: %w in %s: create it, or give it a sandbox to have one made", p.Name, ErrNoInterface, nsLabel(a.t.Host))
	case err != nil:
		return fmt.Errorf("parent %s: %w", p.Name, err)
	}
	if m.Flags&unix.IFF_LOOPBACK != 0 {
		return fmt.Errorf("parent %s: a loopback cannot be a parent", p.Name)
	}
	ours := a.mark.Owns(m.Group, m.Alias)
	if ours && !m.Up() {
		up := true
		if err := h.Set(ctx, p.Name, link.Change{Up: &up}); err != nil {
			return fmt.Errorf("parent %s: %w", p.Name, err)
		}
	}
	bp := builtParent(p, a.t.Host, m)
	for _, pfx := range bp.Addrs {
		if err := a.ensureAddrOn(ctx, a.t.Host, m, pfx, ours); err != nil {
			return fmt.Errorf("parent %s: %w", p.Name, err)
		}
	}
	a.built.Parents = append(a.built.Parents, bp)
	return nil
}

// builtParent describes parent p (link m, in namespace host) as Up reports
// it: its MAC, sandbox switch, and the addresses the topology gives it and
// the outside end. The topology is validated, so the prefixes parse.
func builtParent(p *Parent, host string, m *link.Link) BuiltParent {
	bp := BuiltParent{Name: p.Name, NetNS: host, MAC: m.Address, Sandbox: p.Sandbox != nil}
	if s := p.Sandbox; s != nil {
		bp.Switch, bp.Bridge, bp.Hairpin = s.Switch, s.bridge(p.Name), s.Hairpin
		for _, as := range s.Addresses {
			pfx, _ := parsePrefix(as)
			bp.Outside = append(bp.Outside, pfx)
		}
	}
	for _, as := range p.Addresses {
		pfx, _ := parsePrefix(as)
		bp.Addrs = append(bp.Addrs, pfx)
	}
	return bp
}

// ensureAddrOn adds an address; on a link the topology does not own the
// addition is journaled and remembered in the state, so Down takes it back.
func (a *applier) ensureAddrOn(ctx context.Context, ns string, m *link.Link, p netip.Prefix, ownedLink bool) error {
	c, err := a.c.get(ns)
	if err != nil {
		return err
	}
	have, err := hasAddr(ctx, c, m.Index, p)
	if err != nil {
		return err
	}
	if have {
		// Another topology's address that this one declares too: share
		// it, so that the other's Down leaves it to this one.
		r := addrRecord{NetNS: ns, Link: m.Name, Prefix: p.String()}
		if ownedLink || a.created[ns] || slices.Contains(a.st.Addrs, r) {
			return nil
		}
		shared, err := otherDeclares(a.dir, a.t.Name, r)
		if err != nil || !shared {
			return err
		}
		a.st.addAddr(r)
		return a.st.save(a.dir)
	}
	if !ownedLink && !a.created[ns] {
		if a.st.addAddr(addrRecord{NetNS: ns, Link: m.Name, Prefix: p.String()}) {
			if err := a.st.save(a.dir); err != nil {
				return err
			}
		}
		a.record(undo{kind: undoAddr, ns: ns, name: m.Name, prefix: p})
	}
	a.built.Created++
	_, err = ensureAddr(ctx, c, m.Index, p)
	return err
}

func (a *applier) ensureVLANParent(ctx context.Context, n *Network) error {
	_, created, err := EnsureVLANParent(ctx, NamedNS(a.t.Host), n.Parent, a.mark)
	var pm *ParentMismatchError
	switch {
	case errors.As(err, &pm):
		return fmt.Errorf("network %s: parent %s exists but is not VLAN %d on %s (it is %s): rename the network's parent or remove the link",
			n.Name, n.Parent, pm.ID, pm.Base, pm.Have)
	case err != nil:
		var fe *FeatureError
		if errors.As(err, &fe) {
			return err
		}
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if created {
		a.record(undo{kind: undoLink, ns: a.t.Host, name: n.Parent, local: true})
		a.built.Created++
	}
	return nil
}

func describeLink(l *link.Link) string {
	switch {
	case l.VLAN != nil:
		return fmt.Sprintf("VLAN %d on %s", l.VLAN.ID, orDefault(l.Parent, "another namespace's link"))
	case l.Kind != "":
		return "a " + l.Kind
	}
	return "a link without a kind"
}

// wireWait bounds how long Up waits for a sandbox wire to carry frames.
const wireWait = 5 * time.Second

// waitWires waits until every sandbox wire carries frames: its switch port
// forwards and the parent and the interfaces on it are operationally up.
// Carrier changes reach the bridge and the macvlans through the kernel's
// link watch, which may run up to a second after the link came up; a probe
// sent before would be lost although nothing is wrong.
func (a *applier) waitWires(ctx context.Context) error {
	type check struct {
		ns, name string
		port     bool
	}
	var checks []check
	sandboxed := map[string]bool{}
	for _, p := range a.t.Parents {
		if p.Sandbox != nil {
			sandboxed[p.Name] = true
			checks = append(checks, check{p.Sandbox.Switch, p.Name, true}, check{a.t.Host, p.Name, false})
		}
	}
	for _, it := range a.built.Interfaces {
		if sandboxed[it.Parent] {
			checks = append(checks, check{it.NetNS, it.Name, false})
		}
	}
	ctx, cancel := context.WithTimeout(ctx, wireWait)
	defer cancel()
	for _, c := range checks {
		conn, err := a.c.get(c.ns)
		if err != nil {
			return err
		}
		for {
			m, err := link.New(conn).Get(ctx, c.name)
			if err != nil && !errors.Is(err, link.ErrNotFound) {
				return fmt.Errorf("wait for %s in %s: %w", c.name, nsLabel(c.ns), err)
			}
			if err == nil && ((c.port && portForwarding(m)) || (!c.port && carriesFrames(m))) {
				break
			}
			select {
			case <-ctx.Done():
				what := "up"
				if c.port {
					what = "forwarding"
				}
				return fmt.Errorf("%s in %s is not %s after %s: %w", c.name, nsLabel(c.ns), what, wireWait, ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return nil
}
