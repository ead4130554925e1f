package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The integration tests boot real Debian kernels under qemu. They need
// qemu-system-x86_64 and the kernels in the cache (make vm-kernels); without
// them they skip, except in CI (CI=true), where they fetch what is missing
// and fail if that is impossible: the VM tier must never silently vanish.

var (
	buildOnce sync.Once
	initBin   string
	progBin   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// booted records the tests that have booted qemu in this process. Under
// `go test -count=N` the repetitions are there for the sandbox packages'
// name uniqueness and cleanup, which two processes exercise against each
// other; booting the same guests N times adds nothing but minutes (N=20
// would exceed go test's 10-minute timeout), so each test boots once.
var (
	bootedMu sync.Mutex
	booted   = map[string]bool{}
)

// requireVM returns the kernel for series, or skips/fails with the reason.
func requireVM(t *testing.T, series string) *Kernel {
	t.Helper()
	if k := os.Getenv("VMLINK_VM_KERNEL"); k != "" {
		t.Skipf("already inside the VM runner's guest (kernel %s): qemu does not run nested here", k)
	}
	if testing.Short() {
		t.Skip("boots qemu (seconds per run); run without -short")
	}
	bootedMu.Lock()
	again := booted[t.Name()]
	booted[t.Name()] = true
	bootedMu.Unlock()
	if again {
		t.Skip("booted qemu for this test earlier in this process (go test -count): once per process is enough")
	}
	ci := os.Getenv("CI") == "true"
	cache := CacheDir()
	if !ci {
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			t.Skip("qemu-system-x86_64 is not installed: run `make vm-kernels` (installs qemu-system-x86 and fetches the kernels)")
		}
		k, err := CachedKernel(cache, series)
		if err != nil {
			t.Skipf("%v", err)
		}
		return k
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := EnsureHostTools(ctx, cache, t.Logf); err != nil {
		t.Fatalf("CI=true and the VM runner's host tools cannot be installed: %v", err)
	}
	k, err := EnsureKernel(ctx, cache, series, FetchOptions{Log: t.Logf})
	if err != nil {
		t.Fatalf("CI=true and kernel %s cannot be prepared in %s: %v", series, cache, err)
	}
	return k
}

// buildGuestBinaries builds the init and the guest test program, static,
// once per test process.
func buildGuestBinaries(t *testing.T) (initPath, prog string) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "vmtest-build-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		initBin, buildErr = BuildInit(ctx, filepath.Join(buildDir, "vmlink-init"))
		if buildErr != nil {
			return
		}
		progBin = filepath.Join(buildDir, "guestprog")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", progBin, "./testdata/guestprog")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("build guestprog: " + err.Error() + ": " + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return initBin, progBin
}

type vmRun struct {
	res            *Result
	err            error
	stdout, stderr string
}

func runGuest(t *testing.T, k *Kernel, o Options, dir string, args ...string) vmRun {
	t.Helper()
	initPath, prog := buildGuestBinaries(t)
	var stdout, stderr, notices bytes.Buffer
	var mu sync.Mutex
	o.Kernel = k.Root
	o.Init = initPath
	o.Stdout, o.Stderr = &stdout, &stderr
	if o.Notices == nil {
		// The runner's announcements (a boot retry) are not the guest's
		// stderr, which the tests compare exactly.
		o.Notices = &notices
	}
	o.Log = func(f string, a ...any) { mu.Lock(); defer mu.Unlock(); t.Logf(f, a...) }
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout+time.Minute)
	defer cancel()
	res, err := Run(ctx, o, append([]string{prog}, args...), dir)
	if notices.Len() > 0 {
		t.Logf("runner: %s", strings.TrimSpace(notices.String()))
	}
	if res != nil {
		t.Logf("kernel %s: boot-to-test %.2fs, test %.2fs, vm %.2fs", res.Kernel, res.BootToTest.Seconds(), res.Test.Seconds(), res.VM.Seconds())
	}
	return vmRun{res, err, stdout.String(), stderr.String()}
}

// TestIntegrationPass runs a passing program on every kernel series: exit
// status 0, stdout and stderr come back separately, 8021q and the other
// link modules are loaded, testdata/ is there, the environment is set.
func TestIntegrationPass(t *testing.T) {
	for _, series := range DefaultSeries() {
		t.Run(series, func(t *testing.T) {
			t.Parallel()
			k := requireVM(t, series)
			dir := t.TempDir() // under /tmp, which the guest mounts a tmpfs over
			if err := os.MkdirAll(filepath.Join(dir, "testdata"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "testdata", "hello.txt"), []byte("from the host"), 0o644); err != nil {
				t.Fatal(err)
			}
			r := runGuest(t, k, Options{Env: []string{"VMTEST_EXTRA=yes"}}, dir,
				"hello", "vlan", "testdata", "env=CI,VMLINK_EXPECT_FEATURES,VMTEST_EXTRA,VMLINK_VM_KERNEL")
			if r.err != nil {
				t.Fatalf("run: %v\nstdout:\n%s", r.err, r.stdout)
			}
			if r.res.ExitCode != 0 {
				t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.res.ExitCode, r.stdout, r.stderr)
			}
			features := ExpectFeatures // the host's list passes through when set
			if f, ok := os.LookupEnv("VMLINK_EXPECT_FEATURES"); ok {
				features = f
			}
			for _, want := range []string{
				"guestprog: hello from the guest",
				"guestprog: 8021q loaded",
				`guestprog: cwd ` + dir + ` testdata "from the host"`,
				"guestprog: CI=true",
				"guestprog: VMLINK_EXPECT_FEATURES=" + features,
				"guestprog: VMTEST_EXTRA=yes",
				"guestprog: VMLINK_VM_KERNEL=" + k.Version,
			} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			if r.stderr != "guestprog: hello on stderr\n" || strings.Contains(r.stdout, "on stderr") {
				t.Errorf("stderr %q: want exactly the stderr line, and not on stdout", r.stderr)
			}
			if r.res.BootToTest <= 0 || r.res.Kernel != k.Version {
				t.Errorf("result %+v: want a boot time and kernel %s", r.res, k.Version)
			}
		})
	}
}

// TestIntegrationNetstampHeld runs, on every kernel series, a guest that
// opens and closes timestamping sockets under loopback traffic: the pattern
// of verify's many short captures. Without init's hold on the timestamp
// switch (Options.FreeNetstamp) this crashed 6.12 under TCG within a second
// in every boot measured ("Oops: int3" in __netif_receive_skb_core); with
// it, the guest must run the whole time and exit 0.
func TestIntegrationNetstampHeld(t *testing.T) {
	for _, series := range DefaultSeries() {
		t.Run(series, func(t *testing.T) {
			t.Parallel()
			k := requireVM(t, series)
			r := runGuest(t, k, Options{}, "", "netstamp=10s")
			if r.err != nil {
				t.Fatalf("run: %v\nstdout:\n%s", r.err, r.stdout)
			}
			if r.res.ExitCode != 0 || !strings.Contains(r.stdout, "guestprog: netstamp: ") {
				t.Fatalf("exit %d, want 0 and the netstamp summary\nstdout:\n%s\nstderr:\n%s", r.res.ExitCode, r.stdout, r.stderr)
			}
			t.Log(strings.TrimSpace(r.stdout))
		})
	}
}

// TestIntegrationFailures checks that every way a run can go wrong is
// reported as such and never as a pass.
func TestIntegrationFailures(t *testing.T) {
	k := requireVM(t, "6.1")
	t.Run("exit status", func(t *testing.T) {
		t.Parallel()
		r := runGuest(t, k, Options{}, "", "hello", "exit=7")
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.res.ExitCode != 7 {
			t.Fatalf("exit %d, want 7", r.res.ExitCode)
		}
		if !strings.Contains(r.stdout, "hello from the guest") {
			t.Errorf("output of the failing program lost: %q", r.stdout)
		}
	})
	t.Run("kernel panic", func(t *testing.T) {
		t.Parallel()
		r := runGuest(t, k, Options{}, "", "panic")
		assertVMError(t, r, ReasonPanic, "sysrq triggered crash")
		var ve *VMError
		if errors.As(r.err, &ve) && len(ve.Console) == 0 {
			t.Error("no console lines in the panic report")
		}
	})
	t.Run("hang", func(t *testing.T) {
		t.Parallel()
		r := runGuest(t, k, Options{Timeout: 20 * time.Second}, "", "hang")
		assertVMError(t, r, ReasonTimeout, "no test result after 20s")
	})
	t.Run("init failure", func(t *testing.T) {
		t.Parallel()
		r := runGuest(t, k, Options{Checks: []string{"/proc/net/vlan/config", "/nonexistent/by/design"}}, "", "hello")
		assertVMError(t, r, ReasonInitFailed, "/nonexistent/by/design")
		if strings.Contains(r.stdout, "hello") {
			t.Error("the test ran although init failed")
		}
	})
	t.Run("no result channel", func(t *testing.T) {
		t.Parallel()
		// Without virtio_console (a module on 6.1) the port never
		// appears; init can only say so on the console.
		r := runGuest(t, k, Options{Modules: []string{"8021q"}}, "", "hello")
		assertVMError(t, r, ReasonInitFailed, "no virtio-serial port named vmlink.0")
	})
	t.Run("module fails to load", func(t *testing.T) {
		t.Parallel()
		// The guest loads dummy with a parameter the kernel rejects:
		// finit_module fails inside the VM, and the report carries the
		// kernel's own complaint from the console.
		r := runGuest(t, k, Options{ModuleParams: map[string]string{"dummy": "numdummies=notanumber"}}, "", "hello")
		assertVMError(t, r, ReasonMissingModule, "load module dummy")
		if !strings.Contains(r.err.Error(), "numdummies") {
			t.Errorf("the kernel's console lines about the rejected parameter are missing:\n%v", r.err)
		}
		if strings.Contains(r.stdout, "hello") {
			t.Error("the test ran although a module failed to load")
		}
	})
	t.Run("missing module", func(t *testing.T) {
		r := runGuest(t, k, Options{Modules: []string{"8021q", "no_such_module"}}, "", "hello")
		assertVMError(t, r, ReasonMissingModule, "no_such_module")
	})
}

func assertVMError(t *testing.T, r vmRun, reason Reason, detail string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("run passed with exit %d; want a %v failure\nstdout:\n%s", r.res.ExitCode, reason, r.stdout)
	}
	var ve *VMError
	if !errors.As(r.err, &ve) {
		t.Fatalf("error %v is not a *VMError", r.err)
	}
	if ve.Reason != reason {
		t.Fatalf("reason %v, want %v:\n%v", ve.Reason, reason, r.err)
	}
	if !strings.Contains(r.err.Error(), detail) {
		t.Fatalf("error lacks %q:\n%v", detail, r.err)
	}
	t.Logf("reported as: %s", strings.SplitN(r.err.Error(), "\n", 2)[0])
}

// TestIntegrationKVMFallback boots through a qemu that aborts under KVM, as
// qemu does on machines whose /dev/kvm exists without usable VMX
// ("kvm_buf_set_msrs: Assertion ... failed"): "auto" must say so once and
// pass under TCG, and a later run must go straight to TCG.
func TestIntegrationKVMFallback(t *testing.T) {
	k := requireVM(t, "6.1")
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	fake := filepath.Join(dir, "qemu")
	script := `#!/bin/sh
echo "$*" >> ` + calls + `
case " $* " in *" -accel kvm "*)
	echo "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed." >&2
	kill -ABRT $$ ;;
esac
exec qemu-system-x86_64 "$@"
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	defer swapKVMProbes(func() bool { return true }, func() string { return filepath.Join(dir, "kvm-failed") })()

	for i, wantCalls := range []int{2, 3} {
		var notices bytes.Buffer
		r := runGuest(t, k, Options{Qemu: fake, Notices: &notices}, "", "hello")
		if r.err != nil || r.res.ExitCode != 0 {
			t.Fatalf("run %d: err %v, result %+v; want a pass under TCG\nnotices: %s", i+1, r.err, r.res, notices.String())
		}
		b, _ := os.ReadFile(calls)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != wantCalls || !strings.Contains(lines[len(lines)-1], "-accel tcg") {
			t.Fatalf("run %d: qemu calls %q; want %d, the last under tcg", i+1, lines, wantCalls)
		}
		announced := strings.Contains(notices.String(), "qemu failed under KVM") && strings.Contains(notices.String(), "kvm_buf_set_msrs")
		if announced != (i == 0) {
			t.Errorf("run %d: notices %q; want the fallback announced (with qemu's assertion) on the first run only", i+1, notices.String())
		}
	}
}
