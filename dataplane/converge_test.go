package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

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
