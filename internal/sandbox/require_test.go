package sandbox

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseFeatures(t *testing.T) {
	for _, f := range AllFeatures() {
		got, err := ParseFeature(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFeature(%q) = %v, %v; want %v", f.String(), got, err, f)
		}
	}
	// The lists the tiers set (see the report to the Makefile's owner) and
	// the VM runner's, which says "netns" for privileged.
	for _, list := range []string{
		"privileged,macvlan,macvtap,veth,bridge,ip,tcpdump,tshark,strace",
		"privileged,macvlan,macvtap,veth,bridge,bridge_vlan,vlan,ipvlan,dummy,ip,tcpdump",
		"vlan,ipvlan,dummy,macvlan,macvtap,veth,bridge,netns,privileged",
		" VLAN , ,ip",
		"",
	} {
		if _, err := ParseFeatures(list); err != nil {
			t.Errorf("ParseFeatures(%q): %v", list, err)
		}
	}
	fs, err := ParseFeatures("vlan,8021q,macvlan")
	if err == nil || !strings.Contains(err.Error(), `"8021q"`) {
		t.Errorf("unknown name: err = %v, want it named", err)
	}
	if len(fs) != 2 || fs[0] != FeatureVLAN || fs[1] != FeatureMacvlan {
		t.Errorf("known names alongside an unknown one: %v", fs)
	}
	if s := Feature(0).String(); s != "Feature(0)" {
		t.Errorf("zero Feature prints %q", s)
	}
}

func TestDecide(t *testing.T) {
	missing := &NotSupportedError{Feature: FeatureVLAN,
		Reason:  "kernel 6.18.0 has no 8021q (create vlan link: operation not supported)",
		Instead: "run `make test-vm KERNEL=6.1`", Err: unix.EOPNOTSUPP}
	noTool := &NotSupportedError{Feature: FeatureTshark, Reason: "tshark is not installed", Instead: "install it"}
	broken := fmt.Errorf("probe vlan: create veth: %w", unix.ENOMEM)
	expect := func(fs ...Feature) map[Feature]bool {
		m := map[Feature]bool{}
		for _, f := range fs {
			m[f] = true
		}
		return m
	}
	for _, tt := range []struct {
		name   string
		f      Feature
		err    error
		env    Env
		want   Action
		inMsg  []string
		notMsg string
	}{
		{"supported", FeatureVLAN, nil, Env{}, Run, nil, ""},
		{"supported in CI", FeatureVLAN, nil, Env{CI: true, Expect: expect(FeatureVLAN)}, Run, nil, ""},
		{"missing outside CI", FeatureVLAN, missing, Env{Expect: expect(FeatureVLAN)}, Skip,
			[]string{"needs vlan", "no 8021q", "make test-vm KERNEL=6.1"}, ""},
		{"missing in CI, not expected", FeatureVLAN, missing, Env{CI: true, Expect: expect(FeatureMacvlan)}, Skip,
			[]string{"no 8021q", "make test-vm"}, ""},
		{"missing in CI, expected", FeatureVLAN, missing, Env{CI: true, Expect: expect(FeatureVLAN)}, Fail,
			[]string{"CI=true", "VMLINK_EXPECT_FEATURES lists vlan", "no 8021q"}, ""},
		{"missing in CI, no list", FeatureVLAN, missing, Env{CI: true}, Skip, []string{"no 8021q"}, ""},
		{"short skips privileged features", FeatureVLAN, nil, Env{Short: true}, Skip,
			[]string{"-short", "unit tier", "root"}, ""},
		{"short skips even in CI when expected", FeaturePrivileged, nil, Env{Short: true, CI: true, Expect: expect(FeaturePrivileged)}, Skip,
			[]string{"-short"}, ""},
		{"short runs tools", FeatureTshark, nil, Env{Short: true}, Run, nil, ""},
		{"short, missing tool", FeatureTshark, noTool, Env{Short: true}, Skip, []string{"tshark is not installed", "install it"}, "-short"},
		{"short, missing expected tool in CI", FeatureTshark, noTool, Env{Short: true, CI: true, Expect: expect(FeatureTshark)}, Fail,
			[]string{"lists tshark"}, ""},
		{"probe failed", FeatureVLAN, broken, Env{}, Fail, []string{"cannot tell", "cannot allocate memory"}, ""},
		{"probe failed in CI", FeatureVLAN, broken, Env{CI: true}, Fail, []string{"cannot tell"}, ""},
		{"bad expectation list in CI", FeatureMacvlan, nil, Env{CI: true, ExpectErr: errors.New(`unknown feature "8021q"`)}, Fail,
			[]string{"expected features cannot be read", "8021q"}, ""},
		{"bad expectation list outside CI", FeatureMacvlan, nil, Env{ExpectErr: errors.New(`unknown feature "8021q"`)}, Run, nil, ""},
		{"invalid feature", Feature(0), nil, Env{}, Fail, []string{"not a valid feature"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := Decide(tt.f, tt.err, tt.env)
			if got != tt.want {
				t.Fatalf("Decide = %v (%q), want %v", got, msg, tt.want)
			}
			if got == Run && msg != "" {
				t.Errorf("run with message %q", msg)
			}
			for _, s := range tt.inMsg {
				if !strings.Contains(msg, s) && !strings.Contains(msg, strings.ToLower(s)) {
					t.Errorf("message %q lacks %q", msg, s)
				}
			}
			if tt.notMsg != "" && strings.Contains(msg, tt.notMsg) {
				t.Errorf("message %q has %q", msg, tt.notMsg)
			}
		})
	}
}

func TestEnvFromOS(t *testing.T) {
	t.Setenv("CI", "true")
	t.Setenv(ExpectEnv, "netns,vlan,tcpdump")
	e := EnvFromOS()
	if !e.CI || e.ExpectErr != nil {
		t.Fatalf("env %+v", e)
	}
	for _, f := range []Feature{FeaturePrivileged, FeatureVLAN, FeatureTcpdump} {
		if !e.Expect[f] {
			t.Errorf("%v not expected", f)
		}
	}
	if e.Expect[FeatureTshark] {
		t.Error("tshark expected")
	}
	t.Setenv("CI", "1") // only "true" means CI, as the tier scripts set it
	t.Setenv(ExpectEnv, "vlan,bogus")
	if e := EnvFromOS(); e.CI || e.ExpectErr == nil {
		t.Errorf("env %+v", e)
	}
}

func TestNotSupportedError(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &NotSupportedError{Feature: FeatureVLAN, Reason: "r", Instead: "i", Err: unix.EOPNOTSUPP})
	if !errors.Is(err, ErrNotSupported) || !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("%v: errors.Is fails", err)
	}
	if got := err.Error(); got != "wrapped: r: i" {
		t.Errorf("Error() = %q", got)
	}
}
