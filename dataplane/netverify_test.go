package dataplane

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify"
)

// TestNetworkHostShimVerify is the README's recipe on a host that has an
// address in the subnet: --ip-range and --host-shim, two containers, then
// `verify --parent` (Discover and Run). The shim's route to the range is
// discovered, and every cell the kernel shows matches the model: no
// mismatch from replies the host sends through the shim.
func TestNetworkHostShimVerify(t *testing.T) {
	e, nets := newNetEnv(t)
	ctx := context.Background()
	hc, err := rtnl.DialNetNS(e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	p0, err := link.New(hc).Get(ctx, "p0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ensureAddr(ctx, hc, p0.Index, pfx("10.65.0.5/24")); err != nil {
		t.Fatal(err)
	}
	hc.Close()
	if _, err := nets.Create(ctx, NetworkSpec{Name: "sv", Subnets: []netip.Prefix{pfx("10.65.0.0/24")}, IPRanges: []netip.Prefix{pfx("10.65.0.128/25")},
		HostShim: true, Options: netOpts(t, "parent", "p0")}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c1", "c2"} {
		if _, err := nets.Connect(ctx, ConnectSpec{Network: "sv", Container: e.prefix + c}); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := verify.Discover(ctx, e.host, "p0")
	if err != nil {
		t.Fatal(err)
	}
	shimRoute := false
	for _, ep := range topo.Endpoints {
		for _, r := range ep.Routes {
			shimRoute = shimRoute || (r.Dst == pfx("10.65.0.128/25") && r.Metric == 50)
		}
	}
	if !shimRoute {
		t.Fatalf("discovery did not find the shim's route 10.65.0.128/25 metric 50: %+v", topo.Endpoints)
	}
	rep, err := verify.Run(ctx, topo, verify.Options{NoCapture: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Pairs {
		if !p.OK {
			t.Errorf("%s → %s: expected %v, observed %v (%s; probe: %s)", p.From, p.To, p.Expected, p.Observed, p.Why, p.Probe)
		}
	}
}

// TestNetworkTwoSubnetsVerify: two networks with different subnets on one
// parent. Their containers' frames meet (bridge-mode siblings), but neither
// has a route to the other's subnet, and verify expects exactly what the
// kernel does: no L3 reach between them.
func TestNetworkTwoSubnetsVerify(t *testing.T) {
	e, nets := newNetEnv(t)
	ctx := context.Background()
	for i, n := range []string{"sa", "sb"} {
		subnet := []string{"10.66.0.0/24", "10.67.0.0/24"}[i]
		if _, err := nets.Create(ctx, NetworkSpec{Name: n, Subnets: []netip.Prefix{pfx(subnet)}, Internal: true, Options: netOpts(t, "parent", "p0")}); err != nil {
			t.Fatal(err)
		}
		if _, err := nets.Connect(ctx, ConnectSpec{Network: n, Container: e.prefix + n}); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := verify.Discover(ctx, e.host, "p0")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Run(ctx, topo, verify.Options{NoCapture: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pairs) != 2 {
		t.Fatalf("pairs %+v, want the two containers both ways", rep.Pairs)
	}
	for _, p := range rep.Pairs {
		if !p.OK || p.Expected != verify.Blocked {
			t.Errorf("%s → %s: expected %v, observed %v (%s; probe: %s)", p.From, p.To, p.Expected, p.Observed, p.Why, p.Probe)
		}
	}
}

// TestNetworkHostShimWithoutRangeRefused: --host-shim without --ip-range
// on a host that has an address in the subnet would route nothing (the
// connected route wins over the shim's): refused, naming the address and
// the fix, with nothing created.
func TestNetworkHostShimWithoutRangeRefused(t *testing.T) {
	e, nets := newNetEnv(t)
	ctx := context.Background()
	hc, err := rtnl.DialNetNS(e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	p0, err := link.New(hc).Get(ctx, "p0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ensureAddr(ctx, hc, p0.Index, pfx("10.68.0.5/24")); err != nil {
		t.Fatal(err)
	}
	before := linkNames(t, e.host)
	_, err = nets.Create(ctx, NetworkSpec{Name: "nr", Subnets: []netip.Prefix{pfx("10.68.0.0/24")}, HostShim: true, Options: netOpts(t, "parent", "p0")})
	wantUsage(t, err, "--host-shim: the host has 10.68.0.5/24 on p0, whose route to 10.68.0.0/24 wins over the shim's: add --ip-range (e.g. 10.68.0.128/25)")
	if after := linkNames(t, e.host); !slices.Equal(after, before) {
		t.Fatalf("links after the refusal: %v, want %v", after, before)
	}
	if recs, _, err := nets.List(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("networks after the refusal: %v, %v", recs, err)
	}
	// Another subnet is fine.
	if _, err := nets.Create(ctx, NetworkSpec{Name: "ok", Subnets: []netip.Prefix{pfx("10.69.0.0/24")}, HostShim: true, Options: netOpts(t, "parent", "p0")}); err != nil {
		t.Fatal(err)
	}
}

// TestLabHostShimVerifies builds the host-shim lab's last phase and runs
// verify on what Up reports: the shim's route to the containers' range
// reaches the model, so the containers' pings to the shim (answered
// through that route) match it.
func TestLabHostShimVerifies(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	lab, err := LookupLab("host-shim")
	if err != nil {
		t.Fatal(err)
	}
	topo := lab.Phases[len(lab.Phases)-1].Topology.WithPrefix(e.prefix)
	opts := &Options{StateDir: e.stateDir}
	start := time.Now()
	built, err := Up(ctx, topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Down(context.Background(), topo, opts) })
	// As `vmlink lab` does: the probes wait by how fast this machine built.
	wait := ProbeWait(time.Since(start), built.Created)
	for _, vt := range built.VerifyTopologies() {
		rep, err := verify.Run(ctx, vt, verify.Options{NoCapture: true, Wait: wait})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rep.Pairs {
			if !p.OK {
				t.Errorf("%s → %s: expected %v, observed %v (%s; probe: %s)", p.From, p.To, p.Expected, p.Observed, p.Why, p.Probe)
			}
		}
	}
}
