package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mdlayher/netlink"

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
