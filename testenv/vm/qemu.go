package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmlink/vmlink/testenv/vm/internal/wire"
)

// QemuArgs is the qemu command line (without the program name). The result
// channel is a virtio-serial port backed by a unix socket qemu connects
// to; the console is ttyS0 on qemu's stdout. No network device: the guest
// needs none and must never touch the host's.
func QemuArgs(o *Options, kernelImage, initrd, sock string) []string {
	args := []string{
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-accel", o.Accel,
		"-m", strconv.Itoa(o.MemoryMiB),
		"-smp", strconv.Itoa(o.CPUs),
		"-kernel", kernelImage,
		"-initrd", initrd,
		"-append", o.Append,
		"-display", "none",
		"-serial", "stdio",
		"-nic", "none",
		"-device", "virtio-serial-pci,id=vs0",
		"-chardev", "socket,id=vmlink0,path=" + sock,
		"-device", "virtserialport,bus=vs0.0,chardev=vmlink0,name=" + wire.PortName,
	}
	if o.CPUModel != "" {
		args = append(args, "-cpu", o.CPUModel)
	} else if strings.HasPrefix(o.Accel, "kvm") {
		args = append(args, "-cpu", "host")
	}
	return args
}

// ring keeps the last n lines written to it.
type ring struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func (r *ring) add(l string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
	if len(r.lines) > r.n {
		r.lines = r.lines[len(r.lines)-r.n:]
	}
}

func (r *ring) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// outcome is what the channel reader learnt.
type outcome struct {
	mu       sync.Mutex
	started  time.Time
	ended    time.Time
	exit     *int
	fatal    string
	initLog  []string
	final    chan struct{} // closed on the exit or fatal frame
	finalSet bool
}

// running reports whether the guest has started the test (or already
// ended it).
func (oc *outcome) running() bool {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	return !oc.started.IsZero() || oc.exit != nil
}

func (oc *outcome) setFinal() {
	if !oc.finalSet {
		oc.finalSet = true
		close(oc.final)
	}
}

// boot runs the prepared guest in qemu once: it listens for the result
// channel, starts qemu with its console watched, serves the channel, waits
// for the guest's end, and judges what it learnt.
func boot(ctx context.Context, o *Options, p *prepared) (*Result, error) {
	sock := filepath.Join(p.tmp, "result.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, &VMError{Reason: ReasonQemu, Kernel: p.kernel.Version, Err: fmt.Errorf("listen for the result channel: %w", err)}
	}
	defer ln.Close()
	cmd := exec.Command(o.Qemu, QemuArgs(o, p.image, p.initrd, sock)...)
	// qemu dies with the runner even when go test kills the runner with
	// SIGKILL; the thread that starts qemu stays locked and alive until
	// qemu has exited, so the parent-death signal is tied to the right
	// thread.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cr, cw := io.Pipe()
	cmd.Stdout = cw
	cmd.Stderr = cw
	con := watchConsole(o, cr)

	started, exited := startQemu(cmd, cw)
	p.qemuStart = time.Now()
	if err := <-started; err != nil {
		cw.Close()
		return nil, &VMError{Reason: ReasonQemu, Kernel: p.kernel.Version, Err: fmt.Errorf("start %s: %w", o.Qemu, err)}
	}
	o.logf("booting %s from %s (accel %s, %d MiB, %d CPUs)", p.kernel.Version, p.imageNote, o.Accel, o.MemoryMiB, o.CPUs)

	oc := &outcome{final: make(chan struct{})}
	readerDone := serveChannel(ln, o, p, oc)
	end := waitGuest(ctx, o, cmd, exited, oc)
	end.vmTime = time.Since(p.qemuStart)
	ln.Close() // unblocks Accept if qemu never connected
	waitAtMost(readerDone, 5*time.Second)
	waitAtMost(con.done, 5*time.Second)
	return judge(ctx, o, p, oc, con, end)
}

// console is qemu's output (the guest's ttyS0 and qemu's own messages):
// its last lines, and what they said about a failure.
type console struct {
	lines *ring
	done  chan struct{} // closed when the output has ended
	mu    sync.Mutex
	// panicLine is the first "Kernel panic - not syncing: ..." line.
	panicLine string
	// fatal is init's failure, when it could only use the console.
	fatal string
}

// watchConsole reads qemu's output from r until it ends, keeping its last
// lines, noting a kernel panic or init's fatal line, and copying it to
// o.Console.
func watchConsole(o *Options, r io.Reader) *console {
	con := &console{lines: &ring{n: o.ConsoleLines}, done: make(chan struct{})}
	go func() {
		defer close(con.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := strings.TrimRight(sc.Text(), "\r")
			con.lines.add(l)
			con.note(l)
			if o.Console != nil {
				fmt.Fprintln(o.Console, l)
			}
		}
		io.Copy(io.Discard, r)
	}()
	return con
}

// note remembers what line l says about a failure.
func (con *console) note(l string) {
	if i := strings.Index(l, "Kernel panic"); i >= 0 {
		con.mu.Lock()
		if con.panicLine == "" {
			con.panicLine = l[i:]
		}
		con.mu.Unlock()
	}
	// The init's fallback when the result channel never opened.
	if _, msg, ok := strings.Cut(l, "vmlink init: FATAL: "); ok {
		con.mu.Lock()
		con.fatal = msg
		con.mu.Unlock()
	}
}

// findings returns the panic line and init's fatal message seen so far.
func (con *console) findings() (panicLine, fatal string) {
	con.mu.Lock()
	defer con.mu.Unlock()
	return con.panicLine, con.fatal
}

// startQemu starts cmd on a locked thread that stays alive until qemu has
// exited (see boot). started carries Start's error; exited then carries
// Wait's, after which cw, qemu's output, is closed.
func startQemu(cmd *exec.Cmd, cw *io.PipeWriter) (started, exited <-chan error) {
	st := make(chan error, 1)
	ex := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			st <- err
			return
		}
		st <- nil
		ex <- cmd.Wait()
		cw.Close()
	}()
	return st, ex
}

// serveChannel accepts the guest's connection to the result channel and
// reads it into oc; the returned channel is closed when that is over.
func serveChannel(ln *net.UnixListener, o *Options, p *prepared, oc *outcome) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		readChannel(o, p, conn, oc)
	}()
	return done
}

// ending is how the wait for the guest ended.
type ending struct {
	// reason is why the runner killed qemu; zero when qemu exited on its
	// own (after the guest's final frame or not).
	reason Reason
	qerr   error         // qemu's exit
	vmTime time.Duration // from qemu's start to the end of the wait
}

// waitGuest waits for qemu to exit, after the guest's final frame or on
// its own, and kills it when the guest has not started the test by
// o.BootTimeout (the boot watchdog), when o.Timeout passes, or when ctx
// ends.
func waitGuest(ctx context.Context, o *Options, cmd *exec.Cmd, exited <-chan error, oc *outcome) ending {
	timer := time.NewTimer(o.Timeout)
	defer timer.Stop()
	// The boot watchdog: ticks until the test has started.
	bootTick := time.NewTicker(time.Second)
	defer bootTick.Stop()
	bootDeadline := time.Now().Add(o.BootTimeout)
	kill := func(r Reason) ending {
		cmd.Process.Kill()
		return ending{reason: r, qerr: <-exited}
	}
	for {
		select {
		case <-bootTick.C:
			if oc.running() {
				bootTick.Stop()
			} else if time.Now().After(bootDeadline) {
				return kill(ReasonBootHung)
			}
		case qerr := <-exited:
			return ending{qerr: qerr}
		case <-oc.final:
			// Give the guest time to power off after the acknowledgement.
			select {
			case qerr := <-exited:
				return ending{qerr: qerr}
			case <-time.After(20 * time.Second):
				o.logf("guest did not power off 20s after reporting; killing qemu (pid %d)", cmd.Process.Pid)
				cmd.Process.Kill()
				return ending{qerr: <-exited}
			}
		case <-timer.C:
			return kill(ReasonTimeout)
		case <-ctx.Done():
			return kill(ReasonInterrupted)
		}
	}
}

// waitAtMost waits for done to close, or d.
func waitAtMost(done <-chan struct{}, d time.Duration) {
	select {
	case <-done:
	case <-time.After(d):
	}
}

// judge is the run's result: the guest's exit status when it reported one,
// otherwise a VMError saying why there is none, with the console's last
// lines and init's log.
func judge(ctx context.Context, o *Options, p *prepared, oc *outcome, con *console, end ending) (*Result, error) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	if oc.exit != nil {
		res := &Result{ExitCode: *oc.exit, Kernel: p.kernel.Version, VM: end.vmTime}
		if !oc.started.IsZero() {
			res.BootToTest = oc.started.Sub(p.qemuStart)
			res.Test = oc.ended.Sub(oc.started)
		}
		return res, nil
	}
	ve := &VMError{Kernel: p.kernel.Version, Console: con.lines.get(), InitLog: oc.initLog, Booted: true, TestStarted: !oc.started.IsZero()}
	panicked, fatal := con.findings()
	if oc.fatal == "" {
		oc.fatal = fatal
	}
	switch {
	case oc.fatal != "":
		ve.Reason = ReasonInitFailed
		if strings.Contains(oc.fatal, "load module") {
			ve.Reason = ReasonMissingModule
		}
		ve.Detail = oc.fatal
	case end.reason == ReasonBootHung:
		ve.Reason = ReasonBootHung
		ve.Detail = fmt.Sprintf("no test start %v after qemu started (boot normally takes seconds; console below)", o.BootTimeout)
	case end.reason == ReasonTimeout:
		ve.Reason = ReasonTimeout
		ve.Detail = timeoutDetail(o, p, oc)
	case end.reason == ReasonInterrupted:
		ve.Reason = ReasonInterrupted
		ve.Err = ctx.Err()
	case panicked != "":
		ve.Reason = ReasonPanic
		ve.Detail = panicked + " (console below)"
	default:
		ve.Reason = ReasonNoResult
		ve.Detail = fmt.Sprintf("qemu exited (%v) before the guest reported an exit status", exitDesc(end.qerr))
		for _, l := range ve.Console {
			if strings.Contains(l, "qemu-system") {
				ve.Reason = ReasonQemu
			}
		}
	}
	return nil, ve
}

// timeoutDetail says what a run past o.Timeout was doing.
func timeoutDetail(o *Options, p *prepared, oc *outcome) string {
	if oc.started.IsZero() {
		return fmt.Sprintf("no test result after %v; the test never started (boot hung?)", o.Timeout)
	}
	return fmt.Sprintf("no test result after %v; the test started %.1fs after qemu and was still running (raise --timeout or -test.timeout)",
		o.Timeout, oc.started.Sub(p.qemuStart).Seconds())
}

func exitDesc(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// readChannel handles frames until the guest's final one, acknowledges it
// and returns at EOF.
func readChannel(o *Options, p *prepared, conn *net.UnixConn, oc *outcome) {
	for {
		f, err := wire.ReadFrame(conn)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				oc.mu.Lock()
				oc.initLog = append(oc.initLog, "result channel: "+err.Error())
				oc.mu.Unlock()
			}
			return
		}
		switch f.Kind {
		case wire.KindStdout:
			o.Stdout.Write(f.Payload)
		case wire.KindStderr:
			o.Stderr.Write(f.Payload)
		case wire.KindLog:
			o.logf("guest: %s", f.Payload)
			oc.mu.Lock()
			oc.initLog = append(oc.initLog, string(f.Payload))
			oc.mu.Unlock()
		case wire.KindStarted:
			oc.mu.Lock()
			oc.started = time.Now()
			oc.mu.Unlock()
		case wire.KindFile:
			path, content, err := wire.DecodeFile(f.Payload)
			if err == nil {
				err = storeCollected(p.collect, path, content)
			}
			if err != nil {
				o.logf("collect file from guest: %v", err)
			}
		case wire.KindExit, wire.KindFatal:
			oc.mu.Lock()
			oc.ended = time.Now()
			if f.Kind == wire.KindExit {
				code, err := wire.DecodeExit(f.Payload)
				if err != nil {
					oc.fatal = err.Error()
				} else {
					oc.exit = &code
				}
			} else {
				oc.fatal = string(f.Payload)
			}
			oc.setFinal()
			oc.mu.Unlock()
			wire.WriteFrame(conn, wire.KindAck, nil)
		}
	}
}

// storeCollected writes a file the guest sent back, only if the run asked
// for it (the guest never writes anywhere else on the host).
func storeCollected(allowed []string, path string, content []byte) error {
	clean := filepath.Clean(path)
	ok := false
	for _, a := range allowed {
		if clean == a || strings.HasPrefix(clean, a+"/") {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("guest sent %s, which the run did not ask for; ignored", path)
	}
	if err := os.MkdirAll(filepath.Dir(clean), 0o755); err != nil {
		return err
	}
	return os.WriteFile(clean, content, 0o644)
}
