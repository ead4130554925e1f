package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

// Prefix starts the name of every namespace the tests create, so that a
// leftover is recognisable (and `ip netns list | grep vmlt-` finds them).
const Prefix = "vmlt-"

// NetNS is a throwaway named network namespace (visible to `ip netns`,
// `ip -n NAME`, /run/netns/NAME) that a test created and that is removed,
// with every link in it, when the test ends.
type NetNS struct {
	name string
	ns   *netns.NS
}

// Name is the namespace's name under /run/netns, as `ip -n` takes it.
func (n *NetNS) Name() string { return n.name }

// Path is the namespace's file, /run/netns/NAME.
func (n *NetNS) Path() string { return n.ns.Path() }

// FD is an open descriptor of the namespace, valid until the test's
// cleanup: for rtnl.DialOptions.NetNS, setns(2) or IFLA_NET_NS_FD.
func (n *NetNS) FD() int { return n.ns.FD() }

// Inode identifies the namespace (as /proc/PID/ns/net's inode does).
func (n *NetNS) Inode() (uint64, error) { return n.ns.Inode() }

var (
	nsCounter atomic.Uint64
	sweepOnce sync.Once
)

// nameRE matches the names NewNetNS makes: prefix, creating process id,
// per-process counter, random suffix.
var nameRE = regexp.MustCompile(`^` + regexp.QuoteMeta(Prefix) + `([0-9]+)-[0-9]+-[0-9a-f]{8}$`)

// newName returns a namespace name no other process or test can come up
// with: the pid separates live processes, the counter the tests of one
// process, and the random part processes that reuse a pid after a crash
// left namespaces behind.
func newName() string {
	return fmt.Sprintf("%s%d-%d-%s", Prefix, os.Getpid(), nsCounter.Add(1), randomHex(4))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// NewNetNS creates a fresh named network namespace (only lo, down) and
// removes it in tb.Cleanup, whether the test passes, fails or panics. It
// requires FeaturePrivileged (see Require).
//
// Removing the name detaches the namespace; the kernel destroys it, and
// its links, once the last socket or process in it is gone: close sockets
// dialled into it in a Cleanup registered after NewNetNS (cleanups run in
// reverse order) and end the processes you started in it.
func NewNetNS(tb testing.TB) *NetNS {
	tb.Helper()
	Require(tb, FeaturePrivileged)
	n, err := createNetNS()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.remove(); err != nil {
			tb.Errorf("testenv: %v", err)
		}
	})
	return n
}

// createNetNS makes the namespace. A name that exists already is an error,
// never a namespace we would share with someone else: netns.Create opens
// the mount point with O_EXCL.
func createNetNS() (*NetNS, error) {
	sweepOnce.Do(sweepStale)
	name := newName()
	ns, err := netns.Create(name)
	if err != nil {
		return nil, fmt.Errorf("new netns: %w", err)
	}
	return &NetNS{name: name, ns: ns}, nil
}

func (n *NetNS) remove() error {
	errClose := n.ns.Close()
	err := netns.Delete(n.name)
	if err != nil {
		err = fmt.Errorf("remove netns %s: %w", n.name, err)
	}
	return errors.Join(err, errClose)
}

// sweepStale removes namespaces an earlier test process left behind when it
// was killed before its cleanups ran (a timeout, SIGKILL): names in our
// exact format whose creating process no longer exists. Namespaces of live
// processes, and names in any other format, are never touched.
func sweepStale() {
	names, err := netns.List()
	if err != nil {
		return
	}
	for _, name := range names {
		m := nameRE.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			_ = netns.Delete(name)
		}
	}
}

// Do runs fn on a locked OS thread that has entered the namespace, and puts
// the thread back in the namespace it came from before unlocking it. Sockets
// fn opens stay in the namespace after Do returns; goroutines fn starts do
// not run in it. The return is checked by inode; a thread that cannot be
// returned is destroyed, never reused; a panic in fn is carried over to
// Do's caller after the thread is back (internal/netns.NS.Do).
func (n *NetNS) Do(fn func() error) error {
	return n.ns.Do(fn)
}

// Start starts cmd inside the namespace: the child is forked from a thread
// that entered it, and stays there for its whole life. Wait for it (or
// kill it) before the test ends, or it keeps the namespace alive.
func (n *NetNS) Start(cmd *exec.Cmd) error {
	return n.Do(cmd.Start)
}

// Exec runs name with args inside the namespace and returns its combined
// output; ctx bounds it (a default of two minutes applies when ctx has no
// deadline).
func (n *NetNS) Exec(ctx context.Context, name string, args ...string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	var out strings.Builder
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := n.Start(cmd); err != nil {
		return "", fmt.Errorf("netns %s: %s: %w", n.name, name, err)
	}
	if err := cmd.Wait(); err != nil {
		return out.String(), fmt.Errorf("netns %s: %s %s: %w: %s", n.name, name, strings.Join(args, " "), err,
			strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Run is Exec for tests: it fails tb when the command fails.
func (n *NetNS) Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := n.Exec(context.Background(), name, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// WriteSysctl writes value to /proc/sys/KEY (KEY with slashes, e.g.
// "net/ipv4/ip_forward", or dots when no name in it has one) from inside
// the namespace: net.* sysctls are
// per namespace, and the file must be opened by a thread inside it. There is
// no sysctl binary in the VM guest, and none is needed.
func (n *NetNS) WriteSysctl(key, value string) error {
	path := sysctlPath(key)
	return n.Do(func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("netns %s: sysctl %s=%s: %w", n.name, key, value, err)
		}
		return nil
	})
}

// ReadSysctl reads /proc/sys/KEY from inside the namespace.
func (n *NetNS) ReadSysctl(key string) (string, error) {
	path := sysctlPath(key)
	var v string
	err := n.Do(func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("netns %s: read sysctl %s: %w", n.name, key, err)
		}
		v = strings.TrimSpace(string(b))
		return nil
	})
	return v, err
}

func sysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return "/proc/sys/" + key
}
