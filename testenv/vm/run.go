package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmlink/vmlink/testenv/vm/internal/wire"
)

// ExpectFeatures is what the guest environment supports, given to the test
// as VMLINK_EXPECT_FEATURES (unless the host sets that variable, as the
// VM tier of `make test` does) so testenv.Require fails (in CI) rather
// than skips a test the VM should be able to run. The guest has the link
// modules (Debian's bridge has vlan_filtering, the host's lacks it), ip
// and tcpdump, but no tshark, strace or sysctl.
const ExpectFeatures = "privileged,macvlan,macvtap,veth,bridge,bridge_vlan,vlan,ipvlan,dummy,ip,tcpdump"

// DefaultAppend is the kernel command line: console on the first serial
// port (the runner keeps its last lines for failure reports), reboot at
// once on panic (with -no-reboot qemu then exits instead of hanging), and
// quiet so the console carries little besides warnings and panics.
// mitigations=off: the guest runs nothing but the test, and under TCG the
// speculation mitigations (retpolines, return thunks, buffer clearing on
// every syscall) cost real time in netlink-heavy tests (measured here:
// rtnl's tests 10-50% faster, boot unchanged within the noise).
//
// no_timer_check: under TCG the kernel's IO-APIC timer check can fail on a
// loaded host ("IO-APIC + timer doesn't work!" panic on 6.1); the check
// only guards against broken hardware timers, which qemu's are not.
const DefaultAppend = "console=ttyS0 panic=-1 quiet mitigations=off no_timer_check"

// Options configure one VM run. The zero value of every field has a usable
// default.
type Options struct {
	Kernel   string // series ("6.1"), cached version or extracted directory; default "6.1"
	CacheDir string // default CacheDir()
	// Init is the static guest init binary; "" looks at $VMLINK_VM_INIT,
	// then for vmlink-init next to the running executable, and otherwise
	// builds github.com/vmlink/vmlink/testenv/vm/init with the go tool.
	Init    string
	Modules []string // default DefaultModules
	// ModuleParams override the parameters modules are loaded with (by
	// module name; default: dummy without its default devices).
	ModuleParams map[string]string
	// HostBinaries are copied with their libraries in addition to
	// DefaultHostBinaries (which are skipped when the host lacks them;
	// these are required).
	HostBinaries []string
	Checks       []string // paths that must exist in the guest once modules are loaded; default /proc/net/vlan/config when 8021q is loaded
	Env          []string // KEY=VALUE for the test, overriding the defaults
	Timeout      time.Duration
	// BootTimeout bounds the time from qemu's start to the test's start;
	// default DefaultBootTimeout. A guest that has not started the test
	// by then is stuck in boot (under TCG the guest's timer interrupts can
	// stop arriving: RCU stalls, "timer wakeup didn't happen").
	BootTimeout time.Duration
	// BootRetries is how many times a run whose test never started (hung
	// boot, panic before the test) is booted again; default 1, negative
	// for none. Each retry is announced on Stderr with the failure that
	// caused it: a retry never hides a failure of the test itself.
	BootRetries int
	MemoryMiB   int // default 1024
	CPUs        int // default 2
	// Accel is "tcg", "kvm" or "auto"; default "auto": KVM when /dev/kvm
	// opens, and TCG when a KVM boot fails before the test starts (see
	// bootAccel).
	Accel     string
	Append    string // kernel command line; default DefaultAppend
	Qemu      string // default qemu-system-x86_64
	CPUModel  string // qemu -cpu; default: qemu's own (qemu64) under TCG, host under KVM
	autoAccel bool   // Accel was "auto": a failed KVM boot falls back to TCG

	// NoTestdata stops the runner from copying DIR/testdata into the guest.
	NoTestdata bool
	// FreeNetstamp lets the guest kernel switch packet timestamping on and
	// off as sockets come and go, as on real hardware. By default init
	// keeps it on for the whole run: every switch live-patches kernel code,
	// and under TCG with more than one CPU a patch can crash the guest
	// (see the guest package's holdNetstamp). Set it only to show that crash.
	FreeNetstamp bool

	Stdout, Stderr io.Writer            // the test's output, as it arrives; default os.Stdout, os.Stderr
	Notices        io.Writer            // the runner's own announcements (a boot retry, the KVM fallback); default Stderr
	Console        io.Writer            // if set, the whole serial console (for debugging)
	Log            func(string, ...any) // runner and guest init progress lines; may be nil
	ConsoleLines   int                  // console lines kept for failure reports; default 30
}

// DefaultTimeout bounds a run when neither Options.Timeout nor the test's
// -test.timeout says otherwise.
const DefaultTimeout = 10 * time.Minute

// DefaultBootTimeout bounds qemu start to test start. Boots take 3-10 s
// here under TCG and up to 30 s on a loaded machine.
const DefaultBootTimeout = 2 * time.Minute

// PrepareTimeout bounds what happens before qemu starts: host tools,
// kernel fetch (a 100 MB download on first use), initramfs and init build.
const PrepareTimeout = 20 * time.Minute

// Result is a run in which the guest reported the test's exit status.
type Result struct {
	ExitCode   int           // the test binary's exit status (128+signal if killed)
	Kernel     string        // kernel version booted
	Prepare    time.Duration // kernel cache, initramfs, init build
	BootToTest time.Duration // qemu start to the test binary's start
	Test       time.Duration // the test binary's run
	VM         time.Duration // qemu start to qemu exit
}

// Reason says why a VM run produced no test result.
type Reason int

// Reasons; the zero value is invalid.
const (
	ReasonInvalid       Reason = iota
	ReasonPrepare              // kernel fetch, initramfs or init build failed
	ReasonMissingModule        // a module is missing from the package or failed to load
	ReasonInitFailed           // the guest init reported a failure
	ReasonPanic                // the guest kernel panicked
	ReasonTimeout              // the run exceeded its timeout
	ReasonNoResult             // qemu exited without the guest reporting a result
	ReasonQemu                 // qemu could not be started or failed
	ReasonInterrupted          // the runner was interrupted (signal, context)
	ReasonBootHung             // the test had not started by the boot timeout
)

func (r Reason) String() string {
	switch r {
	case ReasonPrepare:
		return "preparing the VM failed"
	case ReasonMissingModule:
		return "missing kernel module"
	case ReasonInitFailed:
		return "guest init failed"
	case ReasonPanic:
		return "guest kernel panic"
	case ReasonTimeout:
		return "timeout"
	case ReasonNoResult:
		return "VM stopped without a test result"
	case ReasonQemu:
		return "qemu failed"
	case ReasonInterrupted:
		return "interrupted"
	case ReasonBootHung:
		return "guest hung before the test started"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// VMError is a run that produced no test result. It is never a pass.
type VMError struct {
	Reason  Reason
	Kernel  string
	Detail  string
	Console []string // the kernel console's last lines
	Booted  bool     // qemu was started (so Console means something)
	// TestStarted says the guest had started the test binary: a failure
	// after that is the test's and is never retried.
	TestStarted bool
	InitLog     []string // the guest init's progress lines, if the channel worked
	Err         error
}

func (e *VMError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "vm run on kernel %s: %v", orUnknown(e.Kernel), e.Reason)
	if e.Detail != "" {
		fmt.Fprintf(&b, ": %s", e.Detail)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if len(e.InitLog) > 0 {
		fmt.Fprintf(&b, "\n--- guest init log ---\n%s", strings.Join(e.InitLog, "\n"))
	}
	if len(e.Console) > 0 {
		fmt.Fprintf(&b, "\n--- last %d console lines ---\n%s", len(e.Console), strings.Join(e.Console, "\n"))
	} else if e.Booted {
		b.WriteString("\n--- the console was empty (the kernel runs with quiet; pass -v or --append without quiet for more) ---")
	}
	return b.String()
}

func (e *VMError) Unwrap() error { return e.Err }

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// Run boots a VM, runs argv (argv[0] is the test binary on the host) in it
// with working directory dir, streams its output to opts.Stdout/Stderr and
// returns its exit status. Anything that keeps the guest from reporting an
// exit status is a *VMError.
func Run(ctx context.Context, opts Options, argv []string, dir string) (*Result, error) {
	if len(argv) == 0 {
		return nil, errors.New("vm run: no test binary")
	}
	opts = withDefaults(opts, argv)
	start := time.Now()
	// Preparing needs no more than a kernel download; bound it apart
	// from the run's timeout, which is about the test.
	pctx, cancel := context.WithTimeout(ctx, PrepareTimeout)
	defer cancel()
	prep, err := prepare(pctx, &opts, argv, dir)
	if err != nil {
		var ve *VMError
		if errors.As(err, &ve) {
			return nil, err
		}
		reason := ReasonPrepare
		if errors.Is(err, ErrModuleNotFound) {
			reason = ReasonMissingModule
		}
		return nil, &VMError{Reason: reason, Kernel: opts.Kernel, Err: err}
	}
	defer prep.cleanup()
	res, err := bootAccel(ctx, &opts, prep)
	for retry := 1; retry <= opts.BootRetries && retryable(err); retry++ {
		fmt.Fprintf(opts.Notices, "vmtest: VM run failed before the test started, booting again (retry %d of %d): %v\n",
			retry, opts.BootRetries, firstLine(err))
		res, err = boot(ctx, &opts, prep)
	}
	if res != nil {
		res.Prepare = prep.qemuStart.Sub(start)
	}
	return res, err
}

// retryable reports whether err is a VM failure that happened before the
// test started: a hung boot, a kernel panic during boot, or qemu dying
// without a word of its own (a segfault of the emulator, seen once under
// heavy load with TCG). Everything else (the test's own exit status, a
// timeout of a running test, a missing module, qemu refusing its command
// line, an interrupt) is reported as it is.
func retryable(err error) bool {
	var ve *VMError
	if !errors.As(err, &ve) || ve.TestStarted {
		return false
	}
	switch ve.Reason {
	case ReasonBootHung, ReasonPanic, ReasonNoResult:
		return true
	}
	return false
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func withDefaults(o Options, argv []string) Options {
	if o.Kernel == "" {
		o.Kernel = "6.1"
	}
	if o.CacheDir == "" {
		o.CacheDir = CacheDir()
	}
	if o.Modules == nil {
		o.Modules = DefaultModules()
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
		// Leave the test's own -test.timeout room to fire and print its
		// goroutine dump (plus boot time); go test kills the runner one
		// minute after it.
		if d := TestTimeout(argv); d > 0 && d+30*time.Second > o.Timeout {
			o.Timeout = d + 30*time.Second
		}
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = DefaultBootTimeout
	}
	if o.BootTimeout > o.Timeout {
		o.BootTimeout = o.Timeout
	}
	if o.BootRetries == 0 {
		o.BootRetries = 1
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.Accel == "" {
		o.Accel = "auto"
	}
	if o.Accel == "auto" {
		o.autoAccel = true
		o.Accel = "tcg"
		if kvmOpens() && kvmFailure() == "" {
			o.Accel = "kvm"
		}
	}
	if o.Append == "" {
		o.Append = DefaultAppend
	}
	if o.Qemu == "" {
		o.Qemu = "qemu-system-x86_64"
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Notices == nil {
		o.Notices = o.Stderr
	}
	if o.ConsoleLines == 0 {
		o.ConsoleLines = 30
	}
	return o
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

type prepared struct {
	kernel    *Kernel
	image     string // what -kernel gets
	imageNote string
	initrd    string
	collect   []string
	tmp       string
	qemuStart time.Time
}

func (p *prepared) cleanup() { os.RemoveAll(p.tmp) }

func prepare(ctx context.Context, o *Options, argv []string, dir string) (*prepared, error) {
	if err := EnsureHostTools(ctx, o.CacheDir, o.Log); err != nil {
		return nil, err
	}
	k, err := EnsureKernel(ctx, o.CacheDir, o.Kernel, FetchOptions{Log: o.Log})
	if err != nil {
		return nil, err
	}
	o.Kernel = k.Version
	base, err := BuildBase(ctx, k, BaseOptions{Modules: o.Modules, HostBinaries: o.HostBinaries, OptionalBinaries: DefaultHostBinaries(), ModuleParams: o.ModuleParams})
	if err != nil {
		return nil, err
	}
	for _, m := range base.Missing {
		o.logf("%s is not on this host: the guest will not have it", m)
	}
	tmp, err := os.MkdirTemp("", "vmtest-")
	if err != nil {
		return nil, fmt.Errorf("prepare vm: %w", err)
	}
	p := &prepared{kernel: k, tmp: tmp}
	p.image, p.imageNote = k.BootImage(ctx)
	ok := false
	defer func() {
		if !ok {
			p.cleanup()
		}
	}()
	initBin, err := findInit(ctx, o.Init, tmp)
	if err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(argv[0])
	if err != nil {
		return nil, fmt.Errorf("prepare vm: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("prepare vm: %w", err)
	}
	mkdirs, collect := TestFiles(argv)
	p.collect = collect
	checks := o.Checks
	if checks == nil {
		for _, m := range base.Modules {
			if m.Name == "8021q" {
				checks = []string{"/proc/net/vlan/config"}
			}
		}
	}
	m := &wire.Manifest{
		Kernel:   k.Version,
		Modules:  base.Modules,
		Builtin:  base.Builtin,
		Argv:     argv,
		Env:      GuestEnv(os.Environ(), k.Version, o.Env),
		Dir:      dir,
		MkdirAll: mkdirs,
		Collect:  collect,
		Checks:   checks,

		FreeNetstamp: o.FreeNetstamp,
	}
	ra := &RunArchive{Init: initBin, Binary: bin, Manifest: m, SkipFiles: base.Files}
	if td := filepath.Join(dir, "testdata"); !o.NoTestdata {
		if fi, err := os.Stat(td); err == nil && fi.IsDir() {
			ra.Testdata = td
		}
	}
	p.initrd = filepath.Join(tmp, "initrd")
	if err := writeInitrd(ctx, p.initrd, base.Path, ra); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// writeInitrd concatenates the cached base archive and the run archive.
func writeInitrd(ctx context.Context, path, base string, ra *RunArchive) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	defer out.Close()
	in, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	_, err = io.Copy(out, in)
	in.Close()
	if err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	if err := WriteRunArchive(ctx, out, ra); err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("write initrd: %w", err)
	}
	return nil
}

// InitPackage is the import path of the guest init program.
const InitPackage = "github.com/vmlink/vmlink/testenv/vm/init"

// findInit returns a static init binary: the given one, $VMLINK_VM_INIT,
// vmlink-init next to the running executable (where mk/vm.mk puts it), or
// a fresh build into dir.
func findInit(ctx context.Context, given, dir string) (string, error) {
	cands := []string{given, os.Getenv("VMLINK_VM_INIT")}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), "vmlink-init"))
	}
	for i, c := range cands {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err != nil {
			if i < 2 { // named explicitly: must exist
				return "", fmt.Errorf("guest init %s: %w", c, err)
			}
			continue
		}
		static, err := IsStatic(c)
		if err != nil {
			return "", err
		}
		if !static {
			return "", fmt.Errorf("guest init %s is dynamically linked: build it with CGO_ENABLED=0", c)
		}
		return c, nil
	}
	return BuildInit(ctx, filepath.Join(dir, "vmlink-init"))
}

// BuildInit builds the guest init (CGO_ENABLED=0, linux/amd64) to out with
// the go tool; it works from any directory of a module that requires
// github.com/vmlink/vmlink.
func BuildInit(ctx context.Context, out string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, InitPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build guest init %s: %w: %s", InitPackage, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}
