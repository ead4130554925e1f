package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is where named namespaces live, as with `ip netns`.
var Dir = "/run/netns"

// NS is an open handle on a network namespace. The handle keeps the
// namespace alive while open, even after Delete removed its name.
type NS struct {
	fd   int
	name string
	path string
}

// FD returns the namespace file descriptor, for setns(2) or
// netlink.Config.NetNS.
func (n *NS) FD() int { return n.fd }

// Name returns the namespace's name under Dir, or "" when it is not named.
func (n *NS) Name() string { return n.name }

// Path returns the file the handle was opened from.
func (n *NS) Path() string { return n.path }

// Close releases the handle.
func (n *NS) Close() error {
	if n == nil || n.fd < 0 {
		return nil
	}
	err := unix.Close(n.fd)
	n.fd = -1
	return err
}

// ValidateName checks a namespace name the way iproute2 does: not empty,
// not "." or "..", no '/', and short enough to be a file name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("netns name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("netns name %q is not allowed", name)
	case strings.ContainsRune(name, '/'):
		return fmt.Errorf("netns name %q contains '/': use a plain name", name)
	case len(name) > 255:
		return fmt.Errorf("netns name is %d bytes long: at most 255", len(name))
	}
	return nil
}

// Open opens the named namespace /run/netns/NAME.
func Open(name string) (*NS, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	ns, err := OpenPath(filepath.Join(Dir, name))
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	ns.name = name
	return ns, nil
}

// OpenPath opens a namespace from any nsfs path (/proc/PID/ns/net, a bind
// mount, …).
func OpenPath(path string) (*NS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	if st.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a namespace file (is the netns mounted?)", path)
	}
	return &NS{fd: fd, path: path}, nil
}

// Current opens the calling thread's network namespace. Call it on a locked
// thread, or accept that the answer is some thread's namespace.
func Current() (*NS, error) {
	return OpenPath(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
}

// Exists reports whether a named namespace exists.
func Exists(name string) bool {
	if ValidateName(name) != nil {
		return false
	}
	ns, err := Open(name)
	if err != nil {
		return false
	}
	ns.Close()
	return true
}

// List returns the names under Dir that are mounted namespaces.
func List() ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list netns: %w", err)
	}
	var names []string
	for _, e := range ents {
		if Exists(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Create makes a new namespace bind-mounted at /run/netns/NAME, exactly as
// `ip netns add NAME` does, and returns a handle on it. The error wraps
// unix.EEXIST when the name is taken.
func Create(name string) (*NS, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := prepareDir(); err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	path := filepath.Join(Dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create netns %s: %w", name, unix.EEXIST)
		}
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	f.Close()

	// unshare and bind-mount on a dedicated thread: unshare changes the
	// thread's namespace, so the thread is restored before it is released.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := Current()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		mountErr := unix.Mount(self, path, "none", unix.MS_BIND, "")
		if err := unix.Setns(orig.FD(), unix.CLONE_NEWNET); err != nil {
			// The thread is stuck in the new namespace: keep it locked
			// so the runtime kills it when this goroutine ends.
			errc <- errors.Join(mountErr, fmt.Errorf("return to original netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			mountErr = fmt.Errorf("bind mount %s: %w", path, mountErr)
		}
		errc <- mountErr
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	return Open(name)
}

// prepareDir makes Dir a shared mount point the way iproute2 does, so that
// namespaces mounted later propagate into mount namespaces that cloned it.
func prepareDir() error {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s shared: %w", Dir, err)
	}
	// Not a mount point yet: bind it onto itself, then retry.
	if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s onto itself: %w", Dir, err)
	}
	if err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", Dir, err)
	}
	return nil
}

// Delete removes a named namespace like `ip netns del`: the bind mount is
// detached and the file removed. The namespace itself goes away when its
// last user (process, open handle, socket) is gone.
func Delete(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	path := filepath.Join(Dir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete netns %s: %w", name, os.ErrNotExist)
		}
		return fmt.Errorf("delete netns %s: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// Do runs fn on a locked OS thread inside n and returns the thread to its
// original namespace. Sockets fn opens stay bound to n after Do returns.
// If the thread cannot be returned, it stays locked and is destroyed when
// Do's goroutine ends, so no other goroutine ever runs in n by accident.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := Current()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: open current: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: enter %s: %w", n.describe(), err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(orig.FD(), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("netns: return from %s: %w", n.describe(), err))
			return // thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

func (n *NS) describe() string {
	if n.name != "" {
		return n.name
	}
	return n.path
}

// Inode returns the namespace's inode number, which identifies it.
func (n *NS) Inode() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(n.fd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
