//go:build vm

package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/testenv"
)

// TestNetworkIPVlan is `net create -d ipvlan -o parent=p0 -o
// ipvlan_mode=l2`, two containers connected and pinging each other (IPv4
// and IPv6), the one-network-per-parent refusal both ways, and removal
// leaving the host namespace as it was. It needs ipvlan: the VM tier
// (make test-vm), where the kernel has the module.
func TestNetworkIPVlan(t *testing.T) {
	testenv.Require(t, testenv.FeatureIPVlan)
	e, nets := newNetEnv(t)
	ctx := context.Background()
	before := strings.Join(e.links(t), ",")
	rec, err := nets.Create(ctx, NetworkSpec{Name: "ipv", Driver: "ipvlan", IPv6: true,
		Subnets: []netip.Prefix{pfx("10.40.0.0/24"), pfx("fd00:40::/64")},
		Options: netOpts(t, "parent", "p0", "ipvlan_mode", "l2")})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Driver != "ipvlan" || rec.Mode != "l2" || rec.Parent != "p0" || rec.ParentCreated {
		t.Fatalf("record %+v", rec)
	}
	// ipvlan takes one network per parent, whichever driver comes second.
	_, err = nets.Create(ctx, NetworkSpec{Name: "second", Subnets: []netip.Prefix{pfx("10.41.0.0/24")}, Options: netOpts(t, "parent", "p0")})
	wantUsage(t, err, "ipvlan takes one network per parent")
	if _, err := nets.Create(ctx, NetworkSpec{Name: "mv1", Subnets: []netip.Prefix{pfx("10.42.0.0/24")}, Options: netOpts(t, "parent", "p1")}); err != nil {
		t.Fatal(err)
	}
	_, err = nets.Create(ctx, NetworkSpec{Name: "ipv1", Driver: "ipvlan", Subnets: []netip.Prefix{pfx("10.43.0.0/24")}, Options: netOpts(t, "parent", "p1")})
	wantUsage(t, err, "ipvlan takes one network per parent")
	if err := nets.Remove(ctx, "mv1"); err != nil {
		t.Fatal(err)
	}

	c1, c2 := e.prefix+"i1", e.prefix+"i2"
	a1, err := nets.Connect(ctx, ConnectSpec{Network: "ipv", Container: c1})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := nets.Connect(ctx, ConnectSpec{Network: "ipv", Container: c2})
	if err != nil {
		t.Fatal(err)
	}
	if a1.Addrs[0].String() != "10.40.0.2/24" || a2.Addrs[0].String() != "10.40.0.3/24" {
		t.Fatalf("allocated %v and %v", a1.Addrs, a2.Addrs)
	}
	// The kernel has ipvlan l2 interfaces sharing the parent's MAC.
	hc, err := rtnl.DialNetNS(e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	p0, perr := link.New(hc).Get(ctx, "p0")
	hc.Close()
	ec, err := rtnl.DialNetNS(c1, nil)
	if err != nil {
		t.Fatal(err)
	}
	eth0, err := link.New(ec).Get(ctx, "eth0")
	ec.Close()
	if err != nil || perr != nil || eth0.Kind != "ipvlan" || eth0.Address.String() != p0.Address.String() {
		t.Fatalf("c1/eth0 = %+v (%v), p0 %v: want an ipvlan with p0's MAC", eth0, err, perr)
	}
	_, err = nets.Connect(ctx, ConnectSpec{Network: "ipv", Container: e.prefix + "i3", MAC: p0.Address})
	wantUsage(t, err, "ipvlan interfaces share the parent's MAC")
	// Emulated CPU: give IPv6 duplicate address detection its time.
	for _, c := range []struct {
		from string
		to   netip.Prefix
	}{{c1, a2.Addrs[0]}, {c2, a1.Addrs[0]}, {c1, a2.Addrs[1]}, {c2, a1.Addrs[1]}} {
		if err := ping(c.from, c.to.Addr(), 30*time.Second); err != nil {
			t.Error(err)
		}
	}
	for _, c := range []string{c1, c2} {
		if err := nets.Disconnect(ctx, "ipv", c); err != nil {
			t.Fatal(err)
		}
		if netns.Exists(c) {
			t.Errorf("disconnect kept namespace %s that connect created", c)
		}
	}
	if err := nets.Remove(ctx, "ipv"); err != nil {
		t.Fatal(err)
	}
	if after := strings.Join(e.links(t), ","); after != before {
		t.Fatalf("links after rm: %s, want %s", after, before)
	}
	if recs, _, err := nets.List(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("networks left: %v, %v", recs, err)
	}
}

// TestUpIPVlanDefaultsToL2: a topology's ipvlan network without a mode
// gets l2 interfaces, as `net create -d ipvlan`, Docker and the CNI ipvlan
// plugin make them (the kernel alone would pick l3), and Up reports the
// mode the kernel has.
func TestUpIPVlanDefaultsToL2(t *testing.T) {
	testenv.Require(t, testenv.FeatureIPVlan)
	e := newTestEnv(t)
	ctx := context.Background()
	topo, err := Parse(strings.NewReader(fmt.Sprintf(`
name: %[1]stopo
host: %[2]s
parents:
  - name: pa
    sandbox: {switch: %[1]ssw}
networks:
  - {name: ni, parent: pa, driver: ipvlan, subnets: [10.8.1.0/24]}
endpoints:
  - {name: c1, netns: %[1]sc1, interfaces: [{network: ni}]}
`, e.prefix, e.host)))
	if err != nil {
		t.Fatal(err)
	}
	opts := &Options{StateDir: e.stateDir}
	built, err := Up(ctx, topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Down(context.Background(), topo, opts) })
	h, err := link.Open(e.prefix + "c1")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.Get(ctx, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if l.IPVlan == nil || l.IPVlan.Mode != link.IPVlanModeL2 {
		t.Fatalf("c1/eth0 ipvlan = %+v, want mode l2", l.IPVlan)
	}
	if len(built.Interfaces) != 1 || built.Interfaces[0].Mode != "l2" {
		t.Fatalf("Up reports %+v, want mode l2", built.Interfaces)
	}
}
