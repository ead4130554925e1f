package sandbox

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// ExpectEnv is the environment variable listing, comma-separated, the
// features the environment is supposed to have (names as Feature.String
// prints them, e.g. "privileged,macvlan,veth,ip"). The test tiers set it;
// under CI=true a test needing a listed feature fails instead of skipping
// when the feature turns out to be missing.
const ExpectEnv = "VMLINK_EXPECT_FEATURES"

// Env is what Require's decision depends on besides the probe result.
type Env struct {
	// CI is true when CI=true: skips of expected features become failures.
	CI bool
	// Short is testing.Short(): the unit tier, which runs nothing
	// privileged.
	Short bool
	// Expect are the features the environment is supposed to have.
	Expect map[Feature]bool
	// ExpectErr is a parse error of the expectation list (an unknown
	// name); under CI it fails every Require, since a typo there would
	// silently turn failures back into skips.
	ExpectErr error
}

// EnvFromOS reads CI, VMLINK_EXPECT_FEATURES and testing.Short().
func EnvFromOS() Env {
	e := Env{CI: os.Getenv("CI") == "true", Short: testing.Short(), Expect: map[Feature]bool{}}
	fs, err := ParseFeatures(os.Getenv(ExpectEnv))
	for _, f := range fs {
		e.Expect[f] = true
	}
	if err != nil {
		e.ExpectErr = fmt.Errorf("%s: %w", ExpectEnv, err)
	}
	return e
}

// Action is what Require does with a test.
type Action uint8

const (
	actionInvalid Action = iota
	Run                  // the feature is there: go on
	Skip                 // missing here, and nobody said it would be
	Fail                 // missing (or unknowable) where it must not be
)

func (a Action) String() string {
	switch a {
	case Run:
		return "run"
	case Skip:
		return "skip"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Decide is Require's decision for one feature, a pure function of the
// probe's answer (nil, a NotSupportedError, or a probe failure) and env.
// The message says why, and what to run instead.
func Decide(f Feature, probeErr error, env Env) (Action, string) {
	if !f.valid() {
		return Fail, fmt.Sprintf("testenv: %v is not a valid feature", f)
	}
	if env.CI && env.ExpectErr != nil {
		return Fail, fmt.Sprintf("CI=true and the expected features cannot be read: %v", env.ExpectErr)
	}
	if env.Short && f.NeedsPrivileges() {
		return Skip, fmt.Sprintf("needs %s, which takes root: skipped with -short (unit tier); run without -short as root (`make test-priv`)", f)
	}
	if probeErr == nil {
		return Run, ""
	}
	if !errors.Is(probeErr, ErrNotSupported) {
		// The probe could not tell: never guess, never skip silently.
		return Fail, fmt.Sprintf("cannot tell whether this environment has %s: %v", f, probeErr)
	}
	if env.CI && env.Expect[f] {
		return Fail, fmt.Sprintf("CI=true and %s lists %s, but %v", ExpectEnv, f, probeErr)
	}
	return Skip, fmt.Sprintf("needs %s: %v", f, probeErr)
}

// Require makes the test go on only if the environment has every feature
// in fs. A missing feature skips the test with the exact reason and what to
// run instead, unless the environment is supposed to have it (CI=true and
// VMLINK_EXPECT_FEATURES lists it): then the test fails. With -short
// (the unit tier) every feature that needs root skips.
func Require(tb testing.TB, fs ...Feature) {
	tb.Helper()
	env := EnvFromOS()
	for _, f := range fs {
		var err error
		if !(env.Short && f.NeedsPrivileges()) {
			err = Probe(f)
		}
		switch action, msg := Decide(f, err, env); action {
		case Run:
		case Skip:
			tb.Skip(msg)
		default:
			tb.Fatal(msg)
		}
	}
}
