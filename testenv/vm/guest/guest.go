package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/testenv/vm/internal/wire"
)

// Timeouts of the guest side; the host bounds the whole run.
const (
	portWait  = 20 * time.Second // virtio ports appear asynchronously after the driver loads
	ackWait   = 10 * time.Second // host acknowledging the final frame
	drainWait = 5 * time.Second  // output pipes after the test exited (a leaked child may hold them)
)

// Main is the init's entry point. It never returns: the VM powers off.
func Main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vmlink init: must run as PID 1 inside the VM (the runner puts it at /init)")
		os.Exit(2)
	}
	g := &guest{start: time.Now()}
	code, err := g.run()
	if err != nil {
		g.fatal(err)
	} else {
		g.finish(code)
	}
	poweroff()
}

type guest struct {
	start time.Time
	port  *os.File
	mu    sync.Mutex // serialises frames on port
}

// send writes a frame; without a port (it failed to appear) the text goes
// to the console, which the host shows on failure.
func (g *guest) send(k wire.Kind, p []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.port == nil {
		if k != wire.KindStdout && k != wire.KindStderr && k != wire.KindFile {
			fmt.Fprintf(os.Stdout, "vmlink init: %v: %s\n", k, p)
		}
		return
	}
	if err := wire.WriteFrame(g.port, k, p); err != nil {
		fmt.Fprintf(os.Stdout, "vmlink init: %v\n", err)
	}
}

func (g *guest) logf(format string, args ...any) {
	g.send(wire.KindLog, fmt.Appendf(nil, "[%6.2fs] "+format, append([]any{time.Since(g.start).Seconds()}, args...)...))
}

func (g *guest) fatal(err error) {
	// The console line is the fallback when the channel itself failed.
	fmt.Fprintf(os.Stdout, "vmlink init: FATAL: %v\n", err)
	g.send(wire.KindFatal, []byte(err.Error()))
	g.waitAck()
}

func (g *guest) finish(code int) {
	g.send(wire.KindExit, wire.EncodeExit(code))
	g.waitAck()
}

// waitAck waits for the host's acknowledgement of the final frame, so that
// powering off never races with the host reading it.
func (g *guest) waitAck() {
	if g.port == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			f, err := wire.ReadFrame(g.port)
			if err != nil || f.Kind == wire.KindAck {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(ackWait):
		fmt.Fprintln(os.Stdout, "vmlink init: no acknowledgement from the host; powering off anyway")
	}
}

func poweroff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// qemu runs with -no-reboot, so a restart ends it too.
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	for {
		time.Sleep(time.Hour)
	}
}

func (g *guest) run() (int, error) {
	if err := mountAll(); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(wire.ManifestPath)
	if err != nil {
		return 0, fmt.Errorf("read manifest: %w", err)
	}
	var m wire.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, fmt.Errorf("decode manifest %s: %w", wire.ManifestPath, err)
	}
	if !m.FreeNetstamp {
		if err := holdNetstamp(); err != nil {
			return 0, err
		}
	}
	// Modules first: on some kernels the result channel's own driver
	// (virtio_console) is one of them. A failure is reported once the port
	// is open.
	loaded, modErr := loadModules(m.Modules)
	port, err := openPort()
	if err != nil {
		if modErr != nil {
			return 0, fmt.Errorf("%w (and %v)", modErr, err)
		}
		return 0, err
	}
	g.port = port
	g.logf("kernel %s, loaded modules: %s", m.Kernel, strings.Join(loaded, " "))
	if len(m.Builtin) > 0 {
		g.logf("built in: %s", strings.Join(m.Builtin, " "))
	}
	if modErr != nil {
		return 0, modErr
	}
	for _, c := range m.Checks {
		if _, err := os.Stat(c); err != nil {
			return 0, fmt.Errorf("check after loading modules: %w", err)
		}
	}
	if err := linkUp("lo"); err != nil {
		return 0, err
	}
	unix.Sethostname([]byte("vmlink-vm"))
	if err := unstage(wire.StageDir, "/"); err != nil {
		return 0, err
	}
	for _, d := range append(m.MkdirAll, m.Dir) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, fmt.Errorf("create %s for the test: %w", d, err)
		}
	}
	code, err := g.runTest(&m)
	if err != nil {
		return 0, err
	}
	g.collect(m.Collect)
	return code, nil
}

// holdNetstamp switches the kernel's packet timestamping on for the rest of
// the guest's life by leaving one timestamping socket open (the descriptor
// is deliberately never closed).
//
// Why: every socket that asks for receive timestamps (SO_TIMESTAMPNS, as
// verify's captures do) takes a reference on netstamp_needed_key; going from
// 0 to 1 reference or back live-patches the static branches in the receive
// path (net_enable_timestamp/net_disable_timestamp -> netstamp_work ->
// static_branch_enable, text_poke_bp with an int3 breakpoint). Under qemu's
// TCG with two vCPUs, the other vCPU can still execute the breakpoint after
// the kernel has finished the patch and stopped expecting it, and 6.12
// dies with "Oops: int3" in __netif_receive_skb_core or netif_receive_skb,
// "Kernel panic - not syncing: Fatal exception in interrupt". Measured: a
// guest opening and closing a timestamping socket every 2 ms under loopback
// traffic crashed 6.12 within a second in 3 of 3 boots and ran 30 s clean in
// 3 of 3 with this hold; verify.test (two at a time, as CI runs them)
// crashed 6.12 in 2 of 17 runs without it and 0 of 16 with it. Real hardware
// and KVM serialise the patch correctly; with the switch held on, the kernel
// never patches it while tests run, and tests see the same timestamps
// either way (a socket that asks for them turns the switch on anyway).
func holdNetstamp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("hold packet timestamping on: socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return fmt.Errorf("hold packet timestamping on: SO_TIMESTAMPNS: %w", err)
	}
	return nil
}

type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

var mounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	// /run holds /run/netns, where ip netns and our netns package
	// bind-mount namespaces.
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

func mountAll() error {
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.target, err)
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	if err := os.Symlink("/proc/self/fd", "/dev/fd"); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("link /dev/fd: %w", err)
	}
	return nil
}

// loadModules loads each module with finit_module in the given order (the
// host ordered them by dependency). EEXIST means it is already there (built
// in or loaded as a dependency), which is fine.
func loadModules(mods []wire.Module) ([]string, error) {
	var loaded []string
	for _, m := range mods {
		if err := finitModule(m.Path, m.Params); err != nil {
			if errors.Is(err, unix.EEXIST) {
				loaded = append(loaded, m.Name+"(already)")
				continue
			}
			return loaded, fmt.Errorf("load module %s: %w", m.Name, err)
		}
		if _, err := os.Stat("/sys/module/" + m.Name); err != nil {
			return loaded, fmt.Errorf("load module %s: finit_module succeeded but /sys/module/%s is missing", m.Name, m.Name)
		}
		loaded = append(loaded, m.Name)
	}
	return loaded, nil
}

func finitModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.FinitModule(int(f.Fd()), params, 0)
}

// openPort finds the virtio-serial port named wire.PortName. Ports are
// announced by the host over the control queue after the driver binds, so
// they appear a little after the module load returns.
func openPort() (*os.File, error) {
	deadline := time.Now().Add(portWait)
	for {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil || strings.TrimSpace(string(b)) != wire.PortName {
				continue
			}
			dev := "/dev/" + filepath.Base(filepath.Dir(n))
			f, err := os.OpenFile(dev, os.O_RDWR, 0)
			if err == nil {
				return f, nil
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("open result channel %s: %w", dev, err)
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("open result channel: no virtio-serial port named %s after %v (is virtio_console loaded?)", wire.PortName, portWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// linkUp sets IFF_UP on an interface with the old ioctl, the one interface
// configuration that needs no netlink.
func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	return nil
}

// unstage moves the trees the host staged under stage (wire.StageDir) to
// the same paths under root ("/"), which may be inside the tmpfs mounted
// over /tmp or /run: a rename where it can, a copy across file systems.
func unstage(stage, root string) error {
	return filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == stage {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unstage %s: %w", p, err)
		}
		if p == stage {
			return nil
		}
		dst := filepath.Join(root, strings.TrimPrefix(p, stage))
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("unstage %s: %w", p, err)
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(dst, info.Mode().Perm()); err != nil {
				return fmt.Errorf("unstage %s: %w", dst, err)
			}
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("unstage %s: %w", p, err)
			}
			if err := os.Symlink(t, dst); err != nil {
				return fmt.Errorf("unstage %s: %w", dst, err)
			}
		default:
			if err := os.Rename(p, dst); err == nil {
				return nil
			}
			if err := copyFile(p, dst, info.Mode().Perm()); err != nil {
				return fmt.Errorf("unstage %s: %w", dst, err)
			}
		}
		return nil
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// frameWriter turns writes of the test's stdout or stderr into frames.
type frameWriter struct {
	g    *guest
	kind wire.Kind
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.g.send(w.kind, append([]byte(nil), p...))
	return len(p), nil
}

func (g *guest) runTest(m *wire.Manifest) (int, error) {
	if len(m.Argv) == 0 {
		return 0, errors.New("manifest has no test binary")
	}
	cmd := exec.Command(m.Argv[0], m.Argv[1:]...)
	cmd.Args = m.Argv
	cmd.Env = m.Env
	cmd.Dir = m.Dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("start test: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, fmt.Errorf("start test: %w", err)
	}
	g.logf("starting %s", strings.Join(m.Argv, " "))
	g.send(wire.KindStarted, nil)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start test %s: %w", m.Argv[0], err)
	}
	var wg sync.WaitGroup
	for _, p := range []struct {
		r io.Reader
		k wire.Kind
	}{{stdout, wire.KindStdout}, {stderr, wire.KindStderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			io.CopyBuffer(&frameWriter{g, p.k}, p.r, buf)
		}()
	}
	// exec.Cmd.Wait waits for the pipe copies too; the test's own process
	// is waited for separately so a leaked grandchild holding the pipe
	// cannot hang the VM.
	state, werr := cmd.Process.Wait()
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainWait):
		g.logf("test output still open %v after the test exited (a child process keeps it); not waiting", drainWait)
	}
	if werr != nil {
		return 0, fmt.Errorf("wait for test: %w", werr)
	}
	ws := state.Sys().(syscall.WaitStatus)
	switch {
	case ws.Exited():
		g.logf("test exited with status %d", ws.ExitStatus())
		return ws.ExitStatus(), nil
	case ws.Signaled():
		g.logf("test killed by signal %v", ws.Signal())
		return 128 + int(ws.Signal()), nil
	}
	return 0, fmt.Errorf("test ended in an unexpected state: %v", state)
}

// collect sends back the files the host asked for (profiles, the test log
// go test reads for caching); a directory sends its regular files.
func (g *guest) collect(paths []string) {
	for _, p := range paths {
		filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(f)
			if err != nil || len(b) > wire.MaxPayload-len(f)-8 {
				g.logf("not sending back %s: %v (%d bytes)", f, err, len(b))
				return nil
			}
			g.send(wire.KindFile, wire.EncodeFile(f, b))
			return nil
		})
	}
}
