package link

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv"
)

// requirePrivileged skips a test that needs root and iproute2 (the tests'
// reference), with what to run instead; under CI=true, when
// VMLINK_EXPECT_FEATURES lists them, it fails instead.
func requirePrivileged(tb testing.TB) {
	tb.Helper()
	testenv.Require(tb, testenv.FeaturePrivileged, testenv.FeatureIPRoute2)
}

// testNS is a throwaway named namespace (testenv.NewNetNS), removed with
// everything in it in t.Cleanup; tests drive it with `ip -n NAME`.
type testNS struct {
	name string
}

func newNS(tb testing.TB) *testNS {
	tb.Helper()
	requirePrivileged(tb)
	return &testNS{name: testenv.NewNetNS(tb).Name()}
}

// ip runs `ip -n NS ARGS…` and fails the test on error.
func (n *testNS) ip(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := n.ipErr(args...)
	if err != nil {
		tb.Fatalf("ip -n %s %s: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
	return out
}

func (n *testNS) ipErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"-n", n.name}, args...)...).CombinedOutput()
	return string(out), err
}

// handle opens a Handle in the namespace, closed in t.Cleanup.
func (n *testNS) handle(tb testing.TB) *Handle {
	tb.Helper()
	h, err := Open(n.name)
	if err != nil {
		tb.Fatalf("Open(%q): %v", n.name, err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// veth adds the veth pair a/b (down) as a parent for the tests.
func (n *testNS) veth(tb testing.TB, a, b string) {
	tb.Helper()
	n.ip(tb, "link", "add", a, "type", "veth", "peer", "name", b)
}

// links returns the names of the namespace's links.
func (n *testNS) links(tb testing.TB) []string {
	tb.Helper()
	var names []string
	for _, line := range strings.Split(n.ip(tb, "-br", "link"), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			name, _, _ := strings.Cut(f[0], "@")
			names = append(names, name)
		}
	}
	return names
}

// requireKind skips (or, under CI when VMLINK_EXPECT_FEATURES lists the
// kind, fails) when the kernel cannot create links of kind: this machine's
// kernel has no 8021q and no ipvlan; the VM tier runs these tests. The
// decision is testenv.Require's, from its own probe of the kind.
func requireKind(tb testing.TB, kind string) {
	tb.Helper()
	f, err := testenv.ParseFeature(kind)
	if err != nil {
		tb.Fatalf("requireKind: %v", err)
	}
	testenv.Require(tb, f)
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}
