package dataplane

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/testenv"
)

// requirePrivileges lets a test go on only where it can create namespaces,
// veths, bridges and macvlans (testenv.Require: a skip with the reason, or a
// failure in CI where the environment should have them).
func requirePrivileges(t *testing.T) {
	t.Helper()
	testenv.Require(t, testenv.FeaturePrivileged, testenv.FeatureVeth, testenv.FeatureBridge, testenv.FeatureMacvlan)
}

// testEnv is a throwaway host namespace (the test's, not the topology's,
// so Down must remove links from it one by one and the test can count
// what is left) and a private state directory.
type testEnv struct {
	prefix, host, stateDir string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	requirePrivileges(t)
	e := &testEnv{prefix: fmt.Sprintf("vmlt-dp%d-%04x-", os.Getpid(), rand.IntN(0x10000)), stateDir: t.TempDir()}
	e.host = e.prefix + "host"
	h, err := netns.Create(e.host)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() {
		for _, n := range e.namespaces(t) {
			netns.Delete(n)
		}
	})
	return e
}

// namespaces lists the namespaces with the environment's prefix.
func (e *testEnv) namespaces(t *testing.T) []string {
	t.Helper()
	all, err := netns.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range all {
		if strings.HasPrefix(n, e.prefix) {
			out = append(out, n)
		}
	}
	return out
}

func (e *testEnv) links(t *testing.T) []string {
	t.Helper()
	c, err := rtnl.DialNetNS(e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ls, err := c.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Attrs.Name)
	}
	return names
}

// assertClean checks against the kernel that nothing but the test's host
// namespace with its loopback is left, and no state.
func (e *testEnv) assertClean(t *testing.T) {
	t.Helper()
	if ns := e.namespaces(t); len(ns) != 1 || ns[0] != e.host {
		t.Errorf("namespaces left: %v, want only %s", ns, e.host)
	}
	if l := e.links(t); len(l) != 1 || l[0] != "lo" {
		t.Errorf("links left in the host namespace: %v, want only lo", l)
	}
	files, _ := filepath.Glob(filepath.Join(e.stateDir, "topologies", "*"))
	if len(files) != 0 {
		t.Errorf("state left: %v", files)
	}
}

// topology is a small but complete topology: two sandboxed parents (one
// reflecting), three networks, a two-interface endpoint, IPv6, a shim.
func (e *testEnv) topology(t *testing.T) *Topology {
	t.Helper()
	topo, err := Parse(strings.NewReader(fmt.Sprintf(`
name: %[1]stopo
host: %[2]s
parents:
  - name: pa
    sandbox: {switch: %[1]ssw, hairpin: true, addresses: [10.7.1.254/24]}
    addresses: [10.7.1.1/24]
  - name: pb
    sandbox: {switch: %[1]ssw}
networks:
  - {name: na, parent: pa, mode: bridge, subnets: [10.7.1.0/24, "fd00:7:1::/64"], gateways: [10.7.1.253, "fd00:7:1::fd"]}
  - {name: nv, parent: pa, mode: vepa, subnets: [10.7.2.0/24]}
  - {name: nb, parent: pb, mode: private, subnets: [10.7.3.0/24]}
endpoints:
  - {name: c1, netns: %[1]sc1, interfaces: [{network: na}, {network: nb}]}
  - {name: c2, netns: %[1]sc2, interfaces: [{network: na}, {network: nv, mac: "02:00:00:07:02:02"}]}
  - {name: c3, netns: %[1]sc3, interfaces: [{network: nb}], routes: ["10.99.0.0/16 via 10.7.3.254"]}
host_shims:
  - {network: na, name: shim0, addresses: [10.7.1.250/32], routes: [10.7.1.0/28]}
`, e.prefix, e.host)))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestUpDownRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	topo := e.topology(t)
	opts := &Options{StateDir: e.stateDir}
	built, err := Up(ctx, topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	if built.Created == 0 || len(built.Interfaces) != 6 || len(built.Parents) != 2 {
		t.Fatalf("built %d objects, %d interfaces, %d parents", built.Created, len(built.Interfaces), len(built.Parents))
	}
	// What Up reports is what the kernel has.
	c, err := rtnl.DialNetNS(e.prefix+"c2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eth1, err := link.New(c).Get(ctx, "eth1")
	if err != nil || eth1.Address.String() != "02:00:00:07:02:02" {
		t.Fatalf("c2/eth1 = %+v, %v", eth1, err)
	}
	if got := eth1.Alias; got != "vmlink:"+topo.Name+":ep/c2/eth1" {
		t.Errorf("alias = %q", got)
	}
	routes, err := c.Routes(ctx, 2 /* AF_INET */)
	if err != nil {
		t.Fatal(err)
	}
	defaults := 0
	for _, r := range routes {
		if r.DstLen == 0 && r.Attrs.Gateway.String() == "10.7.1.253" {
			defaults++
		}
	}
	if defaults != 1 {
		t.Errorf("c2 has %d default routes via 10.7.1.253, want 1", defaults)
	}
	vts := built.VerifyTopologies()
	if len(vts) != 2 || vts[0].Parent.Name != "pa" || vts[0].Switch.Reflects == nil || !*vts[0].Switch.Reflects {
		t.Fatalf("VerifyTopologies = %+v", vts)
	}

	again, err := Up(ctx, topo, opts)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if again.Created != 0 {
		t.Fatalf("second Up created %d objects, want 0 (idempotent)", again.Created)
	}
	if _, err := Down(ctx, topo, opts); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
	// Down of a removed topology is no error and removes nothing.
	r, err := Down(ctx, topo, opts)
	if err != nil || len(r.Links)+len(r.Namespaces) != 0 {
		t.Fatalf("second Down = %+v, %v", r, err)
	}
}

func TestDownWithoutState(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	topo := e.topology(t)
	opts := &Options{StateDir: e.stateDir}
	if _, err := Up(ctx, topo, opts); err != nil {
		t.Fatal(err)
	}
	// A crash or a lost /run/vmlink: the marks on the kernel objects are
	// enough.
	if err := os.RemoveAll(filepath.Join(e.stateDir, "topologies")); err != nil {
		t.Fatal(err)
	}
	if _, err := Down(ctx, topo, opts); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t)
}

func TestUpRefusesForeignLink(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	topo := e.topology(t)
	// Somebody else's link with the parent's name: Up must not adopt or
	// delete it.
	c, err := rtnl.DialNetNS(e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.NewLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "pb", Info: &rtnl.LinkInfo{Kind: "bridge"}}}, 0x400|0x200); err != nil {
		t.Fatal(err)
	}
	_, err = Up(ctx, topo, &Options{StateDir: e.stateDir})
	var rb *RollbackError
	if !errors.As(err, &rb) || !strings.Contains(err.Error(), "not this topology's") {
		t.Fatalf("Up = %v, want a rollback naming the foreign link", err)
	}
	if l := e.links(t); strings.Join(l, ",") != "lo,pb" {
		t.Fatalf("links after rollback: %v, want lo and the foreign pb", l)
	}
	c.DelLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "pb"}})
	e.assertClean(t)
}

func TestUpRollsBackOnErrorInLastElement(t *testing.T) {
	e := newTestEnv(t)
	const runs = 50
	for run := range runs {
		topo := e.topology(t)
		// The last step installs a route via a gateway no subnet reaches:
		// the kernel refuses it (ENETUNREACH) after everything else exists.
		topo.Endpoints[2].Routes = []string{"10.99.0.0/16 via 192.0.2.1"}
		topo.HostShims = nil
		last := ""
		_, err := Up(context.Background(), topo, &Options{StateDir: e.stateDir, beforeStep: func(i, n int, what string) error {
			if i == n-1 {
				last = what
			}
			return nil
		}})
		var rb *RollbackError
		if !errors.As(err, &rb) {
			t.Fatalf("run %d: Up = %v, want a *RollbackError", run, err)
		}
		if rb.Removed == 0 || rb.CleanupErr != nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "192.0.2.1") {
			t.Fatalf("run %d: rollback: %v", run, err)
		}
		if !strings.Contains(last, "route") {
			t.Fatalf("run %d: the last step was %q, want the failing route", run, last)
		}
		e.assertClean(t)
		if t.Failed() {
			t.Fatalf("run %d left objects behind", run)
		}
	}
}

func TestUpRollsBackOnCancelAtRandomStep(t *testing.T) {
	e := newTestEnv(t)
	rng := rand.New(rand.NewPCG(5, 1))
	const runs = 50
	for run := range runs {
		topo := e.topology(t)
		ctx, cancel := context.WithCancel(context.Background())
		stopAt := -1
		opts := &Options{StateDir: e.stateDir, beforeStep: func(i, n int, what string) error {
			if stopAt < 0 {
				stopAt = rng.IntN(n)
			}
			if i == stopAt {
				cancel() // as SIGINT does in the CLI
			}
			return nil
		}}
		_, err := Up(ctx, topo, opts)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d (cancel before step %d): Up = %v, want context.Canceled", run, stopAt, err)
		}
		e.assertClean(t)
		if t.Failed() {
			t.Fatalf("run %d: cancelled before step %d left objects behind: %v", run, stopAt, err)
		}
	}
}

func TestExistingParentKeepsItsState(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	c, err := rtnl.DialNetNS(e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The user's own parent: a veth pair, up, called eth0 like the
	// endpoint's interface (in another namespace) will be.
	if err := c.NewLink(ctx, &rtnl.LinkMessage{Flags: 1, Change: 1, Attrs: rtnl.LinkAttrs{Name: "eth0", Info: &rtnl.LinkInfo{Kind: "veth",
		Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "up0peer"}}}}}}, 0x400|0x200); err != nil {
		t.Fatal(err)
	}
	topo, err := Parse(strings.NewReader(fmt.Sprintf(`
name: %[1]sexist
host: %[2]s
parents: [{name: eth0, addresses: [10.8.0.1/24]}]
networks: [{name: n, parent: eth0, subnets: [10.8.0.0/24]}]
endpoints: [{name: c, netns: %[1]sc, interfaces: [{network: n}]}]
`, e.prefix, e.host)))
	if err != nil {
		t.Fatal(err)
	}
	opts := &Options{StateDir: e.stateDir}
	if _, err := Up(ctx, topo, opts); err != nil {
		t.Fatal(err)
	}
	r, err := Down(ctx, topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Addrs) != 1 || len(r.Namespaces) != 1 {
		t.Fatalf("Down removed %+v, want the host address and the endpoint namespace", r)
	}
	if l := e.links(t); strings.Join(l, ",") != "lo,up0peer,eth0" && strings.Join(l, ",") != "lo,eth0,up0peer" {
		t.Fatalf("links after Down: %v: the user's parent must stay", l)
	}
	up0, err := link.New(c).Get(ctx, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if has, _ := hasAddr(ctx, c, up0.Index, mustPrefix("10.8.0.1/24")); has {
		t.Fatal("the address Up added to the user's parent is still there")
	}
}

func mustPrefix(s string) netip.Prefix {
	p, err := parsePrefix(s)
	if err != nil {
		panic(err)
	}
	return p
}
