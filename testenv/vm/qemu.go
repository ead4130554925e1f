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

func (oc *outcome) setFinal() {
	if !oc.finalSet {
		oc.finalSet = true
		close(oc.final)
	}
}

func boot(ctx context.Context, o *Options, p *prepared) (*Result, error) {
	sock := filepath.Join(p.tmp, "result.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, &VMError{Reason: ReasonQemu, Kernel: p.kernel.Version, Err: fmt.Errorf("listen for the result channel: %w", err)}
	}
	defer ln.Close()
	args := QemuArgs(o, p.image, p.initrd, sock)
	cmd := exec.Command(o.Qemu, args...)
	// qemu dies with the runner even when go test kills the runner with
	// SIGKILL; the thread that starts qemu stays locked and alive until
	// qemu has exited, so the parent-death signal is tied to the right
	// thread.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	console := &ring{n: o.ConsoleLines}
	cr, cw := io.Pipe()
	cmd.Stdout = cw
	cmd.Stderr = cw
	consoleDone := make(chan struct{})
	var panicLine string    // the first "Kernel panic - not syncing: ..." line
	var consoleFatal string // init's failure, when it could only use the console
	var panicMu sync.Mutex
	go func() {
		defer close(consoleDone)
		sc := bufio.NewScanner(cr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := strings.TrimRight(sc.Text(), "\r")
			console.add(l)
			if i := strings.Index(l, "Kernel panic"); i >= 0 {
				panicMu.Lock()
				if panicLine == "" {
					panicLine = l[i:]
				}
				panicMu.Unlock()
			}
			// The init's fallback when the result channel never opened.
			if _, msg, ok := strings.Cut(l, "vmlink init: FATAL: "); ok {
				panicMu.Lock()
				consoleFatal = msg
				panicMu.Unlock()
			}
			if o.Console != nil {
				fmt.Fprintln(o.Console, l)
			}
		}
		io.Copy(io.Discard, cr)
	}()

	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
		cw.Close()
	}()
	p.qemuStart = time.Now()
	if err := <-started; err != nil {
		cw.Close()
		return nil, &VMError{Reason: ReasonQemu, Kernel: p.kernel.Version, Err: fmt.Errorf("start %s: %w", o.Qemu, err)}
	}
	o.logf("booting %s from %s (accel %s, %d MiB, %d CPUs)", p.kernel.Version, p.imageNote, o.Accel, o.MemoryMiB, o.CPUs)

	oc := &outcome{final: make(chan struct{})}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		readChannel(o, p, conn, oc)
	}()

	timer := time.NewTimer(o.Timeout)
	defer timer.Stop()
	// The boot watchdog: ticks until the test has started, and kills a
	// guest that has not started it by o.BootTimeout.
	bootTick := time.NewTicker(time.Second)
	defer bootTick.Stop()
	bootDeadline := time.Now().Add(o.BootTimeout)
	var reason Reason
	var qerr error
wait:
	select {
	case <-bootTick.C:
		oc.mu.Lock()
		running := !oc.started.IsZero() || oc.exit != nil
		oc.mu.Unlock()
		if running {
			bootTick.Stop()
		} else if time.Now().After(bootDeadline) {
			reason = ReasonBootHung
			cmd.Process.Kill()
			qerr = <-exited
			break
		}
		goto wait
	case qerr = <-exited:
	case <-oc.final:
		// Give the guest time to power off after the acknowledgement.
		select {
		case qerr = <-exited:
		case <-time.After(20 * time.Second):
			o.logf("guest did not power off 20s after reporting; killing qemu (pid %d)", cmd.Process.Pid)
			cmd.Process.Kill()
			qerr = <-exited
		}
	case <-timer.C:
		reason = ReasonTimeout
		cmd.Process.Kill()
		qerr = <-exited
	case <-ctx.Done():
		reason = ReasonInterrupted
		cmd.Process.Kill()
		qerr = <-exited
	}
	vmTime := time.Since(p.qemuStart)
	ln.Close() // unblocks Accept if qemu never connected
	select {
	case <-readerDone:
	case <-time.After(5 * time.Second):
	}
	select {
	case <-consoleDone:
	case <-time.After(5 * time.Second):
	}

	oc.mu.Lock()
	defer oc.mu.Unlock()
	ve := &VMError{Kernel: p.kernel.Version, Console: console.get(), InitLog: oc.initLog, Booted: true, TestStarted: !oc.started.IsZero()}
	if oc.exit != nil {
		res := &Result{ExitCode: *oc.exit, Kernel: p.kernel.Version, VM: vmTime}
		if !oc.started.IsZero() {
			res.BootToTest = oc.started.Sub(p.qemuStart)
			res.Test = oc.ended.Sub(oc.started)
		}
		return res, nil
	}
	panicMu.Lock()
	panicked := panicLine
	if oc.fatal == "" {
		oc.fatal = consoleFatal
	}
	panicMu.Unlock()
	switch {
	case oc.fatal != "":
		ve.Reason = ReasonInitFailed
		if strings.Contains(oc.fatal, "load module") {
			ve.Reason = ReasonMissingModule
		}
		ve.Detail = oc.fatal
	case reason == ReasonBootHung:
		ve.Reason = ReasonBootHung
		ve.Detail = fmt.Sprintf("no test start %v after qemu started (boot normally takes seconds; console below)", o.BootTimeout)
	case reason == ReasonTimeout:
		ve.Reason = ReasonTimeout
		if oc.started.IsZero() {
			ve.Detail = fmt.Sprintf("no test result after %v; the test never started (boot hung?)", o.Timeout)
		} else {
			ve.Detail = fmt.Sprintf("no test result after %v; the test started %.1fs after qemu and was still running (raise --timeout or -test.timeout)",
				o.Timeout, oc.started.Sub(p.qemuStart).Seconds())
		}
	case reason == ReasonInterrupted:
		ve.Reason = ReasonInterrupted
		ve.Err = ctx.Err()
	case panicked != "":
		ve.Reason = ReasonPanic
		ve.Detail = panicked + " (console below)"
	default:
		ve.Reason = ReasonNoResult
		ve.Detail = fmt.Sprintf("qemu exited (%v) before the guest reported an exit status", exitDesc(qerr))
		for _, l := range ve.Console {
			if strings.Contains(l, "qemu-system") {
				ve.Reason = ReasonQemu
			}
		}
	}
	return nil, ve
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
