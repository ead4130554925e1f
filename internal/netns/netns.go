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

// OpenNameOrPath opens a namespace as users name it: a name as `ip -n
// NAME` takes (under Dir), or a path such as /proc/PID/ns/net. One that
// does not exist is reported with where to look.
func OpenNameOrPath(ns string) (*NS, error) {
	var (
		h   *NS
		err error
	)
	if strings.ContainsRune(ns, '/') {
		h, err = OpenPath(ns)
	} else {
		h, err = Open(ns)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network namespace %q does not exist: create it or check `ip netns list`: %w", ns, err)
	}
	return h, err
}

// DoIn runs fn on a locked OS thread inside the namespace ns, named as
// OpenNameOrPath takes it ("" runs fn right here). Sockets fn opens stay
// bound to that namespace; Do returns the thread to its namespace
// afterwards, or lets it die if that fails.
func DoIn(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	h, err := OpenNameOrPath(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Do(fn)
}

// Current opens the calling thread's network namespace. Call it on a locked
// thread, or accept that the answer is some thread's namespace (all of a
// process's unlocked threads share one).
func Current() (*NS, error) {
	return OpenPath("/proc/thread-self/ns/net")
}

// CurrentInode is the inode of the calling thread's network namespace.
func CurrentInode() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("stat the current netns: %w", err)
	}
	return st.Ino, nil
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

	err = DoNew(func() error {
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
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
// original namespace. Sockets fn opens stay bound to n after Do returns;
// goroutines fn starts do not run in n. See run for the guarantees.
func (n *NS) Do(fn func() error) error {
	return run("enter "+n.describe(), func() error { return unix.Setns(n.fd, unix.CLONE_NEWNET) }, fn)
}

// DoNew runs fn on a locked OS thread inside a new, unnamed network
// namespace, then returns the thread to its original one. The new
// namespace lives on only while something holds it: a socket fn opened, a
// bind mount of /proc/thread-self/ns/net, a process fn started.
func DoNew(fn func() error) error {
	return run("unshare a new netns", func() error { return unix.Unshare(unix.CLONE_NEWNET) }, fn)
}

// run is the one careful way into a namespace: on a fresh locked thread it
// remembers the original namespace and its inode, enters (with enter), runs
// fn, goes back and checks by inode that it got there. Only then is the
// thread unlocked; a thread that cannot be returned stays locked and the
// runtime destroys it when run's goroutine ends, so no other goroutine is
// ever scheduled in the wrong namespace. A panic in fn is re-raised in the
// caller after the thread is back.
func run(what string, enter, fn func() error) error {
	type result struct {
		err      error
		panicked bool
		panicVal any
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := Current()
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("netns: open current: %w", err)}
			return
		}
		defer orig.Close()
		origIno, err := orig.Inode()
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("netns: stat current: %w", err)}
			return
		}
		if err := enter(); err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("netns: %s: %w", what, err)}
			return
		}
		var r result
		func() {
			defer func() {
				if v := recover(); v != nil {
					r.panicked, r.panicVal = true, v
				}
			}()
			r.err = fn()
		}()
		if err := returnTo(orig, origIno); err != nil {
			// The thread stays locked and dies with this goroutine.
			r.err = errors.Join(r.err, fmt.Errorf("netns: after %s: %w", what, err))
			res <- r
			return
		}
		runtime.UnlockOSThread()
		res <- r
	}()
	r := <-res
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// returnTo puts the calling (locked) thread back into orig and checks it
// got there.
func returnTo(orig *NS, origIno uint64) error {
	if err := unix.Setns(orig.fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("return to the original netns: %w", err)
	}
	ino, err := CurrentInode()
	if err != nil {
		return fmt.Errorf("check the return to the original netns: %w", err)
	}
	if ino != origIno {
		return fmt.Errorf("thread is in netns inode %d after returning to %d", ino, origIno)
	}
	return nil
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
