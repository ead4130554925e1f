package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

// EtcNetNSDir holds per-namespace configuration files: a file
// /etc/netns/NAME/F is seen as /etc/F by a program run with ExecInNetNS
// (or `ip netns exec`) in NAME — resolv.conf, hosts, nsswitch.conf.
const EtcNetNSDir = "/etc/netns"

// ExecInNetNS replaces the calling process with the program at path (argv
// its arguments, argv[0] included) running in the named network namespace the way `ip netns exec`
// runs it: with a private mount namespace in which /sys is a sysfs mounted
// from inside the network namespace (so /sys/class/net lists the
// namespace's interfaces, not the caller's) and every file of
// /etc/netns/NAME bound over its namesake in /etc. Nothing changes for
// any other process: mounts made in the private namespace do not
// propagate back (/ is made a recursive slave first).
//
// Namespaces belong to OS threads, and a Go program has several, so the
// work happens on the calling goroutine's thread, locked to it: setns and
// unshare(CLONE_NEWNS) change that thread only (unshare of the mount
// namespace is allowed in a threaded process; it is CLONE_NEWUSER that is
// not), and execve, which ends every other thread, hands that thread's
// namespaces to the new program. ExecInNetNS returns only on failure; the
// thread may then already be in the namespace, so the caller must exit.
// warn, when not nil, hears of /etc/netns files that could not be bound
// (the command runs anyway, as with ip).
func ExecInNetNS(name, path string, argv, env []string, warn func(error)) error {
	if err := netns.ValidateName(name); err != nil {
		return fmt.Errorf("netns exec: %w", err)
	}
	if len(argv) == 0 {
		return errors.New("netns exec: no command to run")
	}
	h, err := netns.Open(name)
	if err != nil {
		return fmt.Errorf("netns exec: %w", err)
	}
	defer h.Close()
	runtime.LockOSThread()
	// From here on this thread is never handed back to the scheduler: it
	// either becomes the new program or the caller exits.
	if err := unix.Setns(h.FD(), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netns exec %s: enter the network namespace: %w", name, err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("netns exec %s: unshare the mount namespace: %w", name, err)
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("netns exec %s: make / a slave mount: %w", name, err)
	}
	if err := mountNetNSSysfs(name); err != nil {
		return fmt.Errorf("netns exec %s: %w", name, err)
	}
	bindEtc(name, warn)
	err = syscall.Exec(path, argv, env)
	return fmt.Errorf("netns exec %s: run %s: %w", name, path, err)
}

// mountNetNSSysfs replaces /sys with a sysfs instance mounted from inside
// the network namespace: sysfs shows the network devices of the namespace
// its mounter is in. A /sys that cannot be unmounted is covered instead,
// read-only when it was read-only (a read-write sysfs cannot cover a
// read-only one).
func mountNetNSSysfs(name string) error {
	var flags uintptr
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
		var st unix.Statfs_t
		if unix.Statfs("/sys", &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
			flags = unix.MS_RDONLY
		}
	}
	if err := unix.Mount(name, "/sys", "sysfs", flags, ""); err != nil {
		return fmt.Errorf("mount sysfs on /sys: %w", err)
	}
	return nil
}

// bindEtc binds each entry of /etc/netns/NAME over /etc/ENTRY. As with `ip
// netns exec`, an entry that cannot be bound (its /etc namesake does not
// exist) is reported and skipped: the command still runs.
func bindEtc(name string, warn func(error)) {
	dir := filepath.Join(EtcNetNSDir, name)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			if warn != nil {
				warn(fmt.Errorf("netns exec %s: bind %s on %s: %w", name, src, dst, err))
			}
		}
	}
}
