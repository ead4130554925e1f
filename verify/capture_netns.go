package verify

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsPath maps a namespace as users name it (as `ip -n NAME`) to its file;
// anything with a slash is already a path (/proc/PID/ns/net).
func netnsPath(ns string) string {
	if ns == "" || strings.ContainsRune(ns, '/') {
		return ns
	}
	return "/run/netns/" + ns
}

// inNetNS runs fn on a locked OS thread inside the network namespace ns
// ("" runs fn right here). Sockets fn opens stay bound to that namespace.
//
// The thread goes back to its own namespace afterwards; if that fails the
// goroutine ends with the thread still locked, so the Go runtime destroys
// the thread instead of handing it, stuck in a foreign namespace, to other
// goroutines.
//
// TODO(capture): switch to internal/netns (NS.Do) once the testenv engineer
// lands it; this is the same dance in the meantime.
func inNetNS(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	path := netnsPath(ns)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("network namespace %q does not exist (no %s): create it or check `ip netns list`: %w", ns, path, err)
		}
		return fmt.Errorf("open network namespace %q: %w", ns, err)
	}
	defer unix.Close(target)

	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open the current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread() // setns failed: the thread never left
			done <- fmt.Errorf("enter network namespace %q: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			done <- fmt.Errorf("return from network namespace %q: %w", ns, err)
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}
