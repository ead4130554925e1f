package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// TestUpConvergesOnAChangedFile: re-running Up on a changed file makes
// the kernel what the file now says — the sandbox parent's MTU, the
// network's mode (the interface is made again: the kernel cannot change
// it), the endpoint's address (replaced, not added) — and reports the
// changes; Down then removes everything.
func TestUpConvergesOnAChangedFile(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	file := func(mtu int, mode, addr string) *Topology {
		topo, err := Parse(strings.NewReader(fmt.Sprintf(`
name: %[1]stopo
host: %[2]s
parents:
  - name: pa
    mtu: %[3]d
    sandbox: {switch: %[1]ssw}
networks:
  - {name: na, parent: pa, mode: %[4]s, subnets: [10.9.1.0/24]}
endpoints:
  - {name: c1, netns: %[1]sc1, interfaces: [{network: na, addresses: [%[5]s]}]}
`, e.prefix, e.host, mtu, mode, addr)))
		if err != nil {
			t.Fatal(err)
		}
		return topo
	}
	opts := &Options{StateDir: e.stateDir}
	if _, err := Up(ctx, file(1500, "bridge", "10.9.1.5/24"), opts); err != nil {
		t.Fatal(err)
	}
	changed := file(9000, "private", "10.9.1.6/24")
	built, err := Up(ctx, changed, opts)
	if err != nil {
		t.Fatal(err)
	}
	if built.Created == 0 {
		t.Error("Up of a changed file reports nothing changed")
	}
	for _, ns := range []string{e.host, e.prefix + "sw"} {
		h := openHandle(t, ns)
		l, err := h.Get(ctx, "pa")
		if err != nil {
			t.Fatal(err)
		}
		if l.MTU != 9000 {
			t.Errorf("pa in %s: mtu %d, want 9000", ns, l.MTU)
		}
	}
	l, err := openHandle(t, e.prefix+"c1").Get(ctx, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Macvlan == nil || l.Macvlan.Mode != link.MacvlanModePrivate {
		t.Errorf("c1/eth0 = %+v, want mode private", l.Macvlan)
	}
	ec, err := rtnl.DialNetNS(e.prefix+"c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	addrs, err := ec.Addrs(ctx, 2 /* AF_INET */, uint32(l.Index))
	if err != nil {
		t.Fatal(err)
	}
	var got []netip.Prefix
	for i := range addrs {
		got = append(got, addrs[i].Prefix())
	}
	if len(got) != 1 || got[0] != netip.MustParsePrefix("10.9.1.6/24") {
		t.Errorf("c1/eth0 addresses %v, want only 10.9.1.6/24", got)
	}
	again, err := Up(ctx, changed, opts)
	if err != nil || again.Created != 0 {
		t.Fatalf("third Up = %d changes, %v: want none", again.Created, err)
	}
	if _, err := Down(ctx, changed, opts); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
}

// TestDownKeepsWhatAnotherTopologyDeclares: two topologies declare the
// same address on a parent neither owns; a third that would reuse an
// endpoint's address on that wire is refused. The first Up adds it; Down of
// that one leaves it, since the other still declares it; Down of the last
// one removes it.
func TestDownKeepsWhatAnotherTopologyDeclares(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	addVeth(t, e.host, "ex0")
	topo := func(name, subnet, addr string) *Topology {
		tp, err := Parse(strings.NewReader(fmt.Sprintf(`
name: %[1]s%[2]s
host: %[3]s
parents:
  - {name: ex0, addresses: [10.72.0.1/24]}
networks:
  - {name: n, parent: ex0, subnets: [%[4]s]}
endpoints:
  - {name: c, netns: %[1]s%[2]s-c, interfaces: [{network: n, addresses: [%[5]s]}]}
`, e.prefix, name, e.host, subnet, addr)))
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	t1, t2 := topo("t1", "10.72.0.0/24", "10.72.0.11/24"), topo("t2", "10.72.0.0/24", "10.72.0.12/24")
	opts := &Options{StateDir: e.stateDir}
	for _, tp := range []*Topology{t1, t2} {
		if _, err := Up(ctx, tp, opts); err != nil {
			t.Fatal(err)
		}
	}
	hasIt := func() bool {
		c, err := rtnl.DialNetNS(e.host, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		m, err := link.New(c).Get(ctx, "ex0")
		if err != nil {
			t.Fatal(err)
		}
		has, err := hasAddr(ctx, c, m.Index, netip.MustParsePrefix("10.72.0.1/24"))
		if err != nil {
			t.Fatal(err)
		}
		return has
	}
	// A third topology on the same wire handing out t1's address is
	// refused before it changes anything.
	_, err := Up(ctx, topo("t3", "10.72.0.0/24", "10.72.0.11/24"), opts)
	if err == nil || !strings.Contains(err.Error(), "duplicate address on the wire: 10.72.0.11 of endpoint c on ex0 is topology "+e.prefix+"t1's endpoint c already") {
		t.Fatalf("up of a topology reusing t1's address = %v, want a duplicate-address refusal", err)
	}
	if netns.Exists(e.prefix + "t3-c") {
		t.Fatal("the refused up created its namespace")
	}
	if _, err := Down(ctx, t1, opts); err != nil {
		t.Fatal(err)
	}
	if !hasIt() {
		t.Fatal("down of t1 removed 10.72.0.1/24 from ex0 although t2 declares it")
	}
	if _, err := Down(ctx, t2, opts); err != nil {
		t.Fatal(err)
	}
	if hasIt() {
		t.Fatal("down of the last topology declaring 10.72.0.1/24 left it on ex0")
	}
}

// TestDownRestoresForwarding: `forwarding: true` on an endpoint whose
// namespace existed before Up is undone by Down.
func TestDownRestoresForwarding(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	router := e.prefix + "router"
	h, err := netns.Create(router)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	tp, err := Parse(strings.NewReader(fmt.Sprintf(`
name: %[1]sfw
host: %[2]s
parents:
  - name: pa
    sandbox: {switch: %[1]ssw}
networks:
  - {name: n, parent: pa, subnets: [10.73.0.0/24]}
endpoints:
  - {name: r, netns: %[3]s, forwarding: true, interfaces: [{network: n}]}
`, e.prefix, e.host, router)))
	if err != nil {
		t.Fatal(err)
	}
	opts := &Options{StateDir: e.stateDir}
	if _, err := Up(ctx, tp, opts); err != nil {
		t.Fatal(err)
	}
	if v, err := NamedNS(router).readSysctl("net/ipv4/ip_forward"); err != nil || v != "1" {
		t.Fatalf("ip_forward after up = %q, %v", v, err)
	}
	if _, err := Down(ctx, tp, opts); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		if v, err := NamedNS(router).readSysctl(p); err != nil || v != "0" {
			t.Errorf("%s after down = %q, %v: want 0 (as before up)", p, v, err)
		}
	}
	if !netns.Exists(router) {
		t.Fatal("down removed a namespace it did not create")
	}
}
