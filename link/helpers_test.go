package link

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TODO(lead): switch to testenv.NewNetNS / testenv.Require once testenv
// lands; these helpers do the same with `ip netns` (tests may run ip).

// requirePrivileged skips a test that needs root, with what to run instead;
// under CI=true it fails instead.
func requirePrivileged(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("privileged test: skipped with -short (unit tier); run `go test ./link` as root")
	}
	if os.Geteuid() != 0 {
		msg := "needs root to create network namespaces: run `sudo go test ./link`"
		if os.Getenv("CI") == "true" {
			tb.Fatal("CI=true but " + msg)
		}
		tb.Skip(msg)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Fatalf("iproute2's ip is the tests' reference and must be installed: %v", err)
	}
}

var nsSeq atomic.Int32

// testNS is a throwaway named namespace (`ip netns add`), removed with
// everything in it in t.Cleanup.
type testNS struct {
	name string
}

func newNS(tb testing.TB) *testNS {
	tb.Helper()
	requirePrivileged(tb)
	name := fmt.Sprintf("vmlt-%d-%d", os.Getpid(), nsSeq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return &testNS{name: name}
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
// kernel has no 8021q and no ipvlan; the VM tier runs these tests.
//
// TODO(lead): replace with testenv.Require(t, testenv.FeatureVLAN/FeatureIPVlan).
func requireKind(tb testing.TB, n *testNS, parent, kind string) {
	tb.Helper()
	args := []string{"link", "add", "vmlprobe", "link", parent, "type", kind}
	if kind == "vlan" {
		args = append(args, "id", "4093")
	}
	out, err := n.ipErr(args...)
	if err == nil {
		n.ip(tb, "link", "del", "vmlprobe")
		return
	}
	msg := fmt.Sprintf("kernel cannot create %s links (%s): runs in the VM tier (make test-vm)", kind, strings.TrimSpace(out))
	for _, f := range strings.Split(os.Getenv("VMLINK_EXPECT_FEATURES"), ",") {
		if f == kind {
			tb.Fatal("VMLINK_EXPECT_FEATURES lists " + kind + " but " + msg)
		}
	}
	tb.Skip(msg)
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}
