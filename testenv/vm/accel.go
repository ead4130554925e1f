package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

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
