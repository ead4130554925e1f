package testenv_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/testenv"
)

var addr = netip.MustParseAddr

// addVLAN creates NAME (VLAN vid on parent) up in ns, with addrs.
func addVLAN(t *testing.T, ns *testenv.NetNS, parent, name string, vid uint16, proto rtnl.VLANProtocol, addrs ...netip.Prefix) {
	t.Helper()
	addVLANWithMAC(t, ns, parent, name, vid, proto, nil, addrs...)
}

// addVLANWithMAC is addVLAN with the sub-interface's own MAC (nil: the
// parent's, the kernel's default).
func addVLANWithMAC(t *testing.T, ns *testenv.NetNS, parent, name string, vid uint16, proto rtnl.VLANProtocol, mac net.HardwareAddr, addrs ...netip.Prefix) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	idx := uint32(ns.Link(t, parent).Index)
	m := &rtnl.LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP, Attrs: rtnl.LinkAttrs{Name: name, Link: &idx, Address: mac,
		Info: &rtnl.LinkInfo{Kind: "vlan", Data: &rtnl.VLAN{ID: &vid, Protocol: &proto}}}}
	if err := ns.Dial(t).NewLink(ctx, m, netlink.Create|netlink.Excl); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	ns.AddAddr(t, name, addrs...)
}

// TestVLANSwitchIsolates: access ports of one VLAN reach each other, not
// those of another VLAN even in the same subnet; the parent's trunk
// carries each VLAN to its sub-interface. Needs bridge VLAN filtering and
// 8021q: the VM tier.
func TestVLANSwitchIsolates(t *testing.T) {
	testenv.Require(t, testenv.FeatureBridgeVLAN, testenv.FeatureVLAN)
	p := testenv.NewVLANSwitch(t, testenv.VLANSwitchOptions{Trunk: []uint16{10, 20}})
	a := p.Switch.Attach(t, testenv.EndpointOptions{PVID: 10, Addrs: []netip.Prefix{pfx("10.10.0.2/24")}})
	b := p.Switch.Attach(t, testenv.EndpointOptions{PVID: 10, Addrs: []netip.Prefix{pfx("10.10.0.3/24")}})
	c := p.Switch.Attach(t, testenv.EndpointOptions{PVID: 20, Addrs: []netip.Prefix{pfx("10.10.0.4/24")}})
	for _, e := range []struct {
		ep *testenv.Endpoint
		a  string
	}{{a, "10.10.0.2"}, {b, "10.10.0.3"}, {c, "10.10.0.4"}} {
		serveEcho(t, e.ep.NetNS, addr(e.a))
	}
	if !reaches(t, a.NetNS, addr("10.10.0.3")) {
		t.Error("two access ports of VLAN 10 cannot talk")
	}
	if reaches(t, a.NetNS, addr("10.10.0.4")) {
		t.Error("an access port of VLAN 10 reached one of VLAN 20")
	}
	// The parent's trunk: p0.20 is in VLAN 20 with c, not with a.
	addVLAN(t, p.Host, p.Name, "p0.20", 20, rtnl.VLANProtocol8021Q, pfx("10.10.0.9/24"))
	if !reaches(t, p.Host, addr("10.10.0.4")) {
		t.Error("p0.20 cannot reach VLAN 20's access port through the trunk")
	}
	if reaches(t, p.Host, addr("10.10.0.2")) {
		t.Error("p0.20 reached VLAN 10's access port")
	}
}

// TestRouterRoutesBetweenVLANs: stations of VLANs 10 and 20 talk through
// the router's sub-interfaces. The VM tier.
func TestRouterRoutesBetweenVLANs(t *testing.T) {
	testenv.Require(t, testenv.FeatureBridgeVLAN, testenv.FeatureVLAN)
	p := testenv.NewVLANSwitch(t, testenv.VLANSwitchOptions{Trunk: []uint16{10, 20}})
	r := testenv.NewRouter(t, p.Switch, []testenv.RouterVLAN{
		{VID: 10, Addrs: []netip.Prefix{pfx("10.10.0.1/24")}},
		{VID: 20, Addrs: []netip.Prefix{pfx("10.20.0.1/24")}},
	})
	if r.Interfaces[10] != "eth0.10" || r.Interfaces[20] != "eth0.20" {
		t.Errorf("router interfaces %v", r.Interfaces)
	}
	if v, err := r.ReadSysctl("net/ipv4/ip_forward"); err != nil || v != "1" {
		t.Errorf("router ip_forward %q, %v", v, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := p.Switch.Attach(t, testenv.EndpointOptions{PVID: 10, Addrs: []netip.Prefix{pfx("10.10.0.2/24")}})
	b := p.Switch.Attach(t, testenv.EndpointOptions{PVID: 20, Addrs: []netip.Prefix{pfx("10.20.0.2/24")}})
	if err := a.Dial(t).AddDefaultRoute(ctx, addr("10.10.0.1"), 0); err != nil {
		t.Fatal(err)
	}
	serveEcho(t, b.NetNS, addr("10.20.0.2"))
	if reaches(t, a.NetNS, addr("10.20.0.2")) {
		t.Fatal("reached VLAN 20 before b had a route back")
	}
	if err := b.Dial(t).AddDefaultRoute(ctx, addr("10.20.0.1"), 0); err != nil {
		t.Fatal(err)
	}
	if !reaches(t, a.NetNS, addr("10.20.0.2")) {
		t.Error("VLAN 10 cannot reach VLAN 20 through the router")
	}
}
