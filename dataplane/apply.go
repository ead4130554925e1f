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
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// Options tune Up and Down; the zero value is right for the CLI.
type Options struct {
	// StateDir holds the state files and the lock; "" is DefaultStateDir.
	StateDir string
	// Progress, if set, is told each step before it runs.
	Progress func(step string)

	// beforeStep lets tests fail or cancel Up at a chosen step.
	beforeStep func(i, n int, what string) error
}

func (o *Options) stateDir() string {
	if o == nil || o.StateDir == "" {
		return DefaultStateDir
	}
	return o.StateDir
}

// cleanupTimeout bounds a rollback or Down: the kernel answers every
// request at once, so hitting it means something is badly wrong.
const cleanupTimeout = 60 * time.Second

// RollbackError is Up failing: Err is what went wrong, Removed how many
// objects created before the failure were removed again, and CleanupErr
// what could not be removed (nil when the rollback was complete).
type RollbackError struct {
	Step       string
	Err        error
	Removed    int
	CleanupErr error
}

func (e *RollbackError) Error() string {
	s := fmt.Sprintf("%s: %v; rolled back: removed the %d objects created so far", e.Step, e.Err, e.Removed)
	if e.CleanupErr != nil {
		s += fmt.Sprintf(", but the rollback failed too: %v (run `vmlink down` on the same file)", e.CleanupErr)
	}
	return s
}

func (e *RollbackError) Unwrap() error { return e.Err }

// Built is what Up applied: every namespace and interface of the
// topology, read back from the kernel, and how many objects this run
// created (0 when the topology was already applied).
type Built struct {
	Topology   *Topology // with the addresses Up allocated
	Namespaces []BuiltNS
	Parents    []BuiltParent
	Interfaces []BuiltInterface
	Created    int
}

// BuiltNS is a namespace of the topology.
type BuiltNS struct {
	Name string `json:"name"`
	Role string `json:"role"` // host, switch or endpoint
	// Owned: the topology created it and Down removes it.
	Owned bool `json:"owned"`
}

// BuiltParent is a parent interface in the host namespace.
type BuiltParent struct {
	Name    string           `json:"name"`
	NetNS   string           `json:"netns,omitempty"`
	MAC     net.HardwareAddr `json:"-"`
	Addrs   []netip.Prefix   `json:"addresses,omitempty"`
	Switch  string           `json:"switch,omitempty"` // sandbox switch namespace
	Bridge  string           `json:"bridge,omitempty"`
	Hairpin bool             `json:"hairpin"`
	Sandbox bool             `json:"sandbox"`
	// Outside are the switch's own addresses (on Bridge in Switch).
	Outside []netip.Prefix `json:"outside,omitempty"`
}

// BuiltInterface is an endpoint interface or a host shim.
type BuiltInterface struct {
	Endpoint  string           `json:"endpoint"` // "host" for a shim
	NetNS     string           `json:"netns,omitempty"`
	Name      string           `json:"ifname"`
	Network   string           `json:"network"`
	Kind      string           `json:"kind"`
	Mode      string           `json:"mode,omitempty"`
	Lower     string           `json:"lower"`  // the link it sits on (X or X.N)
	Parent    string           `json:"parent"` // the root parent frames cross
	VLAN      uint16           `json:"vlan,omitempty"`
	MAC       net.HardwareAddr `json:"-"`
	Addrs     []netip.Prefix   `json:"addresses"`
	Gateways  []netip.Addr     `json:"gateways,omitempty"`
	NoPromisc bool             `json:"nopromisc,omitempty"`
	Sources   []string         `json:"source_macs,omitempty"`
	Shim      bool             `json:"shim,omitempty"`
	// Routes are a shim's routes to the containers (metric 0).
	Routes []netip.Prefix `json:"routes,omitempty"`
}

type undoKind int

const (
	undoNS undoKind = iota + 1
	undoLink
	undoAddr
	undoSysctl
)

// undo is one journal entry, recorded before the kernel is asked to
// create the object, so an interrupted request is undone too.
type undo struct {
	kind undoKind
	ns   string // namespace of the link or address
	name string // namespace or link name
	// local: the link has no lower link in another namespace, so it goes
	// away with its namespace.
	local  bool
	prefix netip.Prefix
	sysctl sysctlRecord
}

type applier struct {
	t         *Topology
	mark      Mark
	opts      *Options
	c         conns
	st        *topoState
	dir       string
	journal   []undo
	owned     map[string]bool // namespaces the topology owns
	created   map[string]bool // namespaces created by this run
	built     *Built
	announces []announcement
	defRoute  map[string]map[bool]bool // endpoint → is IPv4 → default route taken
}

type step struct {
	what string
	run  func(ctx context.Context) error
}

// Up applies t: it creates what is missing, checks what exists, and on
// any failure or cancellation of ctx removes everything this run created,
// in reverse order, before returning a *RollbackError. Applying an
// already-applied topology changes nothing (Built.Created is 0).
func Up(ctx context.Context, t *Topology, opts *Options) (*Built, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	t = t.clone()
	if err := t.assignAddresses(); err != nil {
		return nil, fmt.Errorf("topology %s: %w", t.Name, err)
	}
	if opts == nil {
		opts = &Options{}
	}
	a := &applier{
		t: t, mark: Mark{t.Name}, opts: opts, c: conns{}, dir: opts.stateDir(),
		owned: map[string]bool{}, created: map[string]bool{},
		built:    &Built{Topology: t},
		defRoute: map[string]map[bool]bool{},
	}
	defer a.c.close()
	unlock, err := lockState(a.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if a.st, err = loadTopoState(a.dir, t.Name); err != nil {
		return nil, err
	}
	a.st.Host, a.st.Group = t.Host, a.mark.Group()
	uses := a.addrUses()
	conflicts, err := wireConflicts(a.dir, t.Name, uses)
	if err != nil {
		return nil, err
	}
	if len(conflicts) > 0 {
		return nil, fmt.Errorf("topology %s: duplicate address on the wire: %s: give the endpoint another address (addresses:) or another subnet", t.Name, strings.Join(conflicts, "; "))
	}

	steps := a.plan()
	for i, s := range steps {
		err := ctx.Err()
		if err == nil && opts.beforeStep != nil {
			err = opts.beforeStep(i, len(steps), s.what)
		}
		if err == nil {
			if opts.Progress != nil {
				opts.Progress(s.what)
			}
			err = s.run(ctx)
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		n, cerr := a.rollback(ctx)
		return nil, &RollbackError{Step: s.what, Err: err, Removed: n, CleanupErr: cerr}
	}
	if err := a.waitWires(ctx); err != nil {
		n, cerr := a.rollback(ctx)
		return nil, &RollbackError{Step: "wait for the sandbox wires", Err: err, Removed: n, CleanupErr: cerr}
	}
	if !slices.Equal(a.st.Uses, uses) {
		a.st.Uses = uses
		if err := a.st.save(a.dir); err != nil {
			n, cerr := a.rollback(ctx)
			return nil, &RollbackError{Step: "record the addresses in use", Err: err, Removed: n, CleanupErr: cerr}
		}
	}
	for i := range a.announces {
		// Best effort: a lost announcement only delays neighbours.
		_ = a.announces[i].send()
	}
	return a.built, nil
}

// addrUses lists the addresses the topology's endpoints and shims hold, by
// the wire they are on (the topology is validated and its addresses
// assigned).
func (a *applier) addrUses() []addrUse {
	var out []addrUse
	add := func(network, owner string, addrs []string) {
		root, _, _ := a.lower(a.network(network))
		for _, s := range addrs {
			if p, err := parsePrefix(s); err == nil {
				out = append(out, addrUse{Host: a.t.Host, Parent: root, Addr: p.Addr().String(), Owner: owner})
			}
		}
	}
	for _, e := range a.t.Endpoints {
		for _, it := range e.Interfaces {
			add(it.Network, "endpoint "+e.Name, it.Addresses)
		}
	}
	for _, s := range a.t.HostShims {
		add(s.Network, "host shim "+s.Name, s.Addresses)
	}
	return out
}

// plan lists the steps of Up in dependency order: namespaces, parents,
// auto-created VLAN parents, endpoint interfaces, host shims.
func (a *applier) plan() []step {
	t := a.t
	var steps []step
	addNS := func(name, role string) {
		steps = append(steps, step{"netns " + name, func(ctx context.Context) error { return a.ensureNS(ctx, name, role) }})
	}
	seen := map[string]bool{}
	if t.Host != "" {
		seen[t.Host] = true
		addNS(t.Host, "host")
	}
	for _, p := range t.Parents {
		if s := p.Sandbox; s != nil && !seen[s.Switch] {
			seen[s.Switch] = true
			addNS(s.Switch, "switch")
		}
	}
	for _, e := range t.Endpoints {
		addNS(e.netns(), "endpoint")
	}
	for i := range t.Parents {
		p := &t.Parents[i]
		if p.Sandbox != nil {
			steps = append(steps,
				step{fmt.Sprintf("bridge %s in %s", p.Sandbox.bridge(p.Name), p.Sandbox.Switch), func(ctx context.Context) error { return a.ensureBridge(ctx, p) }},
				step{fmt.Sprintf("veth parent %s (peer in %s)", p.Name, p.Sandbox.Switch), func(ctx context.Context) error { return a.ensureVeth(ctx, p) }},
			)
		}
		steps = append(steps, step{"parent " + p.Name, func(ctx context.Context) error { return a.ensureParent(ctx, p) }})
	}
	vlans := map[string]bool{}
	for i := range t.Networks {
		n := &t.Networks[i]
		if _, _, isVLAN := a.lower(n); isVLAN && !vlans[n.Parent] {
			vlans[n.Parent] = true
			steps = append(steps, step{"vlan parent " + n.Parent, func(ctx context.Context) error { return a.ensureVLANParent(ctx, n) }})
		}
	}
	for i := range t.Endpoints {
		e := &t.Endpoints[i]
		for j := range e.Interfaces {
			it := &e.Interfaces[j]
			n := a.network(it.Network)
			steps = append(steps, step{fmt.Sprintf("%s %s/%s on %s", n.driver(), e.netns(), it.name(j), n.Parent),
				func(ctx context.Context) error { return a.ensureInterface(ctx, e, j) }})
		}
		if len(e.Routes) > 0 || e.Forwarding {
			steps = append(steps, step{"routes and forwarding of " + e.Name, func(ctx context.Context) error { return a.ensureEndpointExtras(ctx, e) }})
		}
	}
	for i := range t.HostShims {
		s := &t.HostShims[i]
		steps = append(steps, step{"host shim " + s.Name, func(ctx context.Context) error { return a.ensureShim(ctx, s) }})
	}
	return steps
}

func (a *applier) network(name string) *Network {
	for i := range a.t.Networks {
		if a.t.Networks[i].Name == name {
			return &a.t.Networks[i]
		}
	}
	return nil
}

func (a *applier) declaredParent(name string) *Parent {
	for i := range a.t.Parents {
		if a.t.Parents[i].Name == name {
			return &a.t.Parents[i]
		}
	}
	return nil
}

// lower resolves a network's parent: the link its interfaces sit on, the
// root parent whose wire frames cross, and whether the lower is a VLAN
// Up creates when missing (docker's "X.N").
func (a *applier) lower(n *Network) (root string, vlan uint16, isVLAN bool) {
	if a.declaredParent(n.Parent) != nil {
		return n.Parent, 0, false
	}
	if base, id, ok := splitVLANParent(n.Parent); ok {
		return base, id, true
	}
	return n.Parent, 0, false
}

func (a *applier) record(u undo) { a.journal = append(a.journal, u) }

func (a *applier) ensureNS(ctx context.Context, name, role string) error {
	alias := a.mark.nsAlias()
	if netns.Exists(name) {
		owned := false
		for _, n := range a.st.Namespaces {
			owned = owned || n == name
		}
		if !owned {
			var err error
			if owned, err = nsOwned(ctx, name, alias); err != nil {
				return fmt.Errorf("netns %s: %w", name, err)
			}
		}
		a.owned[name] = owned
		a.built.Namespaces = append(a.built.Namespaces, BuiltNS{Name: name, Role: role, Owned: owned})
		return nil
	}
	if a.st.addNS(name) {
		if err := a.st.save(a.dir); err != nil {
			return err
		}
	}
	a.record(undo{kind: undoNS, name: name})
	a.owned[name], a.created[name] = true, true
	a.built.Created++
	a.built.Namespaces = append(a.built.Namespaces, BuiltNS{Name: name, Role: role, Owned: true})
	return createNS(ctx, name, alias)
}

// claim checks that an existing link is the topology's: a link of the same
// name that is somebody else's is never touched.
func (a *applier) claim(l *link.Link, ns, object string) error {
	if a.mark.Owns(l.Group, l.Alias) {
		return nil
	}
	return fmt.Errorf("%s exists in %s and is not this topology's (group %d, alias %q): remove or rename it, or rename %s in the topology",
		l.Name, nsLabel(ns), l.Group, l.Alias, object)
}

// newMarkedLink creates a link from a raw message (kinds the link package
// has no spec for, and veths whose peer goes to another namespace), marked,
// then names it with the alias.
func (a *applier) newMarkedLink(ctx context.Context, ns string, m *rtnl.LinkMessage, object string) (*link.Link, error) {
	c, err := a.c.get(ns)
	if err != nil {
		return nil, err
	}
	g := a.mark.Group()
	m.Attrs.Group = &g
	a.record(undo{kind: undoLink, ns: ns, name: m.Attrs.Name, local: true})
	a.built.Created++
	if err := c.NewLink(ctx, m, netlink.Create|netlink.Excl); err != nil {
		return nil, fmt.Errorf("create %s %s in %s: %w", m.Attrs.Info.Kind, m.Attrs.Name, nsLabel(ns), err)
	}
	h := link.New(c)
	got, err := h.Get(ctx, m.Attrs.Name)
	if err != nil {
		return nil, fmt.Errorf("read back %s in %s: %w", m.Attrs.Name, nsLabel(ns), err)
	}
	alias := a.mark.Alias(object)
	if err := h.Set(ctx, got.Name, link.Change{Alias: &alias}); err != nil {
		return nil, err
	}
	got.Alias = alias
	return got, nil
}

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

// FeatureError is the kernel lacking something a topology needs.
type FeatureError struct {
	Feature string // "8021q", "ipvlan", "macvtap"…
	Err     error
}

func (e *FeatureError) Error() string {
	switch e.Feature {
	case "8021q":
		return "this kernel has no 802.1Q VLAN support (load module 8021q): " + e.Err.Error()
	}
	return fmt.Sprintf("this kernel has no %s support (load module %s): %v", e.Feature, e.Feature, e.Err)
}

func (e *FeatureError) Unwrap() error { return e.Err }

// leafSpec is the link spec of an interface on network n. An ipvlan
// without a mode is l2, as Docker's and the CNI plugin's are (the
// kernel's own default is l3).
func (a *applier) leafSpec(n *Network, c link.Common, sources []string) (link.Spec, error) {
	var macs []net.HardwareAddr
	for _, s := range sources {
		m, err := parseMAC(s)
		if err != nil {
			return nil, err
		}
		macs = append(macs, m)
	}
	switch n.driver() {
	case "macvlan", "macvtap":
		var mode link.MacvlanMode
		if n.Mode != "" {
			var err error
			if mode, err = link.ParseMacvlanMode(n.Mode); err != nil {
				return nil, err
			}
		}
		mv := link.Macvlan{Common: c, Mode: mode, NoPromisc: n.NoPromisc, NoDst: n.NoDst, SourceMACs: macs}
		if n.driver() == "macvtap" {
			mt := link.Macvtap(mv)
			return &mt, nil
		}
		return &mv, nil
	case "ipvlan":
		mode, err := link.ParseIPVlanMode(effectiveMode(n))
		if err != nil {
			return nil, err
		}
		return &link.IPVlan{Common: c, Mode: mode}, nil
	}
	return nil, fmt.Errorf("driver %q is not supported", n.driver())
}

// effectiveMode is the mode n's interfaces get: the declared one, else
// bridge for macvlan and macvtap and l2 for ipvlan.
func effectiveMode(n *Network) string {
	if n.Mode != "" {
		return n.Mode
	}
	if n.driver() == "ipvlan" {
		return "l2"
	}
	return "bridge"
}

func (a *applier) ensureInterface(ctx context.Context, e *Endpoint, j int) error {
	it := &e.Interfaces[j]
	n := a.network(it.Network)
	ns, ifname := e.netns(), it.name(j)
	var mac net.HardwareAddr
	if it.MAC != "" {
		mac, _ = parseMAC(it.MAC)
	}
	spec, err := a.leafSpec(n, link.Common{Name: ifname, Parent: n.Parent, Address: mac}, it.SourceMACs)
	if err != nil {
		return err
	}
	bi := BuiltInterface{Endpoint: e.Name, NetNS: ns, Name: ifname, Network: n.Name, Kind: n.driver(), Mode: effectiveMode(n),
		Lower: n.Parent, NoPromisc: n.NoPromisc, Sources: it.SourceMACs}
	bi.Parent, bi.VLAN, _ = a.lower(n)
	for _, s := range it.Addresses {
		p, _ := parsePrefix(s)
		bi.Addrs = append(bi.Addrs, p)
	}
	es := EndpointLinkSpec{Link: spec, Host: NamedNS(a.t.Host), NetNS: NamedNS(ns), Mark: a.mark, Object: "ep/" + e.Name + "/" + ifname, Addrs: bi.Addrs}
	if !it.NoDefaultRoute {
		if a.defRoute[e.Name] == nil {
			a.defRoute[e.Name] = map[bool]bool{}
		}
		for _, g := range n.Gateways {
			gw, _ := netip.ParseAddr(g)
			bi.Gateways = append(bi.Gateways, gw)
			if a.defRoute[e.Name][gw.Is4()] {
				continue
			}
			a.defRoute[e.Name][gw.Is4()] = true
			es.Routes = append(es.Routes, Route{Gateway: gw})
		}
	}
	ep, err := BuildEndpointLink(ctx, es)
	var fl *ForeignLinkError
	if errors.As(err, &fl) {
		return fmt.Errorf("%s exists in %s and is not this topology's (group %d, alias %q): remove or rename it, or rename %s in the topology",
			ifname, nsLabel(ns), fl.Group, fl.Alias, fmt.Sprintf("the interface of endpoint %s", e.Name))
	}
	if err != nil {
		return err
	}
	if ep.Created {
		a.record(undo{kind: undoLink, ns: ns, name: ifname})
		a.built.Created++
		a.announces = append(a.announces, ep.announcement())
	}
	a.built.Created += ep.AddedAddrs + ep.RemovedAddrs
	bi.MAC = ep.MAC
	a.built.Interfaces = append(a.built.Interfaces, bi)
	return nil
}

// kernelFeature turns "Unknown device type" for a kind this kernel lacks
// into a FeatureError.
func (a *applier) kernelFeature(n *Network, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) {
		return &FeatureError{Feature: n.driver(), Err: err}
	}
	return err
}

func (a *applier) ensureEndpointExtras(ctx context.Context, e *Endpoint) error {
	ns := e.netns()
	if e.Forwarding {
		for _, p := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
			if !a.owned[ns] {
				// Not ours: Down puts the old value back.
				old, err := NamedNS(ns).readSysctl(p)
				if err != nil {
					return err
				}
				r := sysctlRecord{NetNS: ns, Path: p, Old: old}
				if old != "1" && a.st.addSysctl(r) {
					if err := a.st.save(a.dir); err != nil {
						return err
					}
					a.record(undo{kind: undoSysctl, sysctl: r})
				}
			}
			if err := NamedNS(ns).writeSysctl(p, "1"); err != nil {
				return err
			}
		}
	}
	c, err := a.c.get(ns)
	if err != nil {
		return err
	}
	for _, r := range e.Routes {
		rt, _ := parseRoute(r)
		rr := rtnl.Route{Gateway: rt.Via}
		if rt.Dst.Bits() > 0 {
			rr.Dst = rt.Dst
		}
		if err := ensureRoute(ctx, c, rr); err != nil {
			return fmt.Errorf("endpoint %s: %w", e.Name, err)
		}
	}
	return nil
}

func (a *applier) ensureShim(ctx context.Context, s *HostShim) error {
	n := a.network(s.Network)
	c, err := a.c.get(a.t.Host)
	if err != nil {
		return err
	}
	h := link.New(c)
	m, err := h.Get(ctx, s.Name)
	if err != nil && !errors.Is(err, link.ErrNotFound) {
		return fmt.Errorf("host shim %s: %w", s.Name, err)
	}
	created := false
	if err == nil {
		if err := a.claim(m, a.t.Host, "host_shims[].name"); err != nil {
			return err
		}
	} else {
		var mac net.HardwareAddr
		if s.MAC != "" {
			mac, _ = parseMAC(s.MAC)
		}
		spec := &link.Macvlan{Common: link.Common{Name: s.Name, Parent: n.Parent, Address: mac, Group: a.mark.Group()}, Mode: link.MacvlanModeBridge}
		a.record(undo{kind: undoLink, ns: a.t.Host, name: s.Name, local: true})
		a.built.Created++
		if m, err = h.Create(ctx, spec); err != nil {
			return err
		}
		alias := a.mark.Alias("shim/" + s.Name)
		if err := h.Set(ctx, s.Name, link.Change{Alias: &alias}); err != nil {
			return fmt.Errorf("host shim %s: %w", s.Name, err)
		}
		created = true
	}
	bi := BuiltInterface{Endpoint: "host", NetNS: a.t.Host, Name: s.Name, Network: n.Name, Kind: "macvlan", Mode: "bridge", Lower: n.Parent, Shim: true}
	bi.Parent, bi.VLAN, _ = a.lower(n)
	for _, as := range s.Addresses {
		p, _ := parsePrefix(as)
		bi.Addrs = append(bi.Addrs, p)
		if _, err := ensureAddr(ctx, c, m.Index, p); err != nil {
			return fmt.Errorf("host shim %s: %w", s.Name, err)
		}
	}
	if !m.Up() {
		up := true
		if err := h.Set(ctx, s.Name, link.Change{Up: &up}); err != nil {
			return fmt.Errorf("host shim %s: %w", s.Name, err)
		}
	}
	bi.Routes = shimRoutes(s)
	for _, r := range s.Routes {
		dst, _ := netip.ParsePrefix(r)
		if err := ensureRoute(ctx, c, rtnl.Route{Dst: dst.Masked(), OIF: uint32(m.Index)}); err != nil {
			return fmt.Errorf("host shim %s: %w", s.Name, err)
		}
	}
	if m2, err := h.Get(ctx, s.Name); err == nil {
		bi.MAC = m2.Address
	}
	a.built.Interfaces = append(a.built.Interfaces, bi)
	if created {
		a.announces = append(a.announces, announcement{NetNS: NamedNS(a.t.Host), Index: int(m.Index), Name: s.Name, MAC: bi.MAC, Addrs: bi.Addrs})
	}
	return nil
}

// shimRoutes are the destinations of a (validated) shim's routes.
func shimRoutes(s *HostShim) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range s.Routes {
		if dst, err := netip.ParsePrefix(r); err == nil {
			out = append(out, dst.Masked())
		}
	}
	return out
}

// rollback undoes the journal in reverse with a fresh context (the
// caller's may be what was cancelled). Links inside a namespace this run
// created are left to go with it, unless they sit on a link in another
// namespace that stays (then the kernel would only remove them later,
// asynchronously).
func (a *applier) rollback(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	hostCreated := a.t.Host != "" && a.created[a.t.Host]
	var errs []error
	n := 0
	for i := len(a.journal) - 1; i >= 0; i-- {
		u := a.journal[i]
		switch u.kind {
		case undoLink:
			if a.created[u.ns] && (u.local || hostCreated) {
				n++
				continue
			}
			removed, err := a.deleteOwnedLink(ctx, u.ns, u.name)
			if err != nil {
				errs = append(errs, err)
			} else if removed {
				n++
			}
		case undoAddr:
			c, err := a.c.get(u.ns)
			if err == nil {
				var m *link.Link
				m, err = link.New(c).Get(ctx, u.name)
				switch {
				case errors.Is(err, link.ErrNotFound):
					err = nil
				case err == nil:
					err = c.DelAddr(ctx, uint32(m.Index), u.prefix)
					if errors.Is(err, unix.EADDRNOTAVAIL) {
						err = nil
					}
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove address %s from %s: %w", u.prefix, u.name, err))
				continue
			}
			a.st.removeAddr(addrRecord{NetNS: u.ns, Link: u.name, Prefix: u.prefix.String()})
			n++
		case undoSysctl:
			if err := u.sysctl.restore(); err != nil {
				errs = append(errs, err)
				continue
			}
			a.st.removeSysctl(u.sysctl)
			n++
		case undoNS:
			a.c.drop(u.name)
			if err := netns.Delete(u.name); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			a.st.removeNS(u.name)
			n++
		}
	}
	if err := a.st.save(a.dir); err != nil {
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// deleteOwnedLink deletes the link if it exists and carries the mark.
func (a *applier) deleteOwnedLink(ctx context.Context, ns, name string) (bool, error) {
	if ns != "" && !netns.Exists(ns) {
		return false, nil
	}
	c, err := a.c.get(ns)
	if err != nil {
		return false, err
	}
	m, err := link.New(c).Get(ctx, name)
	switch {
	case errors.Is(err, link.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("remove %s from %s: %w", name, nsLabel(ns), err)
	}
	if !a.mark.Owns(m.Group, m.Alias) {
		return false, nil
	}
	if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
		return false, fmt.Errorf("remove %s from %s: %w", name, nsLabel(ns), err)
	}
	return true, nil
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
