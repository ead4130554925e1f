package testenv

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/sandbox"
	"github.com/vmlink/vmlink/rtnl"
)

// NetNS is a throwaway named network namespace (`ip netns` sees it as
// vmlt-PID-N-RANDOM) removed with everything in it when the test ends. It
// has Name, Path, FD, Inode, Do, Start, Exec, Run, WriteSysctl and
// ReadSysctl from sandbox.NetNS, plus Dial and a few link helpers here.
type NetNS struct {
	*sandbox.NetNS

	tb     testing.TB // the test that created it: owns the helper socket
	mu     sync.Mutex
	helper *rtnl.Conn
}

// NewNetNS creates a fresh namespace (only lo, down) and removes it in
// tb.Cleanup, even when the test fails or panics. It requires
// FeaturePrivileged.
func NewNetNS(tb testing.TB) *NetNS {
	tb.Helper()
	return &NetNS{NetNS: sandbox.NewNetNS(tb), tb: tb}
}

// Dial opens an rtnl.Conn inside the namespace, closed in tb.Cleanup
// (before the namespace is removed: cleanups run last-in first-out).
func (n *NetNS) Dial(tb testing.TB) *rtnl.Conn {
	tb.Helper()
	c, err := rtnl.Dial(&rtnl.DialOptions{NetNS: n.FD()})
	if err != nil {
		tb.Fatalf("testenv: dial rtnetlink in netns %s: %v", n.Name(), err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// stepTimeout bounds each setup step's netlink requests.
const stepTimeout = time.Minute

func stepCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), stepTimeout)
}

// Link returns the link called name in the namespace.
func (n *NetNS) Link(tb testing.TB, name string) *rtnl.LinkMessage {
	tb.Helper()
	ctx, cancel := stepCtx()
	defer cancel()
	c := n.conn(tb)
	l, err := c.GetLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
	if err != nil {
		tb.Fatalf("testenv: netns %s: get link %s: %v", n.Name(), name, err)
	}
	return l
}

// SetUp brings the named links up.
func (n *NetNS) SetUp(tb testing.TB, names ...string) {
	tb.Helper()
	ctx, cancel := stepCtx()
	defer cancel()
	c := n.conn(tb)
	for _, name := range names {
		err := c.SetLink(ctx, &rtnl.LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP, Attrs: rtnl.LinkAttrs{Name: name}})
		if err != nil {
			tb.Fatalf("testenv: netns %s: set %s up: %v", n.Name(), name, err)
		}
	}
}

// AddAddr adds addresses (IPv6 ones without duplicate address detection)
// to the named link.
func (n *NetNS) AddAddr(tb testing.TB, name string, addrs ...netip.Prefix) {
	tb.Helper()
	if len(addrs) == 0 {
		return
	}
	ctx, cancel := stepCtx()
	defer cancel()
	c := n.conn(tb)
	idx := uint32(n.Link(tb, name).Index)
	for _, a := range addrs {
		if err := c.AddAddr(ctx, idx, a); err != nil {
			tb.Fatalf("testenv: netns %s: add %s to %s: %v", n.Name(), a, name, err)
		}
	}
}

// conn is the socket the helpers share, dialled on first use and closed
// when the test that created the namespace ends.
func (n *NetNS) conn(tb testing.TB) *rtnl.Conn {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.helper == nil {
		c, err := rtnl.Dial(&rtnl.DialOptions{NetNS: n.FD()})
		if err != nil {
			tb.Fatalf("testenv: dial rtnetlink in netns %s: %v", n.Name(), err)
		}
		n.helper = c
		n.tb.Cleanup(func() { c.Close() })
	}
	return n.helper
}

// newVethTo creates a veth pair from c's namespace: name stays there, peer
// goes to the namespace peerNS (same namespace when nil), both up. It
// returns name's index.
func newVethTo(tb testing.TB, c *rtnl.Conn, where string, name string, mac net.HardwareAddr, peerNS *NetNS, peer string) uint32 {
	tb.Helper()
	ctx, cancel := stepCtx()
	defer cancel()
	pm := &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: peer}}
	if peerNS != nil {
		fd := uint32(peerNS.FD())
		pm.Attrs.NetNSFD = &fd
	}
	m := &rtnl.LinkMessage{
		Flags: unix.IFF_UP, Change: unix.IFF_UP,
		Attrs: rtnl.LinkAttrs{Name: name, Address: mac, Info: &rtnl.LinkInfo{Kind: "veth", Data: &rtnl.Veth{Peer: pm}}},
	}
	if err := c.NewLink(ctx, m, netlink.Create|netlink.Excl); err != nil {
		tb.Fatalf("testenv: %s: create veth %s (peer %s): %v", where, name, peer, err)
	}
	l, err := c.GetLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
	if err != nil {
		tb.Fatalf("testenv: %s: get %s: %v", where, name, err)
	}
	return uint32(l.Index)
}

// validName checks an interface name as the kernel will (IFNAMSIZ).
func validName(field, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s is empty: name the interface", field)
	case len(name) > 15:
		return fmt.Errorf("%s %q is %d bytes: interface names have at most 15", field, name, len(name))
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' {
			return fmt.Errorf("%s %q contains %q: use letters, digits, '.', '-', '_'", field, name, r)
		}
	}
	return nil
}

const netlinkCreateExcl = netlink.Create | netlink.Excl

func netlinkType(t uint16) netlink.HeaderType { return netlink.HeaderType(t) }
