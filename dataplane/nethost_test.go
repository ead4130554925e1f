package dataplane

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// addVeth creates the veth name (peer name+"p", both up) in ns. (The
// peer is brought up afterwards: a peer up in the creating request is
// refused with ENOTCONN by 6.18.)
func addVeth(t *testing.T, ns, name string) {
	t.Helper()
	c, err := rtnl.DialNetNS(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.NewLink(context.Background(), &rtnl.LinkMessage{Flags: 1, Change: 1, Attrs: rtnl.LinkAttrs{Name: name, Info: &rtnl.LinkInfo{Kind: "veth",
		Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name + "p"}}}}}}, 0x400|0x200); err != nil {
		t.Fatal(err)
	}
	up := true
	if err := link.New(c).Set(context.Background(), name+"p", link.Change{Up: &up}); err != nil {
		t.Fatal(err)
	}
}

// TestNetworkOperationsUseItsOwnNamespace: a network created in sandbox H
// (-n H) acts on H whatever the later request's -n says. A request whose
// -n names another sandbox O — which has a link of the parent's name too —
// is refused, and nothing appears in O; a request without -n connects on
// H's parent.
func TestNetworkOperationsUseItsOwnNamespace(t *testing.T) {
	e, nets := newNetEnv(t)
	ctx := context.Background()
	// A parent name the caller's own namespace surely lacks: were the
	// request without -n carried out there, it would fail, not touch it.
	parent := fmt.Sprintf("vp%04x", rand.IntN(0x10000))
	if _, err := openHandle(t, "").Get(ctx, parent); err == nil {
		t.Skipf("the test's namespace has a link %s already", parent)
	}
	other := e.prefix + "other"
	h, err := netns.Create(other)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	addVeth(t, e.host, parent)
	addVeth(t, other, parent)
	before := linkNames(t, other)
	if _, err := nets.Create(ctx, NetworkSpec{Name: "own", Subnets: []netip.Prefix{pfx("10.62.0.0/24")}, Options: netOpts(t, "parent", parent)}); err != nil {
		t.Fatal(err)
	}
	wrong := &Networks{Host: other, StateDir: e.stateDir}
	c1 := e.prefix + "c1"
	_, err = wrong.Connect(ctx, ConnectSpec{Network: "own", Container: c1})
	wantUsage(t, err, "network own lives in netns "+e.host+", not in netns "+other)
	if got := linkNames(t, other); !slices.Equal(got, before) {
		t.Fatalf("links in %s after a connect naming it: %v, want %v", other, got, before)
	}
	if netns.Exists(c1) {
		t.Fatal("a refused connect created the container's namespace")
	}
	wantUsage(t, wrong.Remove(ctx, "own"), "lives in netns "+e.host)

	// Without -n: the network's own namespace.
	callers := &Networks{StateDir: e.stateDir}
	a, err := callers.Connect(ctx, ConnectSpec{Network: "own", Container: c1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := openHandle(t, c1).Get(ctx, a.Interface)
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != "macvlan" || l.ParentNetNSID == nil {
		t.Fatalf("c1's %s = %+v, want a macvlan on a parent in another namespace", a.Interface, l)
	}
	wantUsage(t, wrong.Disconnect(ctx, "own", c1), "lives in netns "+e.host)
	if err := callers.Disconnect(ctx, "own", c1); err != nil {
		t.Fatal(err)
	}
	if err := nets.Remove(ctx, "own"); err != nil {
		t.Fatal(err)
	}
}
