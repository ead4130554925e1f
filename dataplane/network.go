package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

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
	// Options are the driver's (docker's -o KEY=VALUE).
	Options NetworkOptions
	// HostShim gives the host a bridge-mode macvlan on the parent with an
	// address from the network and routes to it (macvlan only).
	HostShim bool
}

// NetworkOptions are a network's driver options, docker's `-o KEY=VALUE`
// in typed form. Each one given takes effect or the network is refused: an
// option of another driver is an error, never dropped. The zero value of
// each means "not given".
type NetworkOptions struct {
	// Parent is the link the network's interfaces sit on (`parent`); X.N
	// is VLAN N on X, created when missing. "" makes an internal network.
	Parent string
	// MacvlanMode is macvlan's and macvtap's mode (`macvlan_mode`);
	// unset is bridge.
	MacvlanMode link.MacvlanMode
	// IPVlanMode is ipvlan's mode (`ipvlan_mode`); unset is l2.
	IPVlanMode link.IPVlanMode
	// IPVlanFlag is how ipvlan interfaces of the parent reach each other
	// (`ipvlan_flag`); unset is bridge.
	IPVlanFlag link.IPVlanFlags
}

// words are the options as docker prints them in `network inspect`: the
// ones given, by docker's key.
func (o NetworkOptions) words() map[string]string {
	m := map[string]string{}
	if o.Parent != "" {
		m["parent"] = o.Parent
	}
	if o.MacvlanMode != link.MacvlanModeUnset {
		m["macvlan_mode"] = o.MacvlanMode.String()
	}
	if o.IPVlanMode != link.IPVlanModeUnset {
		m["ipvlan_mode"] = o.IPVlanMode.String()
	}
	if o.IPVlanFlag != link.IPVlanFlagUnset {
		m["ipvlan_flag"] = o.IPVlanFlag.String()
	}
	return m
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
		if spec.HostShim {
			if err := shimWouldLose(ctx, c, rec); err != nil {
				return err
			}
		}
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

// ErrRefused is wrapped by the error of a network request refused before
// anything changed: a wrong option, a name in use, an address outside the
// subnets. The request is the caller's to fix; there is nothing to clean up.
var ErrRefused = errors.New("network request refused")

// ErrConflict marks a refused request that is well-formed but collides
// with the networks as they are: a name taken or not found, an address in
// use, endpoints still attached. docker fails such requests (exit 1), not
// as usage errors.
var ErrConflict = errors.New("conflicts with the existing networks")

// ErrNoInterface marks a parent interface that does not exist.
var ErrNoInterface = errors.New("no such interface")

// refusal is an error that wraps ErrRefused, and err (ErrConflict,
// ErrNoInterface) when set, with only its own message.
type refusal struct {
	msg string
	err error
}

func (e *refusal) Error() string        { return e.msg }
func (e *refusal) Is(target error) bool { return target == ErrRefused }
func (e *refusal) Unwrap() error        { return e.err }

func refuse(format string, args ...any) error { return &refusal{msg: fmt.Sprintf(format, args...)} }

// conflict is a refusal because of what exists (ErrConflict).
func conflict(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...), err: ErrConflict}
}

// plan validates spec against the other networks and returns the record.
func (n *Networks) plan(st *netState, spec NetworkSpec) (*NetworkRecord, error) {
	if spec.Name == "" {
		return nil, refuse("network name missing: vmlink net create [OPTIONS] NAME")
	}
	if err := checkTopoName(spec.Name); err != nil && spec.Name != netMark.Topology {
		return nil, refuse("network name %q: %v", spec.Name, err)
	}
	if _, dup := st.Networks[spec.Name]; dup {
		return nil, conflict("network with name %s already exists", spec.Name)
	}
	o := spec.Options
	rec := &NetworkRecord{Name: spec.Name, ID: newID(), Created: time.Now().UTC(), Host: n.Host,
		Driver: orDefault(spec.Driver, "macvlan"), IPv6: spec.IPv6, Internal: spec.Internal, Options: o.words()}
	if err := rec.planDriver(o); err != nil {
		return nil, err
	}
	if spec.HostShim && rec.Driver != "macvlan" {
		return nil, refuse("--host-shim: the shim is a bridge-mode macvlan; network %s uses %s", rec.Name, rec.Driver)
	}
	if spec.HostShim && rec.Mode == "passthru" {
		return nil, refuse("--host-shim: passthru takes the parent alone: no shim can join it")
	}
	if err := rec.planParent(o.Parent); err != nil {
		return nil, err
	}
	if err := rec.planIPAM(spec); err != nil {
		return nil, err
	}
	if err := rec.checkParentShared(st); err != nil {
		return nil, err
	}
	return rec, nil
}

// planDriver sets the record's mode (and ipvlan flag) from the driver's
// options, refusing the options of another driver.
func (rec *NetworkRecord) planDriver(o NetworkOptions) error {
	switch rec.Driver {
	case "macvlan", "macvtap":
		switch {
		case o.IPVlanMode != link.IPVlanModeUnset:
			return refuse("-o ipvlan_mode: not an option of the %s driver (use parent, macvlan_mode)", rec.Driver)
		case o.IPVlanFlag != link.IPVlanFlagUnset:
			return refuse("-o ipvlan_flag: not an option of the %s driver (use parent, macvlan_mode)", rec.Driver)
		case o.MacvlanMode == link.MacvlanModeUnset:
			rec.Mode = link.MacvlanModeBridge.String()
		default:
			rec.Mode = o.MacvlanMode.String()
		}
		if _, err := link.ParseMacvlanMode(rec.Mode); err != nil {
			return refuse("-o macvlan_mode=%s: use bridge, private, vepa, passthru or source", rec.Mode)
		}
	case "ipvlan":
		if o.MacvlanMode != link.MacvlanModeUnset {
			return refuse("-o macvlan_mode: not an option of the ipvlan driver (use parent, ipvlan_mode, ipvlan_flag)")
		}
		rec.Mode = link.IPVlanModeL2.String()
		if o.IPVlanMode != link.IPVlanModeUnset {
			rec.Mode = o.IPVlanMode.String()
		}
		if _, err := link.ParseIPVlanMode(rec.Mode); err != nil {
			return refuse("-o ipvlan_mode=%s: use l2, l3 or l3s", rec.Mode)
		}
		if o.IPVlanFlag != link.IPVlanFlagUnset {
			rec.Flag = o.IPVlanFlag.String()
			if _, err := parseIPVlanFlag(rec.Flag); err != nil {
				return refuse("-o ipvlan_flag=%s: use bridge, private or vepa", rec.Flag)
			}
		}
	default:
		return refuse("-d %s: driver not supported: use macvlan, macvtap or ipvlan", rec.Driver)
	}
	return nil
}

// planParent sets the record's parent: the one given (an X.N VLAN parent
// is created later), or, with none, an internal network's dummy link.
func (rec *NetworkRecord) planParent(parent string) error {
	rec.Parent = parent
	switch {
	case rec.Parent == "":
		// docker: no parent makes an internal network on a dummy link.
		rec.Internal = true
		rec.Parent = "dm-" + shortID(rec.ID)
	case rec.Parent == "lo" || strings.HasPrefix(rec.Parent, "lo."):
		return refuse("-o parent=%s: the loopback cannot be a parent: use an Ethernet interface such as eth0 or eth0.10", rec.Parent)
	default:
		if err := link.CheckName(rec.Parent); err != nil {
			return refuse("-o parent=%s: %v", rec.Parent, err)
		}
		if i := strings.LastIndexByte(rec.Parent, '.'); i > 0 {
			if n, err := strconv.ParseUint(rec.Parent[i+1:], 10, 32); err == nil && n > link.MaxVLANID {
				return refuse("-o parent=%s: VLAN id %d is out of range: VLAN ids run from 0 to %d", rec.Parent, n, link.MaxVLANID)
			}
		}
	}
	return nil
}

// planIPAM sets the record's subnets with their gateways, IP ranges and aux
// addresses, as docker's default IPAM does.
func (rec *NetworkRecord) planIPAM(spec NetworkSpec) error {
	if len(spec.Subnets) == 0 {
		return refuse("--subnet missing: give the network at least one subnet (e.g. --subnet 10.0.10.0/24)")
	}
	for i, s := range spec.Subnets {
		if s != s.Masked() {
			return refuse("--subnet %s has host bits set: use %s", s, s.Masked())
		}
		if s.Addr().Is6() && !spec.IPv6 {
			return refuse("--subnet %s is IPv6: add --ipv6", s)
		}
		// The gateway takes one address; a subnet with no other usable one
		// would accept the network and then refuse every connect.
		if room := s.Addr().BitLen() - s.Bits(); room < 2 {
			return refuse("--subnet %s leaves no address for containers next to the gateway: use a /%d or larger", s, s.Addr().BitLen()-2)
		}
		for _, t := range spec.Subnets[:i] {
			if t.Overlaps(s) {
				return refuse("--subnet %s overlaps --subnet %s", s, t)
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
			return refuse("--gateway %s is outside every --subnet", g)
		}
		if rec.IPAM[i].Gateway.IsValid() {
			return refuse("--gateway %s: subnet %s has gateway %s already", g, rec.IPAM[i].Subnet, rec.IPAM[i].Gateway)
		}
		rec.IPAM[i].Gateway = g
	}
	for _, r := range spec.IPRanges {
		i := find(r.Masked().Addr())
		if i < 0 || r.Bits() < rec.IPAM[i].Subnet.Bits() {
			return refuse("--ip-range %s is not inside any --subnet", r)
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
			return refuse("--aux-address %s=%s is outside every --subnet", k, a)
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
			return refuse("%v", err)
		}
	}
	return nil
}

// checkParentShared applies the rules across the networks on the same
// parent: passthru and ipvlan take the parent alone, subnets do not
// overlap.
func (rec *NetworkRecord) checkParentShared(st *netState) error {
	for _, o := range st.Networks {
		if o.Host != rec.Host || o.Parent != rec.Parent {
			continue
		}
		switch {
		case rec.Mode == "passthru" || o.Mode == "passthru":
			return conflict("-o parent=%s: network %s uses it and passthru takes the parent alone", rec.Parent, o.Name)
		case rec.Driver == "ipvlan" || o.Driver == "ipvlan":
			return conflict("-o parent=%s: network %s uses it and ipvlan takes one network per parent", rec.Parent, o.Name)
		}
		for _, c := range rec.IPAM {
			for _, oc := range o.IPAM {
				if c.Subnet.Overlaps(oc.Subnet) {
					return conflict("--subnet %s overlaps subnet %s of network %s on the same parent %s", c.Subnet, oc.Subnet, o.Name, rec.Parent)
				}
			}
		}
	}
	return nil
}

// ensureParent makes sure the parent exists: an X.N VLAN is created when
// missing (and an existing one must be VLAN N on X), the internal dummy is
// created. Parents vmlink created are shared by refcount: the record says
// ParentCreated when this network holds a reference.
func (n *Networks) ensureParent(ctx context.Context, c *rtnl.Conn, st *netState, rec *NetworkRecord) error {
	if _, _, ok := splitVLANParent(rec.Parent); ok {
		l, created, err := EnsureVLANParent(ctx, NamedNS(rec.Host), rec.Parent, n.mark())
		var pm *ParentMismatchError
		var fe *link.FieldError
		switch {
		case errors.As(err, &pm):
			return conflict("-o parent=%s: the link exists but is not VLAN %d on %s (it is %s): rename or remove it", rec.Parent, pm.ID, pm.Base, pm.Have)
		case errors.As(err, &fe):
			return refuse("-o parent=%s: %v", rec.Parent, err)
		case err != nil:
			var feat *FeatureError
			if errors.As(err, &feat) {
				return err
			}
			return fmt.Errorf("create parent %s: %w", rec.Parent, err)
		}
		// A parent vmlink created for another network: share it.
		rec.ParentCreated = created || (n.mark().Owns(l.Group, l.Alias) && l.Group == n.mark().Group())
		return nil
	}
	h := link.New(c)
	l, err := h.Get(ctx, rec.Parent)
	if err == nil {
		if l.Type == unix.ARPHRD_LOOPBACK {
			return refuse("-o parent=%s: the loopback cannot be a parent", rec.Parent)
		}
		rec.ParentCreated = n.mark().Owns(l.Group, l.Alias) && l.Group == n.mark().Group()
		return nil
	}
	if !errors.Is(err, link.ErrNotFound) {
		return fmt.Errorf("parent %s: %w", rec.Parent, err)
	}
	if !strings.HasPrefix(rec.Parent, "dm-") || !rec.Internal {
		return &refusal{msg: fmt.Sprintf("-o parent=%s: no such interface%s: create it first, or use X.N to have VLAN N on X created", rec.Parent, hostWhere(n.Host)), err: ErrNoInterface}
	}
	// docker: an internal network without a parent sits on a dummy link.
	spec := &link.Dummy{Common: link.Common{Name: rec.Parent, Group: n.mark().Group(), Alias: n.mark().Alias("parent/" + rec.Parent), Up: true}}
	if _, err = h.Create(ctx, spec); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return &FeatureError{Feature: "dummy", Err: err}
		}
		return fmt.Errorf("create parent %s: %w", rec.Parent, err)
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
	m, err := link.New(c).Get(ctx, rec.Parent)
	switch {
	case errors.Is(err, link.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if !n.mark().Owns(m.Group, m.Alias) {
		return nil
	}
	if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("remove parent %s: %w", rec.Parent, err)
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
		if err := n.checkHost(rec); err != nil {
			return err
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
			if m, err := link.New(c).Get(ctx, rec.Shim.Interface); err == nil && n.mark().Owns(m.Group, m.Alias) {
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

// Set sets the option docker calls key (`-o key=value`); an unknown key or
// a value the option does not take is an error naming both.
func (o *NetworkOptions) Set(key, value string) error {
	var err error
	switch key {
	case "parent":
		o.Parent = value
	case "macvlan_mode":
		if o.MacvlanMode, err = link.ParseMacvlanMode(value); err != nil {
			return fmt.Errorf("-o macvlan_mode=%s: use bridge, private, vepa, passthru or source", value)
		}
	case "ipvlan_mode":
		if o.IPVlanMode, err = link.ParseIPVlanMode(value); err != nil {
			return fmt.Errorf("-o ipvlan_mode=%s: use l2, l3 or l3s", value)
		}
	case "ipvlan_flag":
		if o.IPVlanFlag, err = parseIPVlanFlag(value); err != nil || value == "" {
			return fmt.Errorf("-o ipvlan_flag=%s: use bridge, private or vepa", value)
		}
	default:
		return fmt.Errorf("-o %s: unknown option: use parent, macvlan_mode, ipvlan_mode or ipvlan_flag", key)
	}
	return nil
}

// parseIPVlanFlag parses a recorded ipvlan flag; "" is unset.
func parseIPVlanFlag(s string) (link.IPVlanFlags, error) {
	if s == "" {
		return link.IPVlanFlagUnset, nil
	}
	for _, f := range []link.IPVlanFlags{link.IPVlanFlagBridge, link.IPVlanFlagPrivate, link.IPVlanFlagVEPA} {
		if s == f.String() {
			return f, nil
		}
	}
	return link.IPVlanFlagUnset, fmt.Errorf("unknown ipvlan flag %q: use bridge, private or vepa", s)
}
