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
	// module name; default ModuleParams).
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

// bootAccel boots once under the accelerator withDefaults chose. Machines
// differ: on some, /dev/kvm exists but qemu aborts under KVM (no vmx flag,
// "kvm_buf_set_msrs: Assertion ... failed"). When "auto" chose KVM and the
// boot failed before the test started, the run boots again under TCG; the
// first such fallback on this machine is announced on Stderr and recorded
// (kvmFailure), so later runs go straight to TCG and say nothing more.
// The fallback is no boot retry: those still apply under TCG.
func bootAccel(ctx context.Context, o *Options, p *prepared) (*Result, error) {
	res, err := boot(ctx, o, p)
	if !o.autoAccel || o.Accel != "kvm" || !kvmBootFailed(err) {
		return res, err
	}
	reason := firstLine(err)
	var ve *VMError
	if errors.As(err, &ve) && len(ve.Console) > 0 {
		reason += ": " + ve.Console[len(ve.Console)-1] // qemu's own last words, e.g. its KVM assertion
	}
	if recordKVMFailure(reason) {
		fmt.Fprintf(o.Notices, "vmtest: qemu failed under KVM (%s); using TCG instead on this machine (--accel tcg skips the KVM attempt)\n", reason)
	} else {
		o.logf("qemu failed under KVM (%s); using TCG", reason)
	}
	o.Accel = "tcg"
	return boot(ctx, o, p)
}

// kvmBootFailed reports whether err is a run that died before its test
// started in a way KVM can cause: qemu aborted or exited, the guest hung
// or panicked while booting. A missing module, an init failure or an
// interrupt would fail the same way under TCG.
func kvmBootFailed(err error) bool {
	var ve *VMError
	if !errors.As(err, &ve) || ve.TestStarted {
		return false
	}
	switch ve.Reason {
	case ReasonQemu, ReasonNoResult, ReasonBootHung, ReasonPanic:
		return true
	}
	return false
}

// kvmOpens reports whether /dev/kvm can be opened: the first condition
// for trying KVM. Tests replace it.
var kvmOpens = func() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// kvmFailurePath is where a failed KVM boot is recorded: one file per
// host boot (the kernel's boot_id), so it never outlives the machine
// state it describes. Tests replace it.
var kvmFailurePath = func() string {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return filepath.Join(os.TempDir(), "vmtest-kvm-failed-"+strings.TrimSpace(string(id)))
}

// kvmFailure returns the recorded reason KVM failed on this host boot, or "".
func kvmFailure() string {
	path := kvmFailurePath()
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// recordKVMFailure records reason and reports whether this run was the
// first to do so (concurrent runners race; one of them announces).
func recordKVMFailure(reason string) bool {
	path := kvmFailurePath()
	if path == "" {
		return true
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return !errors.Is(err, os.ErrExist)
	}
	defer f.Close()
	fmt.Fprintln(f, reason)
	return true
}

// retryable reports whether err is a VM failure that happened before the
// test started: a hung boot or a kernel panic during boot. Everything else
// (the test's own exit status, a timeout of a running test, a missing
// module, an interrupt) is reported as it is.
func retryable(err error) bool {
	var ve *VMError
	if !errors.As(err, &ve) || ve.TestStarted {
		return false
	}
	switch ve.Reason {
	case ReasonBootHung, ReasonPanic:
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
		o.Modules = DefaultModules
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

// TestTimeout returns the -test.timeout value in argv, 0 if none.
func TestTimeout(argv []string) time.Duration {
	for _, a := range argv {
		if v, ok := strings.CutPrefix(a, "-test.timeout="); ok {
			d, err := time.ParseDuration(v)
			if err == nil {
				return d
			}
		}
	}
	return 0
}

// fileFlags are go test binary flags naming files the binary writes.
var fileFlags = []string{"testlogfile", "coverprofile", "cpuprofile", "memprofile", "blockprofile", "mutexprofile", "trace"}

// TestFiles finds the files and directories a go test binary will write,
// from its flags: the guest must create their parents (they usually live
// in go test's build directory under /tmp) and the host wants them back
// (-coverprofile, -cpuprofile, -test.gocoverdir, and -test.testlogfile,
// which go test itself only passes without -exec).
// Relative profile paths are relative to -test.outputdir, as in package
// testing.
func TestFiles(argv []string) (mkdirs, collect []string) {
	var outputdir string
	vals := map[string]string{}
	for _, a := range argv {
		a = "-" + strings.TrimLeft(a, "-")
		k, v, ok := strings.Cut(strings.TrimPrefix(a, "-test."), "=")
		if !ok || !strings.HasPrefix(a, "-test.") || v == "" {
			continue
		}
		switch k {
		case "outputdir":
			outputdir = v
		case "gocoverdir":
			mkdirs = append(mkdirs, v)
			collect = append(collect, v)
		default:
			vals[k] = v
		}
	}
	for _, k := range fileFlags {
		v, ok := vals[k]
		if !ok {
			continue
		}
		if !filepath.IsAbs(v) && outputdir != "" && k != "testlogfile" {
			v = filepath.Join(outputdir, v)
		}
		if !filepath.IsAbs(v) {
			continue // relative to the working directory, which exists
		}
		mkdirs = append(mkdirs, filepath.Dir(v))
		collect = append(collect, v)
	}
	return mkdirs, collect
}

// GuestEnv builds the test's environment: a fixed base; CI and
// VMLINK_EXPECT_FEATURES from the host when it sets them (the tiers of
// `make test` do), else CI=true and ExpectFeatures, since the VM is a known
// environment whose skips should be failures; the other VMLINK_* and a few
// Go runtime variables forwarded from the host; then extra (later wins).
func GuestEnv(host []string, kernel string, extra []string) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"TMPDIR=/tmp",
		"USER=root",
		"TERM=dumb",
		"CI=true",
		"VMLINK_EXPECT_FEATURES=" + ExpectFeatures,
	}
	// Variables that describe the host, not the guest, stay behind.
	hostOnly := map[string]bool{"VMLINK_VM_KERNEL": true, "VMLINK_KERNEL_CACHE": true, "VMLINK_VM_INIT": true, "VMLINK_VMTEST_STATS": true}
	for _, kv := range host {
		k, _, _ := strings.Cut(kv, "=")
		if (strings.HasPrefix(k, "VMLINK_") && !hostOnly[k]) || k == "CI" || k == "GOTRACEBACK" || k == "GODEBUG" {
			env = append(env, kv)
		}
	}
	env = append(env, "VMLINK_VM_KERNEL="+kernel)
	env = append(env, extra...)
	// Deduplicate, keeping the last value at the first position.
	last := map[string]string{}
	var order []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := last[k]; !ok {
			order = append(order, k)
		}
		last[k] = kv
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, last[k])
	}
	return out
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
	base, err := BuildBase(ctx, k, BaseOptions{Modules: o.Modules, HostBinaries: o.HostBinaries, OptionalBinaries: DefaultHostBinaries, ModuleParams: o.ModuleParams})
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
