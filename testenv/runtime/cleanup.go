package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vmlink/vmlink/internal/netns"
	"golang.org/x/sys/unix"
)

// stopPID ends a process this package started: SIGTERM, then SIGKILL after
// grace. done is closed when the process has been reaped (its exec.Cmd's
// Wait returned).
func stopPID(pid int, done <-chan struct{}, grace time.Duration) error {
	if pid <= 0 {
		return nil
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("stop pid %d: %w", pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill pid %d: %w", pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("pid %d still running 10s after SIGKILL", pid)
	}
}

// killUnder kills (SIGKILL) every process whose command line mentions dir:
// the runtime's helpers (containerd, its shims, conmon) that outlived
// their daemon. dir is a directory this package created, so a match is
// always one of ours.
func killUnder(dir string) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(string(cmdline), dir+"/") {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// unmountUnder detaches every mount point at or below dir, deepest first:
// a runtime killed mid-way leaves its storage and netns mounts behind.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("unmount under %s: %w", dir, err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := netns.UnescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// removeDir unmounts what is left under dir and removes it.
func removeDir(dir string) error {
	if dir == "" {
		return nil
	}
	killUnder(dir)
	errU := unmountUnder(dir)
	if err := os.RemoveAll(dir); err != nil {
		return errors.Join(errU, fmt.Errorf("remove %s: %w", dir, err))
	}
	return errU
}
