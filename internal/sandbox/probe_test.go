package sandbox

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// ipReference creates the same link kind with iproute2 in a fresh
// namespace: an independent answer to "does this kernel have it".
var ipReference = map[Feature][][]string{
	FeatureVeth:       {{"link", "add", "r0", "type", "veth", "peer", "name", "r1"}},
	FeatureBridge:     {{"link", "add", "r0", "type", "bridge"}},
	FeatureBridgeVLAN: {{"link", "add", "r0", "type", "bridge", "vlan_filtering", "1"}},
	FeatureDummy:      {{"link", "add", "r0", "type", "dummy"}},
	FeatureMacvlan:    {{"link", "add", "rp0", "type", "veth", "peer", "name", "rp1"}, {"link", "add", "r0", "link", "rp0", "type", "macvlan", "mode", "bridge"}},
	FeatureMacvtap:    {{"link", "add", "rp0", "type", "veth", "peer", "name", "rp1"}, {"link", "add", "r0", "link", "rp0", "type", "macvtap", "mode", "bridge"}},
	FeatureVLAN:       {{"link", "add", "rp0", "type", "veth", "peer", "name", "rp1"}, {"link", "add", "r0", "link", "rp0", "type", "vlan", "id", "10"}},
	FeatureIPVlan:     {{"link", "add", "rp0", "type", "veth", "peer", "name", "rp1"}, {"link", "add", "r0", "link", "rp0", "type", "ipvlan", "mode", "l2"}},
}

// TestProbesAgreeWithIP checks every kernel probe against iproute2 doing
// the same in a namespace of its own, on whatever kernel runs the test
// (this machine: macvlan yes, 8021q no; the VM: both).
func TestProbesAgreeWithIP(t *testing.T) {
	Require(t, FeaturePrivileged, FeatureIPRoute2)
	for _, f := range AllFeatures() {
		if !f.NeedsPrivileges() || f == FeaturePrivileged {
			continue
		}
		t.Run(f.String(), func(t *testing.T) {
			steps, ok := ipReference[f]
			if !ok {
				t.Fatalf("no iproute2 reference for %s", f)
			}
			probeErr := Probe(f)
			if probeErr != nil && !errors.Is(probeErr, ErrNotSupported) {
				t.Fatalf("probe could not tell: %v", probeErr)
			}
			n := NewNetNS(t)
			var ipErr error
			for _, s := range steps {
				if _, ipErr = n.Exec(context.Background(), "ip", s...); ipErr != nil {
					break
				}
			}
			t.Logf("probe: %v; ip: %v", probeErr, ipErr)
			if (probeErr == nil) != (ipErr == nil) {
				t.Fatalf("probe says %v, iproute2 says %v", probeErr, ipErr)
			}
			if ipErr != nil && !strings.Contains(ipErr.Error(), "not supported") && !strings.Contains(ipErr.Error(), "Unknown device type") {
				t.Errorf("iproute2 failed for another reason than a missing kind: %v", ipErr)
			}
			if probeErr != nil {
				var ns *NotSupportedError
				if !errors.As(probeErr, &ns) || ns.Feature != f {
					t.Fatalf("%v is not a NotSupportedError for %s", probeErr, f)
				}
				for _, want := range []string{features[f].module, "make test-vm KERNEL="} {
					if !strings.Contains(probeErr.Error(), strings.Fields(want)[0]) {
						t.Errorf("reason %q does not say %q", probeErr, want)
					}
				}
			}
		})
	}
}

// TestProbesMeetExpectations: whatever the tier says the environment has
// (VMLINK_EXPECT_FEATURES), the probes must find.
func TestProbesMeetExpectations(t *testing.T) {
	list := os.Getenv(ExpectEnv)
	if list == "" {
		t.Skipf("%s is not set: no expectations to check (the test tiers set it)", ExpectEnv)
	}
	fs, err := ParseFeatures(list)
	if err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		var tools []Feature
		for _, f := range fs {
			if f.IsTool() {
				tools = append(tools, f)
			}
		}
		fs = tools
	}
	for _, f := range fs {
		if err := Probe(f); err != nil {
			t.Errorf("%s lists %s, but: %v", ExpectEnv, f, err)
		}
	}
}

func TestToolProbes(t *testing.T) {
	for _, f := range AllFeatures() {
		if !f.IsTool() {
			continue
		}
		_, lookErr := exec.LookPath(features[f].tool)
		err := Probe(f)
		t.Logf("%s: %v", f, err)
		switch {
		case lookErr != nil && !errors.Is(err, ErrNotSupported):
			t.Errorf("%s is not in PATH, yet the probe says %v", f, err)
		case lookErr != nil && !strings.Contains(err.Error(), "apt-get install "+toolPackages[f]):
			t.Errorf("%s: reason %q does not say how to install it", f, err)
		case lookErr == nil && err != nil:
			t.Errorf("%s is in PATH but the probe says %v", f, err)
		}
	}
}

func TestProbeCached(t *testing.T) {
	for _, f := range []Feature{FeatureIPRoute2, FeatureStrace} {
		first := Probe(f)
		for range 5 {
			if err := Probe(f); err != first {
				t.Fatalf("%s: answer %v differs from the first %v", f, err, first)
			}
		}
		if n := probes[f].runs.Load(); n != 1 {
			t.Errorf("%s: probe ran %d times, want once", f, n)
		}
	}
	if err := Probe(Feature(0)); err == nil {
		t.Error("probing the zero Feature succeeded")
	}
}
