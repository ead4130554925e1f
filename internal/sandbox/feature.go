package sandbox

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vmlink/vmlink/internal/feature"
)

// Feature is something a test needs from the machine it runs on: a
// privilege, a kernel link kind, or a reference tool. The zero value is
// invalid so a forgotten constant never passes for a real requirement.
type Feature uint8

// Features, named as VMLINK_EXPECT_FEATURES lists them (see String).
const (
	featureInvalid Feature = iota
	// FeaturePrivileged: root with CAP_SYS_ADMIN and CAP_NET_ADMIN, able to
	// create (and bind-mount under /run/netns) a network namespace.
	FeaturePrivileged
	FeatureVeth       // link kind veth
	FeatureBridge     // link kind bridge
	FeatureBridgeVLAN // bridge vlan_filtering (CONFIG_BRIDGE_VLAN_FILTERING)
	FeatureMacvlan    // link kind macvlan
	FeatureMacvtap    // link kind macvtap
	FeatureVLAN       // link kind vlan (8021q), 802.1Q and 802.1ad
	FeatureIPVlan     // link kind ipvlan
	FeatureDummy      // link kind dummy
	FeatureIPRoute2   // the ip command (iproute2), the reference for link state
	FeatureTcpdump    // the tcpdump command
	FeatureTshark     // the tshark command (Wireshark's dissectors)
	FeatureStrace     // the strace command
	FeatureDocker     // Docker Engine: dockerd and its docker client (Debian's docker.io)
	FeaturePodman     // the podman command with the CNI plugins (Debian's podman, containernetworking-plugins)
	featureEnd
)

type featureInfo struct {
	name string
	// kind is the link kind the probe creates; "" for the others.
	kind string
	// module is the kernel module that provides the kind.
	module string
	// tool is the command a tool feature looks for.
	tool string
}

var features = [featureEnd]featureInfo{
	FeaturePrivileged: {name: "privileged"},
	FeatureVeth:       {name: "veth", kind: "veth", module: feature.Module("veth")},
	FeatureBridge:     {name: "bridge", kind: "bridge", module: feature.Module("bridge")},
	FeatureBridgeVLAN: {name: "bridge_vlan", kind: "bridge", module: feature.Module("bridge") + " (with CONFIG_BRIDGE_VLAN_FILTERING)"},
	FeatureMacvlan:    {name: "macvlan", kind: "macvlan", module: feature.Module("macvlan")},
	FeatureMacvtap:    {name: "macvtap", kind: "macvtap", module: feature.Module("macvtap")},
	FeatureVLAN:       {name: "vlan", kind: "vlan", module: feature.Module("vlan")},
	FeatureIPVlan:     {name: "ipvlan", kind: "ipvlan", module: feature.Module("ipvlan")},
	FeatureDummy:      {name: "dummy", kind: "dummy", module: feature.Module("dummy")},
	FeatureIPRoute2:   {name: "ip", tool: "ip"},
	FeatureTcpdump:    {name: "tcpdump", tool: "tcpdump"},
	FeatureTshark:     {name: "tshark", tool: "tshark"},
	FeatureStrace:     {name: "strace", tool: "strace"},
	FeatureDocker:     {name: "docker", tool: "dockerd"},
	FeaturePodman:     {name: "podman", tool: "podman"},
}

// aliases are other names VMLINK_EXPECT_FEATURES may use for a feature:
// "netns" (creating namespaces) is what privileged means here, and
// "iproute2" is the package the ip command comes from.
var aliases = map[string]Feature{
	"netns":    FeaturePrivileged,
	"iproute2": FeatureIPRoute2,
}

// AllFeatures lists every valid feature, in declaration order.
func AllFeatures() []Feature {
	fs := make([]Feature, 0, featureEnd-1)
	for f := featureInvalid + 1; f < featureEnd; f++ {
		fs = append(fs, f)
	}
	return fs
}

func (f Feature) valid() bool { return f > featureInvalid && f < featureEnd }

// String returns the feature's name as VMLINK_EXPECT_FEATURES spells it.
func (f Feature) String() string {
	if !f.valid() {
		return fmt.Sprintf("Feature(%d)", uint8(f))
	}
	return features[f].name
}

// IsTool reports whether f is a command looked up in PATH rather than
// something of the kernel's.
func (f Feature) IsTool() bool { return f.valid() && features[f].tool != "" }

// NeedsPrivileges reports whether probing or using f takes root: every
// kernel feature does, because it is probed (and used) by creating links
// in a throwaway namespace.
func (f Feature) NeedsPrivileges() bool { return f.valid() && !f.IsTool() }

// ParseFeature returns the feature named s (case-insensitive), as written
// in VMLINK_EXPECT_FEATURES.
func ParseFeature(s string) (Feature, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for f := featureInvalid + 1; f < featureEnd; f++ {
		if features[f].name == s {
			return f, nil
		}
	}
	if f, ok := aliases[s]; ok {
		return f, nil
	}
	names := make([]string, 0, featureEnd-1)
	for _, f := range AllFeatures() {
		names = append(names, f.String())
	}
	return featureInvalid, fmt.Errorf("unknown feature %q: use one of %s", s, strings.Join(names, ","))
}

// ParseFeatures parses a comma-separated list such as
// VMLINK_EXPECT_FEATURES's. Empty items are ignored; unknown names are an
// error naming them, alongside the features that did parse.
func ParseFeatures(list string) ([]Feature, error) {
	var (
		fs   []Feature
		errs []error
	)
	for item := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		f, err := ParseFeature(item)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fs = append(fs, f)
	}
	return fs, errors.Join(errs...)
}
