package dataplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// netMark marks every link and namespace the docker-style networks of the
// default state directory create (see Networks.mark).
var netMark = Mark{Topology: "net"}

// NetworkSpec is `vmlink net create` with docker's flags.
type NetworkSpec struct {
	Name   string
	Driver string // macvlan (default), macvtap, ipvlan
	// Subnets, Gateways and IPRanges pair up by family and containment as
	// docker's repeated --subnet/--gateway/--ip-range do.
	Subnets  []netip.Prefix
	Gateways []netip.Addr
	IPRanges []netip.Prefix
	// Aux are --aux-address NAME=IP: addresses never handed out.
	Aux      map[string]netip.Addr
	IPv6     bool
	Internal bool
	// Options are -o KEY=VALUE: parent, macvlan_mode, ipvlan_mode, ipvlan_flag.
	Options map[string]string
	// HostShim gives the host a bridge-mode macvlan on the parent with an
	// address from the network and routes to it (macvlan only).
	HostShim bool
}

// NetworkRecord is a network as the state file keeps it.
type NetworkRecord struct {
	Name     string            `json:"name"`
	ID       string            `json:"id"`
	Created  time.Time         `json:"created"`
	Host     string            `json:"host,omitempty"` // namespace holding the parent
	Driver   string            `json:"driver"`
	Mode     string            `json:"mode"`
	Parent   string            `json:"parent"`
	Options  map[string]string `json:"options,omitempty"`
	IPv6     bool              `json:"ipv6"`
	Internal bool              `json:"internal"`
	// ParentCreated: vmlink created Parent (an X.N VLAN or the internal
	// dummy) and removes it with the last network using it.
	ParentCreated bool                 `json:"parent_created,omitempty"`
	IPAM          []IPAMConfig         `json:"ipam"`
	Endpoints     map[string]*Attached `json:"endpoints,omitempty"`
	Shim          *Attached            `json:"shim,omitempty"`
}

// IPAMConfig is one subnet of a network.
type IPAMConfig struct {
	Subnet  netip.Prefix          `json:"subnet"`
	IPRange netip.Prefix          `json:"ip_range,omitzero"`
	Gateway netip.Addr            `json:"gateway,omitzero"`
	Aux     map[string]netip.Addr `json:"aux,omitempty"`
}

// Attached is an endpoint (container namespace) on a network.
type Attached struct {
	NetNS      string         `json:"netns"`
	Interface  string         `json:"interface"`
	MAC        string         `json:"mac"`
	Addrs      []netip.Prefix `json:"addresses"`
	EndpointID string         `json:"endpoint_id"`
	// NSCreated: connect created the namespace; it goes with its last
	// network.
	NSCreated bool `json:"ns_created,omitempty"`
}

type netState struct {
	Networks map[string]*NetworkRecord `json:"networks"`
	// Pending are namespaces connect is creating: written before the
	// namespace exists, so a kill before its mark is set still leaves a
	// record for the next reconcile.
	Pending []string `json:"pending_namespaces,omitempty"`
}

// Networks manages docker-style networks in the namespace Host ("" is the
// caller's), with their state in StateDir/state.json under the state lock.
type Networks struct {
	Host     string
	StateDir string
}

func (n *Networks) dir() string {
	if n.StateDir == "" {
		return DefaultStateDir
	}
	return n.StateDir
}

// mark is the ownership mark of this state directory's networks. The
// default directory (the CLI's) keeps the plain "net" mark; any other (an
// API user's, a test's) gets its own, "net@" and a hash of its path, so
// that reconciling one state never takes another state's links for
// orphans: `net ls` removes marked links no network of its state claims,
// in every named namespace. ('@' cannot appear in a topology name.)
func (n *Networks) mark() Mark {
	dir := n.dir()
	if dir == DefaultStateDir {
		return netMark
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	h := fnv.New32a()
	h.Write([]byte(dir))
	return Mark{Topology: fmt.Sprintf("%s@%08x", netMark.Topology, h.Sum32())}
}

func (n *Networks) statePath() string { return filepath.Join(n.dir(), "state.json") }

// with runs fn under the lock with the state loaded, and saves it when fn
// succeeds (or when save is forced by fn returning errSaveAnyway).
func (n *Networks) with(fn func(st *netState) error) error {
	unlock, err := lockState(n.dir())
	if err != nil {
		return err
	}
	defer unlock()
	st, err := n.load()
	if err != nil {
		return err
	}
	ferr := fn(st)
	if ferr != nil && !errors.Is(ferr, errSaveAnyway) {
		return ferr
	}
	if err := writeFileAtomic(n.statePath(), st); err != nil {
		return err
	}
	if errors.Is(ferr, errSaveAnyway) {
		return errors.Unwrap(ferr)
	}
	return nil
}

// load reads the state file (an empty state when there is none); the
// caller holds the lock.
func (n *Networks) load() (*netState, error) {
	st := &netState{Networks: map[string]*NetworkRecord{}}
	b, err := os.ReadFile(n.statePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read network state: %w", err)
	default:
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("read network state %s: %w", n.statePath(), err)
		}
		if st.Networks == nil {
			st.Networks = map[string]*NetworkRecord{}
		}
	}
	return st, nil
}

// errSaveAnyway wraps an error after which the state must still be saved
// (part of the work was done and recorded).
var errSaveAnyway = errors.New("save anyway")

func saveAnyway(err error) error { return fmt.Errorf("%w%w", errSaveAnyway, err) }

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Create creates a network. Validation comes first (nothing touches the
// kernel when a flag is wrong); an X.N parent is created when missing; the
// host shim, if asked for, last — and on any failure what was created is
// removed again.
func (n *Networks) Create(ctx context.Context, spec NetworkSpec) (*NetworkRecord, error) {
	var out *NetworkRecord
	err := n.with(func(st *netState) error {
		rec, err := n.plan(st, spec)
		if err != nil {
			return err
		}
		// A driver the kernel lacks is said now, not at the first connect.
		if err := Probe(ctx, rec.Driver); err != nil {
			return err
		}
		c, err := n.conn()
		if err != nil {
			return err
		}
		defer c.Close()
		if err := n.ensureParent(ctx, c, st, rec); err != nil {
			return err
		}
		if spec.HostShim {
			if err := n.addShim(ctx, c, rec); err != nil {
				n.releaseParent(ctx, c, st, rec)
				return err
			}
		}
		st.Networks[rec.Name] = rec
		out = rec
		return nil
	})
	return out, err
}

func (n *Networks) conn() (*rtnl.Conn, error) {
	if n.Host == "" {
		return rtnl.Dial(nil)
	}
	return rtnl.DialNetNS(n.Host, nil)
}

// UsageError is a network request refused before anything changed. Err,
// when set, says why beyond a wrong flag: ErrConflict (the request
// collides with what exists) or ErrNoInterface (a parent that is missing).
type UsageError struct {
	Msg string
	Err error
}

func (e *UsageError) Error() string { return e.Msg }
func (e *UsageError) Unwrap() error { return e.Err }

// ErrConflict marks a request that is well-formed but collides with the
// networks as they are: a name taken or not found, an address in use,
// endpoints still attached. docker fails such requests (exit 1), not as
// usage errors.
var ErrConflict = errors.New("conflicts with the existing networks")

// ErrNoInterface marks a parent interface that does not exist.
var ErrNoInterface = errors.New("no such interface")

func usage(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

func conflict(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...), Err: ErrConflict}
}

// plan validates spec against the other networks and returns the record.
func (n *Networks) plan(st *netState, spec NetworkSpec) (*NetworkRecord, error) {
	if spec.Name == "" {
		return nil, usage("network name missing: vmlink net create [OPTIONS] NAME")
	}
	if err := checkTopoName(spec.Name); err != nil && spec.Name != netMark.Topology {
		return nil, usage("network name %q: %v", spec.Name, err)
	}
	if _, dup := st.Networks[spec.Name]; dup {
		return nil, conflict("network with name %s already exists", spec.Name)
	}
	rec := &NetworkRecord{Name: spec.Name, ID: newID(), Created: time.Now().UTC(), Host: n.Host,
		Driver: orDefault(spec.Driver, "macvlan"), IPv6: spec.IPv6, Internal: spec.Internal, Options: map[string]string{}}
	for k, v := range spec.Options {
		rec.Options[k] = v
	}
	switch rec.Driver {
	case "macvlan", "macvtap":
		rec.Mode = orDefault(spec.Options["macvlan_mode"], "bridge")
		if _, err := link.ParseMacvlanMode(rec.Mode); err != nil {
			return nil, usage("-o macvlan_mode=%s: use bridge, private, vepa, passthru or source", rec.Mode)
		}
		for k := range spec.Options {
			if k != "parent" && k != "macvlan_mode" {
				return nil, usage("-o %s: not an option of the %s driver (use parent, macvlan_mode)", k, rec.Driver)
			}
		}
	case "ipvlan":
		rec.Mode = orDefault(spec.Options["ipvlan_mode"], "l2")
		if _, err := link.ParseIPVlanMode(rec.Mode); err != nil {
			return nil, usage("-o ipvlan_mode=%s: use l2, l3 or l3s", rec.Mode)
		}
		for k := range spec.Options {
			if k != "parent" && k != "ipvlan_mode" && k != "ipvlan_flag" {
				return nil, usage("-o %s: not an option of the ipvlan driver (use parent, ipvlan_mode, ipvlan_flag)", k)
			}
		}
	default:
		return nil, usage("-d %s: driver not supported: use macvlan, macvtap or ipvlan", rec.Driver)
	}
	if spec.HostShim && rec.Driver != "macvlan" {
		return nil, usage("--host-shim: the shim is a bridge-mode macvlan; network %s uses %s", rec.Name, rec.Driver)
	}
	if spec.HostShim && rec.Mode == "passthru" {
		return nil, usage("--host-shim: passthru takes the parent alone: no shim can join it")
	}
	rec.Parent = spec.Options["parent"]
	switch {
	case rec.Parent == "":
		// docker: no parent makes an internal network on a dummy link.
		rec.Internal = true
		rec.Parent = "dm-" + shortID(rec.ID)
	case rec.Parent == "lo" || strings.HasPrefix(rec.Parent, "lo."):
		return nil, usage("-o parent=%s: the loopback cannot be a parent: use an Ethernet interface such as eth0 or eth0.10", rec.Parent)
	default:
		if err := link.CheckName(rec.Parent); err != nil {
			return nil, usage("-o parent=%s: %v", rec.Parent, err)
		}
		if i := strings.LastIndexByte(rec.Parent, '.'); i > 0 {
			if n, err := strconv.ParseUint(rec.Parent[i+1:], 10, 32); err == nil && n > link.MaxVLANID {
				return nil, usage("-o parent=%s: VLAN id %d is out of range: VLAN ids run from 0 to %d", rec.Parent, n, link.MaxVLANID)
			}
		}
	}
	// Subnets, gateways, ranges.
	if len(spec.Subnets) == 0 {
		return nil, usage("--subnet missing: give the network at least one subnet (e.g. --subnet 10.0.10.0/24)")
	}
	for i, s := range spec.Subnets {
		if s != s.Masked() {
			return nil, usage("--subnet %s has host bits set: use %s", s, s.Masked())
		}
		if s.Addr().Is6() && !spec.IPv6 {
			return nil, usage("--subnet %s is IPv6: add --ipv6", s)
		}
		// The gateway takes one address; a subnet with no other usable one
		// would accept the network and then refuse every connect.
		if room := s.Addr().BitLen() - s.Bits(); room < 2 {
			return nil, usage("--subnet %s leaves no address for containers next to the gateway: use a /%d or larger", s, s.Addr().BitLen()-2)
		}
		for _, t := range spec.Subnets[:i] {
			if t.Overlaps(s) {
				return nil, usage("--subnet %s overlaps --subnet %s", s, t)
			}
		}
		rec.IPAM = append(rec.IPAM, IPAMConfig{Subnet: s})
	}
	find := func(a netip.Addr) int {
		for i, c := range rec.IPAM {
			if c.Subnet.Contains(a) {
				return i
			}
		}
		return -1
	}
	for _, g := range spec.Gateways {
		i := find(g)
		if i < 0 {
			return nil, usage("--gateway %s is outside every --subnet", g)
		}
		if rec.IPAM[i].Gateway.IsValid() {
			return nil, usage("--gateway %s: subnet %s has gateway %s already", g, rec.IPAM[i].Subnet, rec.IPAM[i].Gateway)
		}
		rec.IPAM[i].Gateway = g
	}
	for _, r := range spec.IPRanges {
		i := find(r.Masked().Addr())
		if i < 0 || r.Bits() < rec.IPAM[i].Subnet.Bits() {
			return nil, usage("--ip-range %s is not inside any --subnet", r)
		}
		rec.IPAM[i].IPRange = r.Masked()
	}
	auxNames := make([]string, 0, len(spec.Aux))
	for k := range spec.Aux {
		auxNames = append(auxNames, k)
	}
	sort.Strings(auxNames)
	for _, k := range auxNames {
		a := spec.Aux[k]
		i := find(a)
		if i < 0 {
			return nil, usage("--aux-address %s=%s is outside every --subnet", k, a)
		}
		if rec.IPAM[i].Aux == nil {
			rec.IPAM[i].Aux = map[string]netip.Addr{}
		}
		rec.IPAM[i].Aux[k] = a
	}
	for i := range rec.IPAM {
		c := &rec.IPAM[i]
		if !c.Gateway.IsValid() && !rec.Internal {
			// docker's default IPAM: the first address of the subnet.
			c.Gateway = c.Subnet.Addr().Next()
		}
		// The pool must accept the gateway and aux addresses.
		if _, err := poolOf(c, nil); err != nil {
			return nil, usage("%v", err)
		}
	}
	// Rules across networks on the same parent.
	for _, o := range st.Networks {
		if o.Host != rec.Host || o.Parent != rec.Parent {
			continue
		}
		switch {
		case rec.Mode == "passthru" || o.Mode == "passthru":
			return nil, conflict("-o parent=%s: network %s uses it and passthru takes the parent alone", rec.Parent, o.Name)
		case rec.Driver == "ipvlan" || o.Driver == "ipvlan":
			return nil, conflict("-o parent=%s: network %s uses it and ipvlan takes one network per parent", rec.Parent, o.Name)
		}
		for _, c := range rec.IPAM {
			for _, oc := range o.IPAM {
				if c.Subnet.Overlaps(oc.Subnet) {
					return nil, conflict("--subnet %s overlaps subnet %s of network %s on the same parent %s", c.Subnet, oc.Subnet, o.Name, rec.Parent)
				}
			}
		}
	}
	return rec, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// poolOf builds the allocation pool of one subnet with the gateway, aux
// addresses and the taken ones reserved.
func poolOf(c *IPAMConfig, taken map[netip.Addr]string) (*Pool, error) {
	p, err := NewPool(c.Subnet, c.IPRange)
	if err != nil {
		return nil, err
	}
	if c.Gateway.IsValid() {
		if err := p.Reserve(c.Gateway, gatewayOwner); err != nil {
			return nil, fmt.Errorf("--gateway %s: %w", c.Gateway, err)
		}
	}
	for k, a := range c.Aux {
		if err := p.Reserve(a, "aux address "+k); err != nil {
			return nil, fmt.Errorf("--aux-address %s=%s: %w", k, a, err)
		}
	}
	for a, who := range taken {
		if c.Subnet.Contains(a) {
			if err := p.Reserve(a, who); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// ensureParent makes sure the parent exists: an X.N VLAN is created when
// missing (and an existing one must be VLAN N on X), the internal dummy is
// created. Parents vmlink created are shared by refcount: the record says
// ParentCreated when this network holds a reference.
func (n *Networks) ensureParent(ctx context.Context, c *rtnl.Conn, st *netState, rec *NetworkRecord) error {
	h := link.New(c)
	l, err := h.Get(ctx, rec.Parent)
	if err == nil {
		if l.Type == unix.ARPHRD_LOOPBACK {
			return usage("-o parent=%s: the loopback cannot be a parent", rec.Parent)
		}
		if base, id, ok := splitVLANParent(rec.Parent); ok {
			if l.Kind != "vlan" || l.VLAN == nil || l.VLAN.ID != id || l.Parent != base {
				return conflict("-o parent=%s: the link exists but is not VLAN %d on %s (it is %s): rename or remove it", rec.Parent, id, base, describeLink(l))
			}
		}
		// A parent vmlink created for another network: share it.
		rec.ParentCreated = n.mark().Owns(l.Group, l.Alias) && l.Group == n.mark().Group()
		return nil
	}
	if !errors.Is(err, link.ErrNotFound) {
		return fmt.Errorf("parent %s: %w", rec.Parent, err)
	}
	var spec link.Spec
	base, id, ok := splitVLANParent(rec.Parent)
	switch {
	case strings.HasPrefix(rec.Parent, "dm-") && rec.Internal:
		spec = &link.Dummy{Common: link.Common{Name: rec.Parent, Group: n.mark().Group(), Up: true}}
	case ok:
		spec = &link.VLAN{Common: link.Common{Name: rec.Parent, Parent: base, Group: n.mark().Group(), Up: true}, ID: id}
	default:
		return &UsageError{Msg: fmt.Sprintf("-o parent=%s: no such interface%s: create it first, or use X.N to have VLAN N on X created", rec.Parent, hostWhere(n.Host)), Err: ErrNoInterface}
	}
	l, err = h.Create(ctx, spec)
	if err != nil {
		var fe *link.FieldError
		if errors.As(err, &fe) {
			return usage("-o parent=%s: %v", rec.Parent, err)
		}
		if errors.Is(err, unix.EOPNOTSUPP) {
			feature := "8021q"
			if spec.Kind() == "dummy" {
				feature = "dummy"
			}
			return &FeatureError{Feature: feature, Err: err}
		}
		return fmt.Errorf("create parent %s: %w", rec.Parent, err)
	}
	if err := setAlias(ctx, c, l.Index, n.mark().Alias("parent/"+rec.Parent)); err != nil {
		_ = h.Delete(context.WithoutCancel(ctx), rec.Parent)
		return err
	}
	rec.ParentCreated = true
	return nil
}

func hostWhere(ns string) string {
	if ns == "" {
		return ""
	}
	return " in netns " + ns
}

// releaseParent removes a parent vmlink created once no other network uses
// it.
func (n *Networks) releaseParent(ctx context.Context, c *rtnl.Conn, st *netState, rec *NetworkRecord) error {
	if !rec.ParentCreated {
		return nil
	}
	for _, o := range st.Networks {
		if o != rec && o.Host == rec.Host && o.Parent == rec.Parent {
			return nil
		}
	}
	m, err := getLink(ctx, c, rec.Parent)
	if err != nil || m == nil {
		return err
	}
	if !n.mark().Owns(linkGroup(m), linkAlias(m)) {
		return nil
	}
	if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("remove parent %s: %w", rec.Parent, err)
	}
	return nil
}

// takenAddrs lists the addresses of a network's endpoints and shim.
func takenAddrs(rec *NetworkRecord) map[netip.Addr]string {
	taken := map[netip.Addr]string{}
	for name, e := range rec.Endpoints {
		for _, p := range e.Addrs {
			taken[p.Addr()] = name
		}
	}
	if rec.Shim != nil {
		for _, p := range rec.Shim.Addrs {
			taken[p.Addr()] = "the host shim"
		}
	}
	return taken
}

// ipFlag is the docker flag that gives an address of a's family.
func ipFlag(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "--ip6"
	}
	return "--ip"
}

// allocate picks the endpoint's addresses: the requested ones (checked),
// else one per subnet of each family from the pool.
func allocate(rec *NetworkRecord, who string, want []netip.Addr) ([]netip.Prefix, error) {
	taken := takenAddrs(rec)
	var out []netip.Prefix
	used := map[int]bool{}
	for _, a := range want {
		flag := ipFlag(a)
		idx := -1
		for i, c := range rec.IPAM {
			if c.Subnet.Contains(a) {
				idx = i
			}
		}
		if idx < 0 {
			var subnets []string
			for _, c := range rec.IPAM {
				subnets = append(subnets, c.Subnet.String())
			}
			return nil, usage("%s %s is outside the network's subnets (%s)", flag, a, strings.Join(subnets, ", "))
		}
		p, err := poolOf(&rec.IPAM[idx], taken)
		if err != nil {
			return nil, err
		}
		if owner, ok := p.Owner(a); ok {
			return nil, conflict("%s %s is already in use by %s", flag, a, owner)
		}
		if err := p.Reserve(a, who); err != nil {
			return nil, usage("%s %s: %v", flag, a, err)
		}
		used[idx] = true
		out = append(out, netip.PrefixFrom(a, rec.IPAM[idx].Subnet.Bits()))
	}
	fams := map[bool]bool{}
	for _, p := range out {
		fams[p.Addr().Is4()] = true
	}
	for i := range rec.IPAM {
		c := &rec.IPAM[i]
		if used[i] || fams[c.Subnet.Addr().Is4()] {
			continue
		}
		p, err := poolOf(c, taken)
		if err != nil {
			return nil, err
		}
		a, err := p.Next(who)
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", rec.Name, err)
		}
		fams[c.Subnet.Addr().Is4()] = true
		taken[a.Addr()] = who
		out = append(out, a)
	}
	return out, nil
}

func (n *Networks) addShim(ctx context.Context, c *rtnl.Conn, rec *NetworkRecord) error {
	name := "vms-" + shortID(rec.ID)[:8]
	addrs, err := allocate(rec, "the host shim", nil)
	if err != nil {
		return err
	}
	h := link.New(c)
	l, err := h.Create(ctx, &link.Macvlan{Common: link.Common{Name: name, Parent: rec.Parent, Group: n.mark().Group(), Up: true}, Mode: link.MacvlanModeBridge})
	if err != nil {
		return fmt.Errorf("host shim: %w", err)
	}
	undo := func() { _ = h.Delete(context.WithoutCancel(ctx), name) }
	if err := setAlias(ctx, c, l.Index, n.mark().Alias("shim/"+rec.Name)); err != nil {
		undo()
		return err
	}
	var host []netip.Prefix
	for _, p := range addrs {
		// The shim's address is a host route; the subnet (or the range
		// containers get addresses from) is routed through the shim.
		hp := netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
		host = append(host, hp)
		if _, err := ensureAddr(ctx, c, l.Index, hp); err != nil {
			undo()
			return fmt.Errorf("host shim: %w", err)
		}
	}
	for _, cfg := range rec.IPAM {
		dst := cfg.Subnet
		if cfg.IPRange.IsValid() {
			dst = cfg.IPRange
		}
		if err := ensureRoute(ctx, c, rtnl.Route{Dst: dst, OIF: uint32(l.Index), Metric: 50}); err != nil {
			undo()
			return fmt.Errorf("host shim: %w", err)
		}
	}
	rec.Shim = &Attached{NetNS: n.Host, Interface: name, MAC: l.Address.String(), Addrs: host, EndpointID: newID()}
	return nil
}

// outsideShimRoutes are the container addresses the host shim's routes do
// not cover: with an --ip-range the shim routes only the range (the usual
// setup, which leaves the rest of the subnet to hosts outside), so an
// address given with --ip outside it needs a host route of its own.
func outsideShimRoutes(rec *NetworkRecord, addrs []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		for _, c := range rec.IPAM {
			if c.Subnet.Contains(a.Addr()) && c.IPRange.IsValid() && !c.IPRange.Contains(a.Addr()) {
				out = append(out, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()))
			}
		}
	}
	return out
}

// shimHostRoutes adds (or, on disconnect, removes) the host routes through
// the network's shim for a container's addresses outside its routes. A
// route already gone (the shim removed behind our back) is not an error on
// removal.
func (n *Networks) shimHostRoutes(ctx context.Context, rec *NetworkRecord, addrs []netip.Prefix, add bool) error {
	dsts := outsideShimRoutes(rec, addrs)
	if rec.Shim == nil || len(dsts) == 0 {
		return nil
	}
	c, err := n.connFor(rec)
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := getLink(ctx, c, rec.Shim.Interface)
	if err == nil && m == nil {
		err = fmt.Errorf("the link is gone (vmlink net ls repairs the state)")
	}
	if err != nil {
		if add {
			return fmt.Errorf("host shim %s: %w", rec.Shim.Interface, err)
		}
		return nil
	}
	for _, dst := range dsts {
		r := rtnl.Route{Dst: dst, OIF: uint32(m.Index), Metric: 50}
		if add {
			if err := ensureRoute(ctx, c, r); err != nil {
				return fmt.Errorf("host shim: %w", err)
			}
			continue
		}
		if err := c.DelRoute(ctx, r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("host shim: delete route %s: %w", dst, err)
		}
	}
	return nil
}

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
		if err := netns.ValidateName(spec.Container); err != nil {
			return usage("container %q: %v", spec.Container, err)
		}
		if _, ok := rec.Endpoints[spec.Container]; ok {
			return conflict("endpoint with name %s already exists in network %s", spec.Container, rec.Name)
		}
		if rec.Mode == "passthru" && len(rec.Endpoints) > 0 {
			return conflict("network %s is passthru: it takes one container, and %s is attached", rec.Name, firstKey(rec.Endpoints))
		}
		if spec.MAC != nil && rec.Driver == "ipvlan" {
			return usage("--mac-address %s: ipvlan interfaces share the parent's MAC address: drop --mac-address", spec.MAC)
		}
		if spec.MAC != nil {
			if err := link.CheckUnicastMAC(spec.MAC); err != nil {
				return usage("--mac-address %s: %v", spec.MAC, err)
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
	if !netns.Exists(ns) {
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
	} else if owned, _ := nsOwned(ctx, ns, n.mark().nsAlias()); owned {
		created = true // created by an earlier connect: still ours
	}
	cleanup := func(ifname string) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if created && !usedElsewhere(st, rec, ns) {
			netns.Delete(ns)
			return
		}
		if ifname != "" {
			if ec, err := rtnl.DialNetNS(ns, nil); err == nil {
				if m, _ := getLink(cctx, ec, ifname); m != nil && n.mark().Owns(linkGroup(m), linkAlias(m)) {
					ec.DelLink(cctx, &rtnl.LinkMessage{Index: m.Index})
				}
				ec.Close()
			}
		}
	}
	ec, err := rtnl.DialNetNS(ns, nil)
	if err != nil {
		cleanup("")
		return nil, err
	}
	defer ec.Close()
	links, err := ec.Links(ctx)
	if err != nil {
		cleanup("")
		return nil, err
	}
	ifname := ""
	for i := 0; i < 100 && ifname == ""; i++ {
		cand := fmt.Sprintf("eth%d", i)
		if !slices.ContainsFunc(links, func(m rtnl.LinkMessage) bool { return m.Attrs.Name == cand }) {
			ifname = cand
		}
	}
	hc, err := n.conn()
	if err != nil {
		cleanup("")
		return nil, err
	}
	defer hc.Close()
	tmp := tempName()
	common := link.Common{Name: tmp, Parent: rec.Parent, Address: spec.MAC, Group: n.mark().Group(), NetNS: &link.Target{Name: ns}}
	var ls link.Spec
	switch rec.Driver {
	case "ipvlan":
		mode, _ := link.ParseIPVlanMode(rec.Mode)
		ls = &link.IPVlan{Common: common, Mode: mode}
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
	if _, err := link.New(hc).Create(ctx, ls); err != nil {
		cleanup("")
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil, &FeatureError{Feature: rec.Driver, Err: err}
		}
		return nil, fmt.Errorf("connect %s to %s: %w", ns, rec.Name, err)
	}
	fail := func(err error) (*Attached, error) {
		cleanup(tmp)
		cleanup(ifname)
		return nil, fmt.Errorf("connect %s to %s: %w", ns, rec.Name, err)
	}
	m, err := getLink(ctx, ec, tmp)
	if err != nil || m == nil {
		return fail(orNotFound(err))
	}
	if err := renameLink(ctx, ec, m.Index, ifname); err != nil {
		return fail(err)
	}
	if m, err = getLink(ctx, ec, ifname); err != nil || m == nil {
		return fail(orNotFound(err))
	}
	if err := setAlias(ctx, ec, m.Index, n.mark().Alias("ep/"+rec.Name+"/"+ns)); err != nil {
		return fail(err)
	}
	for _, p := range addrs {
		if _, err := ensureAddr(ctx, ec, m.Index, p); err != nil {
			return fail(err)
		}
	}
	if err := setUp(ctx, ec, m.Index); err != nil {
		return fail(err)
	}
	if !rec.Internal {
		routes4, _ := ec.Routes(ctx, unix.AF_INET)
		routes6, _ := ec.Routes(ctx, unix.AF_INET6)
		hasDefault := func(rs []rtnl.RouteMessage) bool {
			for _, r := range rs {
				if r.DstLen == 0 && r.Table == unix.RT_TABLE_MAIN {
					return true
				}
			}
			return false
		}
		for _, c := range rec.IPAM {
			if !c.Gateway.IsValid() {
				continue
			}
			if (c.Gateway.Is4() && hasDefault(routes4)) || (c.Gateway.Is6() && hasDefault(routes6)) {
				continue
			}
			if err := ensureRoute(ctx, ec, rtnl.Route{Gateway: c.Gateway, OIF: uint32(m.Index)}); err != nil {
				return fail(err)
			}
		}
	}
	if m2, _ := getLink(ctx, ec, ifname); m2 != nil {
		m = m2
	}
	an := announcement{NetNS: ns, Index: int(m.Index), Name: ifname, MAC: macOf(m), Addrs: addrs}
	_ = an.send()
	return &Attached{NetNS: ns, Interface: ifname, MAC: macOf(m).String(), Addrs: addrs, EndpointID: newID(), NSCreated: created}, nil
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
	if a.NSCreated && !usedElsewhere(st, rec, container) {
		if err := netns.Delete(a.NetNS); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	ec, err := rtnl.DialNetNS(a.NetNS, nil)
	if err != nil {
		return err
	}
	defer ec.Close()
	m, err := getLink(ctx, ec, a.Interface)
	if err != nil || m == nil {
		return err
	}
	if !n.mark().Owns(linkGroup(m), linkAlias(m)) {
		return nil
	}
	if err := ec.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("disconnect %s: %w", container, err)
	}
	return nil
}

// Remove deletes networks like `docker network rm`: a network with
// containers attached is refused; the shim and a parent vmlink created
// (when no other network uses it) go with it.
func (n *Networks) Remove(ctx context.Context, name string) error {
	return n.with(func(st *netState) error {
		rec := st.Networks[name]
		if rec == nil {
			return conflict("network %s not found", name)
		}
		if len(rec.Endpoints) > 0 {
			var names []string
			for k := range rec.Endpoints {
				names = append(names, k)
			}
			sort.Strings(names)
			return conflict("error while removing network: network %s has active endpoints (%s): disconnect them first", name, strings.Join(names, ", "))
		}
		c, err := n.connFor(rec)
		if err != nil {
			return err
		}
		defer c.Close()
		if rec.Shim != nil {
			if m, _ := getLink(ctx, c, rec.Shim.Interface); m != nil && n.mark().Owns(linkGroup(m), linkAlias(m)) {
				if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
					return fmt.Errorf("remove host shim: %w", err)
				}
			}
		}
		delete(st.Networks, name)
		if err := n.releaseParent(ctx, c, st, rec); err != nil {
			return saveAnyway(err)
		}
		return nil
	})
}

func (n *Networks) connFor(rec *NetworkRecord) (*rtnl.Conn, error) {
	if rec.Host == "" {
		return rtnl.Dial(nil)
	}
	return rtnl.DialNetNS(rec.Host, nil)
}

// Finding is one disagreement between the state file and the kernel that
// List repaired.
type Finding string

// List returns the networks, sorted by name, after reconciling the state
// with the kernel: endpoints whose namespace or interface is gone are
// dropped, a network whose host namespace is gone is dropped, and each
// repair is reported.
func (n *Networks) List(ctx context.Context) ([]*NetworkRecord, []Finding, error) {
	var out []*NetworkRecord
	var found []Finding
	err := n.with(func(st *netState) error {
		for name, rec := range st.Networks {
			if rec.Host != "" && !netns.Exists(rec.Host) {
				found = append(found, Finding(fmt.Sprintf("network %s: its namespace %s is gone: dropped the network", name, rec.Host)))
				delete(st.Networks, name)
				continue
			}
			for cn, a := range rec.Endpoints {
				if !netns.Exists(a.NetNS) {
					found = append(found, Finding(fmt.Sprintf("network %s: container %s is gone (namespace deleted): dropped it", name, cn)))
					delete(rec.Endpoints, cn)
					if err := n.shimHostRoutes(ctx, rec, a.Addrs, false); err != nil {
						return err
					}
					continue
				}
				ec, err := rtnl.DialNetNS(a.NetNS, nil)
				if err != nil {
					return err
				}
				m, err := getLink(ctx, ec, a.Interface)
				ec.Close()
				if err != nil {
					return err
				}
				if m == nil || !n.mark().Owns(linkGroup(m), linkAlias(m)) {
					found = append(found, Finding(fmt.Sprintf("network %s: container %s has no interface %s any more: dropped it", name, cn, a.Interface)))
					delete(rec.Endpoints, cn)
					if err := n.shimHostRoutes(ctx, rec, a.Addrs, false); err != nil {
						return err
					}
				}
			}
			c, err := n.connFor(rec)
			if err != nil {
				return err
			}
			m, err := getLink(ctx, c, rec.Parent)
			var shim *rtnl.LinkMessage
			if err == nil && rec.Shim != nil {
				shim, err = getLink(ctx, c, rec.Shim.Interface)
			}
			c.Close()
			if err != nil {
				return err
			}
			if rec.Shim != nil && (shim == nil || !n.mark().Owns(linkGroup(shim), linkAlias(shim))) {
				found = append(found, Finding(fmt.Sprintf("network %s: its host shim %s is gone (deleted by hand): the host no longer reaches the containers; dropped it (recreate the network with --host-shim)", name, rec.Shim.Interface)))
				rec.Shim = nil
			}
			if m == nil {
				found = append(found, Finding(fmt.Sprintf("network %s: its parent %s is gone (its containers' interfaces went with it)", name, rec.Parent)))
				for cn := range rec.Endpoints {
					delete(rec.Endpoints, cn)
				}
			}
		}
		orphans, err := n.removeOrphans(ctx, st)
		found = append(found, orphans...)
		if err != nil {
			return saveAnyway(err)
		}
		for _, rec := range st.Networks {
			out = append(out, rec)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		sort.Slice(found, func(i, j int) bool { return found[i] < found[j] })
		return nil
	})
	return out, found, err
}

// Inspect returns the named network's record.
func (n *Networks) Inspect(ctx context.Context, name string) (*NetworkRecord, error) {
	recs, _, err := n.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Name == name || (len(name) >= 3 && strings.HasPrefix(r.ID, name)) {
			return r, nil
		}
	}
	return nil, conflict("network %s not found", name)
}

// DockerNetwork is a network in the shape `docker network inspect` prints
// it (docker's NetworkResource: the same keys, in the same order), so
// scripts written against docker read vmlink's output unchanged. Containers
// are keyed by their namespace name (a namespace has no other id).
// HostShim is vmlink's own addition, present only when the network has one.
type DockerNetwork struct {
	Name       string                    `json:"Name"`
	ID         string                    `json:"Id"`
	Created    time.Time                 `json:"Created"`
	Scope      string                    `json:"Scope"`
	Driver     string                    `json:"Driver"`
	EnableIPv6 bool                      `json:"EnableIPv6"`
	IPAM       DockerIPAM                `json:"IPAM"`
	Internal   bool                      `json:"Internal"`
	Attachable bool                      `json:"Attachable"`
	Ingress    bool                      `json:"Ingress"`
	ConfigFrom DockerConfigFrom          `json:"ConfigFrom"`
	ConfigOnly bool                      `json:"ConfigOnly"`
	Containers map[string]DockerEndpoint `json:"Containers"`
	Options    map[string]string         `json:"Options"`
	Labels     map[string]string         `json:"Labels"`
	HostShim   *DockerHostShim           `json:"HostShim,omitempty"`
}

// DockerIPAM is docker's IPAM block: the default driver, no options.
type DockerIPAM struct {
	Driver  string             `json:"Driver"`
	Options map[string]string  `json:"Options"`
	Config  []DockerIPAMConfig `json:"Config"`
}

// DockerIPAMConfig is one subnet; docker leaves out what was not given.
type DockerIPAMConfig struct {
	Subnet             string            `json:"Subnet"`
	IPRange            string            `json:"IPRange,omitempty"`
	Gateway            string            `json:"Gateway,omitempty"`
	AuxiliaryAddresses map[string]string `json:"AuxiliaryAddresses,omitempty"`
}

// DockerConfigFrom is docker's config-only network reference: always
// empty here.
type DockerConfigFrom struct {
	Network string `json:"Network"`
}

// DockerEndpoint is one container on the network; an address absent in a
// family is "" as docker prints it.
type DockerEndpoint struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// DockerHostShim is the host shim (vmlink's addition to docker's shape).
type DockerHostShim struct {
	Interface  string         `json:"Interface"`
	MacAddress string         `json:"MacAddress"`
	Addresses  []netip.Prefix `json:"Addresses"`
}

// DockerInspect is the record as `docker network inspect` shows a network.
func (r *NetworkRecord) DockerInspect() DockerNetwork {
	cfg := []DockerIPAMConfig{}
	for _, c := range r.IPAM {
		d := DockerIPAMConfig{Subnet: c.Subnet.String()}
		if c.IPRange.IsValid() {
			d.IPRange = c.IPRange.String()
		}
		if c.Gateway.IsValid() {
			d.Gateway = c.Gateway.String()
		}
		if len(c.Aux) > 0 {
			d.AuxiliaryAddresses = map[string]string{}
			for k, v := range c.Aux {
				d.AuxiliaryAddresses[k] = v.String()
			}
		}
		cfg = append(cfg, d)
	}
	containers := map[string]DockerEndpoint{}
	for name, a := range r.Endpoints {
		c := DockerEndpoint{Name: name, EndpointID: a.EndpointID, MacAddress: a.MAC}
		for _, p := range a.Addrs {
			if p.Addr().Is4() {
				c.IPv4Address = p.String()
			} else {
				c.IPv6Address = p.String()
			}
		}
		containers[name] = c
	}
	opts := map[string]string{}
	for k, v := range r.Options {
		opts[k] = v
	}
	out := DockerNetwork{
		Name: r.Name, ID: r.ID, Created: r.Created, Scope: "local", Driver: r.Driver, EnableIPv6: r.IPv6,
		IPAM:     DockerIPAM{Driver: "default", Options: map[string]string{}, Config: cfg},
		Internal: r.Internal, Containers: containers, Options: opts, Labels: map[string]string{},
	}
	if r.Shim != nil {
		out.HostShim = &DockerHostShim{Interface: r.Shim.Interface, MacAddress: r.Shim.MAC, Addresses: r.Shim.Addrs}
	}
	return out
}

// removeOrphans removes what a vmlink killed mid-way (kill -9, a crash)
// created but never recorded: links carrying the networks' mark that no
// record explains — an endpoint interface, a host shim, an auto-created
// parent — and namespaces connect created (their loopback carries the mark)
// that no endpoint uses. The marks are set by the creating request itself
// (the group) or right after it, so nothing of ours goes unnoticed.
func (n *Networks) removeOrphans(ctx context.Context, st *netState) ([]Finding, error) {
	var found []Finding
	var errs []error
	usedNS := map[string]bool{}
	wantLinks := map[string]bool{} // "NETNS\x00ALIAS"
	for _, rec := range st.Networks {
		if rec.ParentCreated {
			wantLinks[rec.Host+"\x00"+n.mark().Alias("parent/"+rec.Parent)] = true
		}
		if rec.Shim != nil {
			wantLinks[rec.Host+"\x00"+n.mark().Alias("shim/"+rec.Name)] = true
		}
		for _, a := range rec.Endpoints {
			usedNS[a.NetNS] = true
			wantLinks[a.NetNS+"\x00"+n.mark().Alias("ep/"+rec.Name+"/"+a.NetNS)] = true
		}
	}
	for _, ns := range st.Pending {
		if usedNS[ns] {
			continue
		}
		// Delete also removes the bare file a kill between creating the
		// name and mounting the namespace leaves behind.
		if _, err := os.Lstat(filepath.Join(netns.Dir, ns)); err == nil {
			if err := netns.Delete(ns); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			found = append(found, Finding(fmt.Sprintf("namespace %s was being created by an interrupted connect: removed it", ns)))
		}
	}
	st.Pending = nil
	names, err := netns.List()
	if err != nil {
		return nil, err
	}
	scan := append([]string{n.Host}, names...)
	seen := map[string]bool{}
	for _, ns := range scan {
		if seen[ns] {
			continue
		}
		seen[ns] = true
		var c *rtnl.Conn
		if ns == "" {
			c, err = rtnl.Dial(nil)
		} else {
			c, err = rtnl.DialNetNS(ns, nil)
		}
		if err != nil {
			continue // deleted meanwhile, or not ours to read
		}
		links, err := c.Links(ctx)
		if err != nil {
			c.Close()
			continue
		}
		owned := false
		for _, m := range links {
			if m.Attrs.Name == "lo" && linkAlias(&m) == n.mark().nsAlias() {
				owned = true
			}
		}
		if owned && ns != "" && !usedNS[ns] {
			c.Close()
			if err := netns.Delete(ns); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			found = append(found, Finding(fmt.Sprintf("namespace %s was created by an interrupted connect and is used by no network: removed it", ns)))
			continue
		}
		for _, m := range links {
			if linkGroup(&m) != n.mark().Group() || m.Attrs.Name == "lo" || !n.mark().Owns(linkGroup(&m), linkAlias(&m)) {
				continue
			}
			if wantLinks[ns+"\x00"+linkAlias(&m)] {
				continue
			}
			if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("remove orphan %s in %s: %w", m.Attrs.Name, nsLabel(ns), err))
				continue
			}
			found = append(found, Finding(fmt.Sprintf("link %s in %s (%s) belongs to no network (an interrupted vmlink): removed it", m.Attrs.Name, nsLabel(ns), orDefault(linkAlias(&m), "no alias yet"))))
		}
		c.Close()
	}
	return found, errors.Join(errs...)
}
