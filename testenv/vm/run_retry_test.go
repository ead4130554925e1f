package vm

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

// A boot that never reached the test is retried; anything the test itself
// did, or a failure that a second boot cannot fix, is not.
func TestRetryable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&VMError{Reason: ReasonBootHung}, true},
		{&VMError{Reason: ReasonPanic}, true},
		{fmt.Errorf("wrapped: %w", &VMError{Reason: ReasonBootHung}), true},
		{&VMError{Reason: ReasonNoResult}, true},
		{&VMError{Reason: ReasonNoResult, TestStarted: true}, false},
		{&VMError{Reason: ReasonPanic, TestStarted: true}, false},
		{&VMError{Reason: ReasonTimeout}, false},
		{&VMError{Reason: ReasonTimeout, TestStarted: true}, false},
		{&VMError{Reason: ReasonMissingModule}, false},
		{&VMError{Reason: ReasonInitFailed}, false},
		{&VMError{Reason: ReasonInterrupted}, false},
		{&VMError{Reason: ReasonQemu}, false},
		{errors.New("exit status 1"), false},
		{nil, false},
	}
	for _, c := range cases {
		if got := retryable(c.err); got != c.want {
			t.Errorf("retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestBootDefaults(t *testing.T) {
	o := withDefaults(Options{}, nil)
	if o.BootTimeout != DefaultBootTimeout || o.BootRetries != 1 {
		t.Errorf("defaults: boot timeout %v, retries %d; want %v, 1", o.BootTimeout, o.BootRetries, DefaultBootTimeout)
	}
	o = withDefaults(Options{Timeout: 30e9}, nil)
	if o.BootTimeout != o.Timeout {
		t.Errorf("boot timeout %v above the run's timeout %v", o.BootTimeout, o.Timeout)
	}
	if s := ReasonBootHung.String(); s != "guest hung before the test started" {
		t.Errorf("ReasonBootHung.String() = %q", s)
	}
}

// Only a run that died before its test started, in a way KVM can cause,
// is booted again under TCG.
func TestKVMBootFailed(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&VMError{Reason: ReasonQemu}, true},
		{&VMError{Reason: ReasonNoResult}, true},
		{&VMError{Reason: ReasonBootHung}, true},
		{fmt.Errorf("wrapped: %w", &VMError{Reason: ReasonPanic}), true},
		{&VMError{Reason: ReasonQemu, TestStarted: true}, false},
		{&VMError{Reason: ReasonMissingModule}, false},
		{&VMError{Reason: ReasonInitFailed}, false},
		{&VMError{Reason: ReasonInterrupted}, false},
		{&VMError{Reason: ReasonTimeout, TestStarted: true}, false},
		{errors.New("exit status 1"), false},
		{nil, false},
	}
	for _, c := range cases {
		if got := kvmBootFailed(c.err); got != c.want {
			t.Errorf("kvmBootFailed(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// "auto" tries KVM only where /dev/kvm opens and no KVM failure was
// recorded for this host boot; an explicit accelerator is kept as given.
func TestAutoAccel(t *testing.T) {
	record := filepath.Join(t.TempDir(), "kvm-failed")
	defer swapKVMProbes(func() bool { return true }, func() string { return record })()
	if o := withDefaults(Options{}, nil); o.Accel != "kvm" || !o.autoAccel {
		t.Fatalf("auto with a usable /dev/kvm: accel %q (auto %v), want kvm", o.Accel, o.autoAccel)
	}
	if !recordKVMFailure("qemu aborted") || recordKVMFailure("again") {
		t.Fatal("the first record must announce, the second must not")
	}
	if o := withDefaults(Options{}, nil); o.Accel != "tcg" {
		t.Fatalf("auto after a recorded KVM failure: accel %q, want tcg", o.Accel)
	}
	if o := withDefaults(Options{Accel: "kvm"}, nil); o.Accel != "kvm" || o.autoAccel {
		t.Fatalf("explicit kvm: accel %q (auto %v), want kvm kept", o.Accel, o.autoAccel)
	}
	defer swapKVMProbes(func() bool { return false }, func() string { return filepath.Join(t.TempDir(), "none") })()
	if o := withDefaults(Options{}, nil); o.Accel != "tcg" {
		t.Fatalf("auto without /dev/kvm: accel %q, want tcg", o.Accel)
	}
}

// swapKVMProbes replaces the KVM probes and returns what restores them.
func swapKVMProbes(opens func() bool, path func() string) func() {
	o, p := kvmOpens, kvmFailurePath
	kvmOpens, kvmFailurePath = opens, path
	return func() { kvmOpens, kvmFailurePath = o, p }
}
