package vm

import (
	"errors"
	"fmt"
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
