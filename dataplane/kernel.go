package dataplane

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/feature"
	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// Mark is how a topology recognises its own kernel objects: a link group
// (set by the very request that creates the link, so no window exists in
// which a link of ours is unmarked) and an alias naming the object, which
// `ip -d link` shows to users.
type Mark struct{ Topology string }

// Group is the topology's link group: a hash of its name, kept away from
// the small numbers people pick by hand (0x10000000–0x7fffffff).
func (m Mark) Group() uint32 {
	h := fnv.New32a()
	h.Write([]byte("vmlink:" + m.Topology))
	return h.Sum32()%0x70000000 + 0x10000000
}

// Alias is the alias of object, e.g. "vmlink:lab:ep/c1/eth0".
func (m Mark) Alias(object string) string { return "vmlink:" + m.Topology + ":" + object }

// Owns reports whether a link with this group and alias is the topology's.
// An empty alias with our group is ours too: Up died between creating the
// link and naming it.
func (m Mark) Owns(group uint32, alias string) bool {
	if group != m.Group() {
		return false
	}
	return alias == "" || strings.HasPrefix(alias, "vmlink:"+m.Topology+":")
}

// nsAlias is the alias Up puts on the loopback of every namespace it
// creates: the namespace's own ownership mark.
func (m Mark) nsAlias() string { return m.Alias("netns") }

// conns caches one rtnetlink socket per namespace ("" is the caller's).
type conns map[string]*rtnl.Conn

func (c conns) get(ns string) (*rtnl.Conn, error) {
	if conn := c[ns]; conn != nil {
		return conn, nil
	}
	var conn *rtnl.Conn
	var err error
	if ns == "" {
		conn, err = rtnl.Dial(nil)
	} else {
		conn, err = rtnl.DialNetNS(ns, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("open netlink in %s: %w", nsLabel(ns), err)
	}
	c[ns] = conn
	return conn, nil
}

// drop forgets (and closes) the socket of a namespace about to be deleted:
// an open socket would keep the namespace alive.
func (c conns) drop(ns string) {
	if conn := c[ns]; conn != nil {
		conn.Close()
		delete(c, ns)
	}
}

func (c conns) close() {
	for ns := range c {
		c.drop(ns)
	}
}

func nsLabel(ns string) string {
	if ns == "" {
		return "the current namespace"
	}
	return "netns " + ns
}

// ensureAddr adds p to the link unless it has it; added reports a change.
func ensureAddr(ctx context.Context, c *rtnl.Conn, index int32, p netip.Prefix) (added bool, err error) {
	return ensureAddrBrd(ctx, c, index, p, false)
}

// ensureAddrBrd is ensureAddr that, with brd, gives an IPv4 address its
// subnet's broadcast address (`brd +`).
func ensureAddrBrd(ctx context.Context, c *rtnl.Conn, index int32, p netip.Prefix, brd bool) (added bool, err error) {
	have, err := hasAddr(ctx, c, index, p)
	if err != nil || have {
		return false, err
	}
	add := c.AddAddr
	if brd {
		add = c.AddAddrBroadcast
	}
	if err := add(ctx, uint32(index), p); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return false, nil
		}
		return false, fmt.Errorf("add address %s: %w", p, err)
	}
	return true, nil
}

func hasAddr(ctx context.Context, c *rtnl.Conn, index int32, p netip.Prefix) (bool, error) {
	fam := uint8(unix.AF_INET)
	if p.Addr().Is6() {
		fam = unix.AF_INET6
	}
	addrs, err := c.Addrs(ctx, fam, uint32(index))
	if err != nil {
		return false, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if a.Prefix() == p {
			return true, nil
		}
	}
	return false, nil
}

// ensureRoute installs r unless an identical route is there.
func ensureRoute(ctx context.Context, c *rtnl.Conn, r rtnl.Route) error {
	if err := c.AddRoute(ctx, r); err != nil && !errors.Is(err, unix.EEXIST) {
		what := "default"
		if r.Dst.IsValid() {
			what = r.Dst.String()
		}
		if r.Gateway.IsValid() {
			return fmt.Errorf("add route %s via %s: %w", what, r.Gateway, err)
		}
		return fmt.Errorf("add route %s: %w", what, err)
	}
	return nil
}

// createNS creates a named namespace, brings its loopback up and marks it
// as the topology's through the loopback's alias.
//
// A file of that name that is not a mounted namespace is the remains of a
// creation killed between making the file and mounting the namespace on
// it: it is removed and the creation retried. (Callers hold the state
// lock, so no other vmlink is between those two steps.)
func createNS(ctx context.Context, name, alias string) error {
	h, err := netns.Create(name)
	if errors.Is(err, unix.EEXIST) && !netns.Exists(name) {
		if rerr := os.Remove(filepath.Join(netns.Dir, name)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return fmt.Errorf("%w (and removing the unmounted leftover failed: %v)", err, rerr)
		}
		h, err = netns.Create(name)
	}
	if err != nil {
		return err
	}
	h.Close()
	return markNS(ctx, name, alias)
}

// markNS sets the ownership alias on the namespace's loopback and brings it
// up.
func markNS(ctx context.Context, name, alias string) error {
	c, err := rtnl.DialNetNS(name, nil)
	if err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	defer c.Close()
	up := true
	if err := link.New(c).Set(ctx, "lo", link.Change{Alias: &alias, Up: &up}); err != nil {
		return fmt.Errorf("netns %s: %w", name, err)
	}
	return nil
}

// nsOwned reports whether the existing namespace name carries alias on its
// loopback.
func nsOwned(ctx context.Context, name, alias string) (bool, error) {
	c, err := rtnl.DialNetNS(name, nil)
	if err != nil {
		return false, err
	}
	defer c.Close()
	lo, err := link.New(c).Get(ctx, "lo")
	if err != nil {
		return false, err
	}
	return lo.Alias == alias, nil
}

// writeSysctl writes value to /proc/sys/PATH inside the namespace: sysctls
// under net/ belong to the network namespace of the writing thread.
func (n Namespace) writeSysctl(path, value string) error {
	err := n.do(func() error {
		return os.WriteFile("/proc/sys/"+path, []byte(value), 0)
	})
	if err != nil {
		return fmt.Errorf("sysctl %s=%s in %s: %w", strings.ReplaceAll(path, "/", "."), value, n.label(), err)
	}
	return nil
}

// readSysctl reads /proc/sys/PATH inside the namespace, trimmed.
func (n Namespace) readSysctl(path string) (string, error) {
	var b []byte
	err := n.do(func() (err error) {
		b, err = os.ReadFile("/proc/sys/" + path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("sysctl %s in %s: %w", strings.ReplaceAll(path, "/", "."), n.label(), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Probe reports whether the kernel has the link kind a feature provides
// ("8021q" or "vlan", "ipvlan", "macvlan", "macvtap"): nil, a *FeatureError
// when it does not, or another error when the probe could not tell. It asks
// internal/feature's probe, which creates the kind in a throwaway namespace
// once per process; ctx is not needed by it.
func Probe(ctx context.Context, name string) error {
	kind := feature.Kind(name)
	if kind == "" {
		return fmt.Errorf("probe: unknown feature %q", name)
	}
	err := feature.LinkKind(kind)
	if errors.Is(err, feature.ErrNotSupported) {
		return &FeatureError{Feature: feature.Module(kind), Err: err}
	}
	return err
}

// portForwarding reports whether a bridge port passes frames, from the
// port state the kernel reports. When the state is not reported, the port's
// operstate decides.
func portForwarding(l *link.Link) bool {
	if l.BridgePort != nil && l.BridgePort.State != nil {
		return l.BridgePort.Forwarding()
	}
	return operUp(l)
}

// carriesFrames reports whether an interface passes frames: operationally
// up, or — for drivers that never set an operational state, as ipvlan
// (its links stay "UNKNOWN", measured on 6.1) — up with carrier.
func carriesFrames(l *link.Link) bool {
	if operUp(l) {
		return true
	}
	unknown := l.OperState == nil || *l.OperState == ifOperUnknown
	return unknown && l.Flags&unix.IFF_UP != 0 && l.Flags&unix.IFF_LOWER_UP != 0
}

// ifOperUp is IF_OPER_UP; ifOperUnknown is IF_OPER_UNKNOWN.
const (
	ifOperUp      = 6
	ifOperUnknown = 0
)

func operUp(l *link.Link) bool {
	return l.OperState != nil && *l.OperState == ifOperUp
}
