package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv/vm"
)

// TestGoTestExec drives the real thing: go test -exec vmtest on a package
// whose test passes only inside the VM, then makes it fail through --env
// and checks go test sees the failure.
func TestGoTestExec(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := buildRunner(ctx, t)
	goTest := func(extra string) (string, error) {
		cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v",
			"-exec", filepath.Join(bin, "vmtest")+" --kernel 6.1 "+extra+" --", "./testdata/execpkg")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	out, err := goTest("")
	if err != nil {
		t.Fatalf("go test -exec vmtest failed: %v\n%s", err, out)
	}
	for _, want := range []string{"--- PASS: TestInsideVM", "running on 6.1.", "vmtest: execpkg.test on 6.1.", "boot-to-test", "\nok "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = goTest("--env VMTEST_E2E_FAIL=1")
	if err == nil {
		t.Fatalf("go test passed although the test failed in the VM:\n%s", out)
	}
	for _, want := range []string{"--- FAIL: TestInsideVM", "failing on purpose", "exit 1", "\nFAIL"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// buildRunner skips (or fails in CI) when qemu or the 6.1 kernel is not
// there, then builds vmtest and vmlink-init next to each other in a
// temporary directory and returns it.
func buildRunner(ctx context.Context, t *testing.T) string {
	t.Helper()
	if k := os.Getenv("VMLINK_VM_KERNEL"); k != "" {
		t.Skipf("already inside the VM runner's guest (kernel %s): qemu does not run nested here", k)
	}
	if testing.Short() {
		t.Skip("boots qemu; run without -short")
	}
	cache := vm.CacheDir()
	if os.Getenv("CI") == "true" {
		if err := vm.EnsureHostTools(ctx, cache, t.Logf); err != nil {
			t.Fatalf("CI=true and the VM runner's host tools cannot be installed: %v", err)
		}
		if _, err := vm.EnsureKernel(ctx, cache, "6.1", vm.FetchOptions{Log: t.Logf}); err != nil {
			t.Fatalf("CI=true and kernel 6.1 cannot be prepared: %v", err)
		}
	} else {
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			t.Skip("qemu-system-x86_64 is not installed: run `make vm-kernels`")
		}
		if _, err := vm.CachedKernel(cache, "6.1"); err != nil {
			t.Skipf("%v", err)
		}
	}
	bin := t.TempDir()
	for pkg, out := range map[string]string{".": "vmtest", vm.InitPackage: "vmlink-init"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, out), pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
	}
	return bin
}
