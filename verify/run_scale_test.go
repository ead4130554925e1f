//go:build !vm

// The host tier only: the host kernel has all this test needs, and 40
// namespaces under an emulated CPU would cost the VM tier minutes.

package verify

import (
	"context"
	"strings"
	"testing"
	"time"
)

// scaleEndpoints is how many bridge-mode macvlans TestManyEndpoints puts
// on one parent: with the host and the outside station, 42×41 = 1,722
// ordered pairs, beyond the kernel's default neighbour-table cap (1024
// fresh entries for the whole machine) that a probe per pair through the
// kernel's own stack overflowed (a third of the pairs came out blocked).
const scaleEndpoints = 40

// TestManyEndpoints verifies 40 bridge-mode macvlans on one parent, each
// in its own namespace, and asserts that every pair's verdict is the
// model's (no false "blocked"), every check passes, and the probes left no
// neighbour entries behind in the children's namespaces.
func TestManyEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 40 namespaces with macvlans: needs root; run without -short")
	}
	l := newKernelLab(t)
	eps := make([]Endpoint, 0, scaleEndpoints)
	for i := 1; i <= scaleEndpoints; i++ {
		eps = append(eps, l.addChild(t, i, "bridge"))
	}
	// A bound on a broken engine, not a time assertion: the probing
	// engine before this test took 20-60 s with false verdicts here.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, l.topology(eps...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (scaleEndpoints + 2) * (scaleEndpoints + 1); len(rep.Pairs) != want {
		t.Fatalf("%d pairs probed, want %d", len(rep.Pairs), want)
	}
	var bad []string
	for _, p := range rep.Pairs {
		if p.Observed != p.Expected {
			bad = append(bad, p.From+"→"+p.To+" "+p.Observed.String()+" ("+p.Probe+")")
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d pairs disagree with the model (wait %v), e.g.: %s", len(bad), len(rep.Pairs), rep.Wait, strings.Join(bad[:min(5, len(bad))], "; "))
	}
	for _, c := range rep.Checks {
		if !c.OK {
			t.Errorf("check %s failed: %.300s", c.Name, c.Detail)
		}
	}
	for _, ep := range eps {
		ns := ep.NetNS
		out, err := l.p.Host.Exec(ctx, "ip", "-n", ns, "neigh", "show", "dev", ep.Interface)
		if err != nil {
			t.Fatalf("ip -n %s neigh: %v", ns, err)
		}
		if strings.Contains(out, "10.77.0.") {
			t.Errorf("%s: the probes left neighbour entries behind:\n%s", ns, out)
			break
		}
	}
}
