package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"ns1", true}, {"a-b_c.d", true}, {"", false}, {".", false}, {"..", false},
		{"a/b", false}, {strings.Repeat("x", 256), false},
	} {
		if err := ValidateName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestOpenNameOrPathMissing: a name or a path that names no namespace
// says so and how to look, and stays os.ErrNotExist for errors.Is; ""
// runs DoIn's fn right here.
func TestOpenNameOrPathMissing(t *testing.T) {
	for _, ns := range []string{fmt.Sprintf("vmlt-none-%d", os.Getpid()), fmt.Sprintf("/proc/%d/no/net", os.Getpid())} {
		_, err := OpenNameOrPath(ns)
		if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "does not exist: create it or check `ip netns list`") {
			t.Errorf("OpenNameOrPath(%q) = %v, want a not-exist error naming the fix", ns, err)
		}
		if err := DoIn(ns, func() error { t.Errorf("DoIn(%q) ran fn", ns); return nil }); err == nil {
			t.Errorf("DoIn(%q): no error", ns)
		}
	}
	ran := false
	if err := DoIn("", func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("DoIn(\"\") = %v, ran %v; want fn run here", err, ran)
	}
}

// privileged skips unless the test may create namespaces. testenv.Require
// cannot be used here: testenv imports this package.
func privileged(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: privileged netns tests run in `make test-priv`")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI: privileged netns tests need root")
		}
		t.Skip("needs root to create network namespaces: run `make test-priv` as root")
	}
}

var seq int

func uniqueName(t *testing.T) string {
	seq++
	return fmt.Sprintf("vmlt-netns-%d-%d", os.Getpid(), seq)
}

func threadInode(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestCreateVisibleToIproute2(t *testing.T) {
	privileged(t)
	name := uniqueName(t)
	ns, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close(); Delete(name) })

	if _, err := Create(name); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second Create: got %v, want EEXIST", err)
	}
	if !Exists(name) {
		t.Fatal("Exists = false after Create")
	}
	if _, err := exec.LookPath("ip"); err == nil {
		out, err := exec.Command("ip", "netns", "exec", name, "ip", "-o", "link", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip netns exec: %v: %s", err, out)
		}
		if strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), "lo:") {
			t.Fatalf("new namespace should hold only lo, ip says:\n%s", out)
		}
	}
	names, err := List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || n == name
	}
	if !found {
		t.Fatalf("List() = %v, missing %s", names, name)
	}
	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	if Exists(name) {
		t.Fatal("Exists = true after Delete")
	}
}

func TestSeesIproute2Namespaces(t *testing.T) {
	privileged(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2's ip is not installed: `apt-get install iproute2`")
	}
	name := uniqueName(t)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ns, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if ns.Name() != name {
		t.Fatalf("Name() = %q", ns.Name())
	}
}

// TestDoRestoresThread checks thread hygiene: every goroutine that ran Do
// is back in the original namespace, and fn really ran inside the target.
func TestDoRestoresThread(t *testing.T) {
	privileged(t)
	name := uniqueName(t)
	ns, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close(); Delete(name) })
	target, err := ns.Inode()
	if err != nil {
		t.Fatal(err)
	}

	runtime.LockOSThread()
	orig := threadInode(t)
	runtime.UnlockOSThread()

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inside uint64
			err := ns.Do(func() error {
				var st unix.Stat_t
				if err := unix.Stat(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()), &st); err != nil {
					return err
				}
				inside = st.Ino
				return nil
			})
			if err != nil {
				errs <- err
				return
			}
			if inside != target {
				errs <- fmt.Errorf("fn ran in netns %d, want %d", inside, target)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var st unix.Stat_t
			unix.Stat(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()), &st)
			if st.Ino != orig {
				errs <- fmt.Errorf("goroutine after Do is in netns %d, want original %d", st.Ino, orig)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDoPassesError(t *testing.T) {
	privileged(t)
	name := uniqueName(t)
	ns, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close(); Delete(name) })
	want := errors.New("boom")
	if err := ns.Do(func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("Do returned %v, want %v", err, want)
	}
}

func TestDeleteWhileOpen(t *testing.T) {
	privileged(t)
	name := uniqueName(t)
	ns, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := Delete(name); err != nil {
		t.Fatalf("Delete while a handle is open: %v", err)
	}
	if _, err := os.Stat(Dir + "/" + name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file still there after Delete: %v", err)
	}
	// The handle still works: the namespace lives while referenced.
	if err := ns.Do(func() error { return nil }); err != nil {
		t.Fatalf("Do on deleted-but-open namespace: %v", err)
	}
	if err := Delete(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("second Delete: %v, want ErrNotExist", err)
	}
}

func TestReturnToChecksInode(t *testing.T) {
	privileged(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ino, _ := orig.Inode()
	if err := returnTo(orig, ino); err != nil {
		t.Fatalf("returning to where the thread is: %v", err)
	}
	if err := returnTo(orig, ino+1); err == nil {
		t.Fatal("a thread in the wrong namespace was reported back home")
	}
}

// A panic in fn reaches Do's caller, after the thread went home: the
// caller's goroutine, which recovers it, is still in its own namespace.
func TestDoCarriesPanic(t *testing.T) {
	privileged(t)
	home, err := CurrentInode()
	if err != nil {
		t.Fatal(err)
	}
	var inside uint64
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the panic of fn", v)
			}
		}()
		DoNew(func() error {
			inside, _ = CurrentInode()
			panic("boom")
		})
	}()
	if inside == 0 || inside == home {
		t.Errorf("fn ran in netns %d, want a new one (home %d)", inside, home)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if now, _ := CurrentInode(); now != home {
		t.Errorf("after the panic the caller's thread is in %d, want %d", now, home)
	}
}
