package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

// threadNetNS is the inode of the calling thread's network namespace (0 if
// it cannot be read, which no namespace has).
func threadNetNS() uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0
	}
	return st.Ino
}

// processThreadsNetNS maps every thread of the process to its namespace.
func processThreadsNetNS(t testing.TB) map[string]uint64 {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, task := range tasks {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join("/proc/self/task", task.Name(), "ns/net"), &st); err != nil {
			continue // the thread exited meanwhile
		}
		out[task.Name()] = st.Ino
	}
	return out
}

func linkNames(t testing.TB, n *NetNS) []string {
	t.Helper()
	var names []string
	err := n.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestNewNetNSUnique creates namespaces from parallel tests and checks
// each is new: a name of our format that nobody had, an inode no other
// live namespace has, only lo inside. Run it as `go test -count=20 -p 2 ./testenv/...` to have two
// processes (this package and testenv) do it at the same time.
func TestNewNetNSUnique(t *testing.T) {
	const perTest = 4
	var (
		mu     sync.Mutex
		names  = map[string]bool{}
		inodes = map[uint64]string{}
	)
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			for range perTest {
				n := NewNetNS(t)
				m := nameRE.FindStringSubmatch(n.Name())
				if m == nil || m[1] != fmt.Sprint(os.Getpid()) {
					t.Errorf("name %q: want %s<pid %d>-<counter>-<random>", n.Name(), Prefix, os.Getpid())
				}
				if n.Path() != filepath.Join(netns.Dir, n.Name()) {
					t.Errorf("path %q", n.Path())
				}
				ino, err := n.Inode()
				if err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				if names[n.Name()] {
					t.Errorf("name %s handed out twice", n.Name())
				}
				if other, dup := inodes[ino]; dup {
					t.Errorf("%s is the same namespace as %s", n.Name(), other)
				}
				names[n.Name()], inodes[ino] = true, n.Name()
				mu.Unlock()
				// The kernel reuses a freed namespace's inode number:
				// only namespaces alive at the same time must differ.
				t.Cleanup(func() {
					mu.Lock()
					delete(inodes, ino)
					mu.Unlock()
				})
				// A namespace somebody else used would have more than lo.
				if got := linkNames(t, n); len(got) != 1 || got[0] != "lo" {
					t.Errorf("%s is not fresh: links %v", n.Name(), got)
				}
				if !netns.Exists(n.Name()) {
					t.Errorf("%s is not visible under %s", n.Name(), netns.Dir)
				}
			}
		})
	}
	t.Cleanup(func() {
		for name := range names {
			if netns.Exists(name) {
				t.Errorf("%s still exists after its test", name)
			}
		}
	})
}

// TestDoThreadHygiene runs Do many times from many goroutines, with fn
// succeeding, failing and panicking, and checks fn ran in the namespace
// and that afterwards no thread of the process is left in it.
func TestDoThreadHygiene(t *testing.T) {
	n := NewNetNS(t)
	target, err := n.Inode()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	home := st.Ino
	if home == target {
		t.Fatal("the new namespace is the process's own")
	}

	const workers, iterations = 8, 250
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			// This goroutine calls Do; its own thread must never move.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			before := threadNetNS()
			for i := range iterations {
				boom := errors.New("fn failed")
				var inside uint64
				call := func() (panicked any, err error) {
					defer func() { panicked = recover() }()
					return nil, n.Do(func() error {
						var st unix.Stat_t
						if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
							return err
						}
						inside = st.Ino
						switch i % 10 {
						case 3:
							return boom
						case 7:
							panic("fn panicked")
						}
						return nil
					})
				}
				panicked, err := call()
				switch {
				case inside != target:
					errc <- fmt.Errorf("worker %d: fn ran in netns %d, want %d", w, inside, target)
					return
				case i%10 == 3 && !errors.Is(err, boom):
					errc <- fmt.Errorf("worker %d: fn's error came back as %v", w, err)
					return
				case i%10 == 7 && panicked != "fn panicked":
					errc <- fmt.Errorf("worker %d: fn's panic came back as %v (err %v)", w, panicked, err)
					return
				case i%10 != 3 && i%10 != 7 && (err != nil || panicked != nil):
					errc <- fmt.Errorf("worker %d: Do: %v, panic %v", w, err, panicked)
					return
				}
			}
			if after := threadNetNS(); after != before || before == 0 {
				errc <- fmt.Errorf("worker %d: calling thread moved from %d to %d", w, before, after)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for tid, ino := range processThreadsNetNS(t) {
		if ino != home {
			t.Errorf("thread %s is in netns %d after Do, want the process's %d", tid, ino, home)
		}
	}
}

func TestStartRunsInNamespace(t *testing.T) {
	n := NewNetNS(t)
	want, _ := n.Inode()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The test binary itself is the child: the VM guest has no sleep(1).
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), childEnv+"=sleep")
	if err := n.Start(cmd); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != want {
		t.Errorf("child in netns %d, want %d", st.Ino, want)
	}
	if _, err := n.Exec(ctx, os.Args[0], "-test.run=^$", "-test.bogusflag"); err == nil {
		t.Error("Exec of a failing command succeeded")
	}
}

func TestSysctlPerNamespace(t *testing.T) {
	n := NewNetNS(t)
	const key = "net/ipv4/ip_forward"
	host, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1", "0", "1"} {
		if err := n.WriteSysctl(key, v); err != nil {
			t.Fatal(err)
		}
		if got, err := n.ReadSysctl("net.ipv4.ip_forward"); err != nil || got != v {
			t.Fatalf("read back %q, %v; want %q", got, err, v)
		}
	}
	if after, _ := os.ReadFile("/proc/sys/" + key); string(after) != string(host) {
		t.Errorf("the process's own %s changed from %q to %q", key, host, after)
	}
}

// Child process modes for the cleanup tests (see TestHelperProcess).
const childEnv = "VMLINK_SANDBOX_CHILD"

// TestHelperProcess is not a test: it is the body of the child processes
// the cleanup tests start (the test binary itself, with childEnv set). It
// creates namespaces, prints their names, then ends the way the mode says.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper for TestCleanupOnFailure, TestSweepStale, TestStartRunsInNamespace: runs only in their child processes")
	}
	if mode == "sleep" {
		time.Sleep(time.Minute) // killed long before
		return
	}
	for range 2 {
		fmt.Printf("NETNS %s\n", NewNetNS(t).Name())
	}
	switch mode {
	case "fail":
		t.Fatal("deliberate failure")
	case "panic":
		panic("deliberate panic")
	case "hang":
		time.Sleep(2 * time.Minute) // killed long before
	}
}

// startChild starts the child; its stderr (a deliberate panic's trace)
// goes to stderr, shown only when the test fails, so a passing run's log
// carries no panic that log scanners would take for a real one.
func startChild(t *testing.T, mode string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("child stderr:\n%s", stderr.String())
		}
	})
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(out)
}

func readNames(t *testing.T, sc *bufio.Scanner, want int) ([]string, string) {
	t.Helper()
	var names []string
	var all strings.Builder
	for len(names) < want && sc.Scan() {
		all.WriteString(sc.Text() + "\n")
		if name, ok := strings.CutPrefix(sc.Text(), "NETNS "); ok {
			names = append(names, name)
		}
	}
	return names, all.String()
}

// TestCleanupOnFailure runs a test that fails (and one that panics) after
// creating namespaces, in a child process, and checks they are gone.
func TestCleanupOnFailure(t *testing.T) {
	Require(t, FeaturePrivileged)
	for _, mode := range []string{"fail", "panic"} {
		t.Run(mode, func(t *testing.T) {
			cmd, sc := startChild(t, mode)
			names, out := readNames(t, sc, 2)
			for sc.Scan() {
				out += sc.Text() + "\n"
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("child test did not fail: %v\n%s", err, out)
			}
			if len(names) != 2 {
				t.Fatalf("child made %d namespaces, want 2:\n%s", len(names), out)
			}
			for _, name := range names {
				if _, err := os.Lstat(filepath.Join(netns.Dir, name)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s survived the failed test (%v)", name, err)
					_ = netns.Delete(name)
				}
			}
		})
	}
}

// TestSweepStale kills a test process that made namespaces, as a timeout
// would, and checks the next process's sweep removes what it left.
func TestSweepStale(t *testing.T) {
	Require(t, FeaturePrivileged)
	cmd, sc := startChild(t, "hang")
	names, out := readNames(t, sc, 2)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(names) != 2 {
		t.Fatalf("child made %d namespaces, want 2:\n%s", len(names), out)
	}
	for _, name := range names {
		if !netns.Exists(name) {
			// Another test process's sweep can get there first.
			t.Logf("%s already swept", name)
		}
	}
	// A namespace of a live process in the same format is left alone.
	live := NewNetNS(t)
	sweepStale()
	for _, name := range names {
		if netns.Exists(name) {
			t.Errorf("%s of a killed process survived the sweep", name)
			_ = netns.Delete(name)
		}
	}
	if !netns.Exists(live.Name()) {
		t.Errorf("the sweep removed %s of a live process", live.Name())
	}
}
