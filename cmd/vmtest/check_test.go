package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheck boots the 6.1 kernel through `vmtest check` three ways: a good
// boot with every feature the VM tier expects, a kernel that cannot boot
// (its initramfs init is made unfindable, so it panics looking for a root
// file system), and a tier that expects a tool the guest lacks. The last
// two must fail, each with its own message and exit status.
func TestCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := buildRunner(ctx, t)
	// The subtests run in parallel, after TestCheck's own body returns:
	// each bounds its own run.
	vmtest := func(t *testing.T, env string, args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "vmtest"), args...)
		cmd.Env = append(os.Environ(), "VMLINK_EXPECT_FEATURES="+env)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("vmtest %v: %v", args, err)
		}
		t.Logf("vmtest %s:\n%s", strings.Join(args, " "), out)
		return string(out), cmd.ProcessState.ExitCode()
	}
	t.Run("boots", func(t *testing.T) {
		t.Parallel()
		// No list: the guest checks everything it should have.
		out, code := vmtest(t, "", "check", "--kernel", "6.1")
		if code != 0 {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		for _, want := range []string{"vmtest: kernel 6.1 (6.1.", ") boots: boot-to-test ", "vlan,", "ipvlan", "dummy", "tcpdump", "bridge_vlan"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
	t.Run("cannot boot", func(t *testing.T) {
		t.Parallel()
		out, code := vmtest(t, "", "check", "--kernel", "6.1", "--timeout", "3m", "--append", "console=ttyS0 panic=-1 rdinit=/nonexistent")
		if code != exitNoTest {
			t.Fatalf("exit %d, want %d:\n%s", code, exitNoTest, out)
		}
		for _, want := range []string{"VM boot failed on kernel 6.1: ", "guest kernel panic", "Kernel panic - not syncing", "console lines ---"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
	t.Run("missing feature", func(t *testing.T) {
		t.Parallel()
		out, code := vmtest(t, "vlan,tshark", "check", "--kernel", "6.1")
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		for _, want := range []string{"VM check failed on kernel 6.1: ", "guest check: vlan: ok", "guest check: tshark: FAIL", "lacks tshark"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
}

func TestGuestHas(t *testing.T) {
	out := "guest check: privileged: ok (root)\nguest check: vlan: ok\nguest check: tshark: FAIL: x\nguest check: netns: not checked\nnoise\n"
	if got := guestHas(out); got != "privileged,vlan" {
		t.Errorf("guestHas = %q, want privileged,vlan", got)
	}
	if got := guestHas(""); got != "no checked features" {
		t.Errorf("guestHas(\"\") = %q", got)
	}
}

func TestGuestCheckOutsideVM(t *testing.T) {
	t.Setenv("VMLINK_VM_KERNEL", "")
	var out, errb strings.Builder
	if code := run([]string{"guest-check"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "inside the VM only") {
		t.Errorf("guest-check outside the VM: exit %d, %q", code, errb.String())
	}
}
