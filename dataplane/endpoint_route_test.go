package dataplane

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// TestBuildEndpointLinkRouteAttrs: a route's metric, table and scope (what
// a CNI result's route carries) reach the kernel as given.
func TestBuildEndpointLinkRouteAttrs(t *testing.T) {
	e, ctr, _ := newEndpointEnv(t, "p0")
	ctx := context.Background()
	universe := uint8(unix.RT_SCOPE_UNIVERSE)
	ep, err := BuildEndpointLink(ctx, EndpointLinkSpec{
		Link:  &link.Macvlan{Common: link.Common{Name: "eth0", Parent: "p0"}, Mode: link.MacvlanModeBridge},
		Host:  NamedNS(e.host),
		NetNS: Namespace{Path: filepath.Join(netns.Dir, ctr)}, Mark: Mark{Topology: "ept"}, Object: "ep/r/eth0",
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.63.0.5/24")},
		Routes: []Route{
			{Dst: netip.MustParsePrefix("10.64.0.0/16"), Gateway: netip.MustParseAddr("10.63.0.1"), Metric: 300},
			{Dst: netip.MustParsePrefix("10.65.0.0/16"), Gateway: netip.MustParseAddr("10.63.0.1"), Table: 100, Metric: 7},
			{Dst: netip.MustParsePrefix("10.66.0.0/16"), Scope: &universe},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ec, err := rtnl.DialNetNS(ctr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	rs, err := ec.Routes(ctx, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		table, metric uint32
		scope         uint8
	}
	have := map[netip.Prefix]got{}
	for _, r := range rs {
		if r.Attrs.OIF == nil || int32(*r.Attrs.OIF) != ep.Index {
			continue
		}
		g := got{table: uint32(r.Table), scope: r.Scope}
		if r.Attrs.Table != nil {
			g.table = *r.Attrs.Table
		}
		if r.Attrs.Priority != nil {
			g.metric = *r.Attrs.Priority
		}
		have[r.DstPrefix()] = g
	}
	for dst, want := range map[string]got{
		"10.64.0.0/16": {table: unix.RT_TABLE_MAIN, metric: 300, scope: unix.RT_SCOPE_UNIVERSE},
		"10.65.0.0/16": {table: 100, metric: 7, scope: unix.RT_SCOPE_UNIVERSE},
		"10.66.0.0/16": {table: unix.RT_TABLE_MAIN, scope: unix.RT_SCOPE_UNIVERSE}, // link without the Scope
	} {
		if g, ok := have[netip.MustParsePrefix(dst)]; !ok || g != want {
			t.Errorf("route %s: have %+v (found %v), want %+v", dst, g, ok, want)
		}
	}
	if err := ep.Remove(ctx); err != nil {
		t.Fatal(err)
	}
}
