package testenv

import (
	"testing"

	"github.com/vmlink/vmlink/internal/sandbox"
)

// Feature is something a test needs from the machine: a privilege, a
// kernel link kind, or a reference tool. See package sandbox, where the
// probes live (rtnl's own tests use them from there).
type Feature = sandbox.Feature

// The features, with the names VMLINK_EXPECT_FEATURES uses.
const (
	FeaturePrivileged = sandbox.FeaturePrivileged // "privileged" (alias "netns"): root, can create namespaces
	FeatureVeth       = sandbox.FeatureVeth       // "veth"
	FeatureBridge     = sandbox.FeatureBridge     // "bridge"
	FeatureBridgeVLAN = sandbox.FeatureBridgeVLAN // "bridge_vlan": bridge vlan_filtering
	FeatureMacvlan    = sandbox.FeatureMacvlan    // "macvlan"
	FeatureMacvtap    = sandbox.FeatureMacvtap    // "macvtap"
	FeatureVLAN       = sandbox.FeatureVLAN       // "vlan": 8021q, 802.1Q and 802.1ad
	FeatureIPVlan     = sandbox.FeatureIPVlan     // "ipvlan"
	FeatureDummy      = sandbox.FeatureDummy      // "dummy"
	FeatureIPRoute2   = sandbox.FeatureIPRoute2   // "ip" (alias "iproute2")
	FeatureTcpdump    = sandbox.FeatureTcpdump    // "tcpdump"
	FeatureTshark     = sandbox.FeatureTshark     // "tshark"
	FeatureStrace     = sandbox.FeatureStrace     // "strace"
	FeatureDocker     = sandbox.FeatureDocker     // "docker": dockerd and the docker client
	FeaturePodman     = sandbox.FeaturePodman     // "podman": podman with the CNI plugins
)

// ExpectEnv is VMLINK_EXPECT_FEATURES: the comma-separated features the
// environment is supposed to have. Under CI=true, Require fails a test
// whose listed feature is missing instead of skipping it.
const ExpectEnv = sandbox.ExpectEnv

// ErrNotSupported is wrapped by Probe's answer for a missing feature.
var ErrNotSupported = sandbox.ErrNotSupported

// NotSupportedError says why a feature is missing and what to run instead.
type NotSupportedError = sandbox.NotSupportedError

// Probe tells whether this environment has f: nil, an error wrapping
// ErrNotSupported, or another error when the probe could not tell. Kernel
// features are probed by creating the link kind in a throwaway namespace;
// answers are cached per process.
func Probe(f Feature) error { return sandbox.Probe(f) }

// ParseFeature returns the feature named s ("vlan", "macvlan", "ip", …).
func ParseFeature(s string) (Feature, error) { return sandbox.ParseFeature(s) }

// ParseFeatures parses a comma-separated feature list such as
// VMLINK_EXPECT_FEATURES's.
func ParseFeatures(list string) ([]Feature, error) { return sandbox.ParseFeatures(list) }

// Require lets the test go on only if the environment has every feature
// in fs. Otherwise it skips with the exact reason and what to run instead
// (e.g. "kernel 6.18.0 has no 8021q …: run `make test-vm KERNEL=6.1`"), or,
// when CI=true and VMLINK_EXPECT_FEATURES lists the feature, fails. With
// -short every feature that needs root skips (the unit tier).
func Require(tb testing.TB, fs ...Feature) {
	tb.Helper()
	sandbox.Require(tb, fs...)
}
