package dataplane

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// TestBuildEndpointLink builds a container interface the way a CNI plugin
// asks for one: the container's namespace given as a path, the interface
// named eth0 like the parent in the host namespace, a MAC, an MTU, an
// address and a default route. It checks the kernel has exactly that, that
// a second build completes instead of failing, that a link without the
// mark is refused, that a failed step leaves nothing behind, and that
// Remove is idempotent.
func TestBuildEndpointLink(t *testing.T) {
	e, ctr, hc := newEndpointEnv(t, "eth0")
	ctx := context.Background()
	mark := Mark{Topology: "ept"}
	mac := net.HardwareAddr{0x02, 0, 0, 0x0e, 0, 0x01}
	path := Namespace{Path: filepath.Join(netns.Dir, ctr)}
	spec := func() EndpointLinkSpec {
		return EndpointLinkSpec{
			Link:  &link.Macvlan{Common: link.Common{Name: "eth0", Parent: "eth0", Address: mac, MTU: 1400}, Mode: link.MacvlanModeBridge},
			Host:  NamedNS(e.host),
			NetNS: path, Mark: mark, Object: "ep/c/eth0",
			Addrs:  []netip.Prefix{netip.MustParsePrefix("10.61.0.5/24")},
			Routes: []Route{{Gateway: netip.MustParseAddr("10.61.0.1")}},
		}
	}
	ep, err := BuildEndpointLink(ctx, spec())
	if err != nil {
		t.Fatal(err)
	}
	if !ep.Created || ep.Name != "eth0" || ep.MAC.String() != mac.String() {
		t.Fatalf("built %+v", ep)
	}
	l, err := openHandle(t, ctr).Get(ctx, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != "macvlan" || l.MTU != 1400 || l.Index != ep.Index || l.Group != mark.Group() || l.Alias != mark.Alias("ep/c/eth0") || !l.Up() {
		t.Fatalf("container eth0 = %+v", l)
	}
	if hl, err := link.New(hc).Get(ctx, "eth0"); err != nil || hl.Kind != "veth" {
		t.Fatalf("host eth0 = %+v, %v: the parent must stay the veth", hl, err)
	}
	ec, err := rtnl.DialNetNS(ctr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	if has, err := hasAddr(ctx, ec, ep.Index, netip.MustParsePrefix("10.61.0.5/24")); err != nil || !has {
		t.Fatalf("address on eth0: %v, %v", has, err)
	}
	if has, err := hasDefaultRoute(ctx, ec, false); err != nil || !has {
		t.Fatalf("default route: %v, %v", has, err)
	}

	again, err := BuildEndpointLink(ctx, spec())
	if err != nil || again.Created || again.AddedAddrs != 0 || again.Index != ep.Index {
		t.Fatalf("second build = %+v, %v: want the same link, nothing added", again, err)
	}

	if err := ec.NewLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "eth1", Info: &rtnl.LinkInfo{Kind: "bridge"}}}, netlink.Create|netlink.Excl); err != nil {
		t.Fatal(err)
	}
	foreign := spec()
	foreign.Link.Base().Name = "eth1"
	_, err = BuildEndpointLink(ctx, foreign)
	var fe *ForeignLinkError
	if !errors.As(err, &fe) || fe.Name != "eth1" {
		t.Fatalf("build over an unmarked eth1 = %v, want a ForeignLinkError", err)
	}

	// A route the kernel refuses (a gateway outside every subnet): the
	// link created for it is removed again.
	bad := spec()
	bad.Link.Base().Name = "eth2"
	bad.Link.Base().Address = nil
	bad.Routes = []Route{{Gateway: netip.MustParseAddr("192.0.2.1")}}
	if _, err := BuildEndpointLink(ctx, bad); err == nil {
		t.Fatal("a route via an unreachable gateway was accepted")
	}
	if m, err := link.New(ec).Get(ctx, "eth2"); !errors.Is(err, link.ErrNotFound) {
		t.Fatalf("eth2 left behind after a failed build: %v, %v", m, err)
	}

	if err := ep.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if m, err := link.New(ec).Get(ctx, "eth0"); !errors.Is(err, link.ErrNotFound) {
		t.Fatalf("eth0 after Remove: %v, %v", m, err)
	}
	if err := ep.Remove(ctx); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	// Remove leaves a link without the mark alone.
	if err := RemoveEndpointLink(ctx, path, "eth1", mark); err != nil {
		t.Fatal(err)
	}
	if _, err := link.New(ec).Get(ctx, "eth1"); err != nil {
		t.Fatalf("Remove deleted a link without the mark: %v", err)
	}
	ec.Close()
	if err := netns.Delete(ctr); err != nil {
		t.Fatal(err)
	}
	if err := RemoveEndpointLink(ctx, path, "eth0", mark); err != nil {
		t.Fatalf("Remove in a namespace that is gone: %v", err)
	}
	if err := RemoveEndpointLink(ctx, NamedNS(ctr), "eth0", mark); err != nil {
		t.Fatalf("Remove in a named namespace that is gone: %v", err)
	}
}

func openHandle(t *testing.T, ns string) *link.Handle {
	t.Helper()
	h, err := link.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// newEndpointEnv is a test environment with an empty container namespace
// ctr and, in its host namespace (hc dials it), an up veth parent called
// parent.
func newEndpointEnv(t *testing.T, parent string) (e *testEnv, ctr string, hc *rtnl.Conn) {
	t.Helper()
	e = newTestEnv(t)
	ctr = e.prefix + "ctr"
	h, err := netns.Create(ctr)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	hc, err = rtnl.DialNetNS(e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Close() })
	if err := hc.NewLink(context.Background(), &rtnl.LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP, Attrs: rtnl.LinkAttrs{Name: parent, Info: &rtnl.LinkInfo{Kind: "veth",
		Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "peer0"}}}}}}, netlink.Create|netlink.Excl); err != nil {
		t.Fatal(err)
	}
	return e, ctr, hc
}
