package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/feature"
	"github.com/vmlink/vmlink/internal/netns"
)

// ErrNotSupported marks a feature this environment does not have. Probe
// errors that do not wrap it mean the probe itself could not tell. It is
// internal/feature's, so kernel probes from either package match it.
var ErrNotSupported = feature.ErrNotSupported

// NotSupportedError says why a feature is missing and what to run instead.
// It matches ErrNotSupported with errors.Is.
type NotSupportedError struct {
	Feature Feature
	// Reason is what the probe saw, e.g. `kernel 6.18.0 has no 8021q
	// (create vlan link: operation not supported, "Unknown device type")`.
	Reason string
	// Instead is what to run to get the feature, e.g. "run `make test-vm
	// KERNEL=6.1`".
	Instead string
	// Err is the underlying error, when there is one (the kernel's refusal).
	Err error
}

func (e *NotSupportedError) Error() string {
	if e.Instead == "" {
		return e.Reason
	}
	return e.Reason + ": " + e.Instead
}

// Is makes errors.Is(err, ErrNotSupported) true.
func (e *NotSupportedError) Is(target error) bool { return target == ErrNotSupported }

// Unwrap returns the underlying error (an errno stays reachable).
func (e *NotSupportedError) Unwrap() error { return e.Err }

// probeTimeout bounds every probe: netlink requests, tool version runs.
const probeTimeout = 30 * time.Second

var probes [featureEnd]struct {
	once sync.Once
	err  error
	runs atomic.Int32 // how often the probe really ran (tests check it is once)
}

// Probe tells whether the running environment has f: nil when it does, an
// error wrapping ErrNotSupported (a *NotSupportedError) when it does not,
// and any other error when the probe could not tell. Nothing is guessed
// from version numbers or module lists: kernel features are probed by
// creating the link kind in a throwaway network namespace, tools by running
// them. Results are cached for the life of the process.
func Probe(f Feature) error {
	if !f.valid() {
		return fmt.Errorf("probe %v: not a valid feature", f)
	}
	p := &probes[f]
	p.once.Do(func() {
		p.runs.Add(1)
		p.err = probe(f)
	})
	return p.err
}

func probe(f Feature) error {
	switch {
	case f == FeaturePrivileged:
		return probePrivileged()
	case f.IsTool():
		return probeTool(f)
	}
	// Kernel features are probed by creating links, which takes the
	// privileges to make a namespace for them.
	if err := Probe(FeaturePrivileged); err != nil {
		var ns *NotSupportedError
		if errors.As(err, &ns) {
			return &NotSupportedError{Feature: f,
				Reason:  fmt.Sprintf("cannot probe %s without privileges (%s)", f, ns.Reason),
				Instead: ns.Instead, Err: err}
		}
		return fmt.Errorf("probe %s: %w", f, err)
	}
	return probeKernel(f)
}

// Capability numbers (linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

func probePrivileged() error {
	const instead = "run the tests as root (`sudo go test …`, or `make test-priv`)"
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("probe privileged: capget: %w", err)
	}
	var missing []string
	for _, c := range []struct {
		bit  uint
		name string
	}{{capSysAdmin, "CAP_SYS_ADMIN"}, {capNetAdmin, "CAP_NET_ADMIN"}} {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return &NotSupportedError{Feature: FeaturePrivileged,
			Reason: fmt.Sprintf("not privileged: uid %d lacks %s (needed to create network namespaces and links)",
				os.Geteuid(), strings.Join(missing, " and ")),
			Instead: instead}
	}
	// The capabilities are there; prove it by doing what NewNetNS does.
	name := fmt.Sprintf("%sprobe-%d-%s", Prefix, os.Getpid(), randomHex(4))
	ns, err := netns.Create(name)
	if err != nil {
		return &NotSupportedError{Feature: FeaturePrivileged,
			Reason:  fmt.Sprintf("cannot create a named network namespace (%v)", err),
			Instead: instead + " on a machine where `ip netns add` works", Err: err}
	}
	ns.Close()
	if err := netns.Delete(name); err != nil {
		return fmt.Errorf("probe privileged: remove probe namespace: %w", err)
	}
	return nil
}

// toolPackages are the Debian packages the tools come from.
var toolPackages = map[Feature]string{
	FeatureIPRoute2: "iproute2",
	FeatureTcpdump:  "tcpdump",
	FeatureTshark:   "tshark",
	FeatureStrace:   "strace",
	FeatureDocker:   "docker.io",
	FeaturePodman:   "podman containernetworking-plugins",
}

// toolVersionArgs run each tool in the cheapest way that still proves it
// starts (its shared libraries are there).
var toolVersionArgs = map[Feature][]string{
	FeatureIPRoute2: {"-V"},
	FeatureTcpdump:  {"--version"},
	FeatureTshark:   {"--version"},
	FeatureStrace:   {"-V"},
	FeatureDocker:   {"--version"},
	FeaturePodman:   {"--version"},
}

// toolCompanions are files a tool feature needs besides its command: the
// docker client (Debian's, which matches its dockerd; another docker
// earlier in PATH may be a different version), the CNI plugins podman's
// CNI backend runs.
var toolCompanions = map[Feature][]string{
	FeatureDocker: {"/usr/bin/docker"},
	FeaturePodman: {"/usr/lib/cni/macvlan", "/usr/lib/cni/host-local"},
}

func probeTool(f Feature) error {
	tool := features[f].tool
	instead := fmt.Sprintf("install it (`make deps`, or `apt-get install %s`)", toolPackages[f])
	path, err := exec.LookPath(tool)
	if err != nil {
		return &NotSupportedError{Feature: f,
			Reason: fmt.Sprintf("%s is not installed (not found in PATH=%s)", tool, os.Getenv("PATH")), Instead: instead, Err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	args := toolVersionArgs[f]
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		return &NotSupportedError{Feature: f,
			Reason: fmt.Sprintf("%s does not run (`%s %s`: %v: %s)", path, tool, strings.Join(args, " "), err,
				strings.TrimSpace(firstLine(string(out)))),
			Instead: instead, Err: err}
	}
	for _, c := range toolCompanions[f] {
		if _, err := os.Stat(c); err != nil {
			return &NotSupportedError{Feature: f,
				Reason: fmt.Sprintf("%s needs %s, which is missing (%v)", tool, c, err), Instead: instead, Err: err}
		}
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// kernelInstead says where to get a kernel feature: the module, or this
// project's VM tier (Debian's 6.1 and 6.12 kernels with their modules).
func kernelInstead(f Feature) string {
	mod := features[f].module
	if f == FeatureBridgeVLAN {
		return "the kernel needs CONFIG_BRIDGE_VLAN_FILTERING: run `make test-vm KERNEL=6.1` (or KERNEL=6.12)"
	}
	return fmt.Sprintf("load it (`modprobe %s`) where the kernel has modules, or run `make test-vm KERNEL=6.1` (or KERNEL=6.12)", mod)
}

// probeKernel asks the one kernel probe (internal/feature, cached there
// too) and adds what to run instead.
func probeKernel(f Feature) error {
	var err error
	if f == FeatureBridgeVLAN {
		err = feature.BridgeVLANFiltering()
	} else {
		err = feature.LinkKind(features[f].kind)
	}
	var ns *feature.NotSupportedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ns):
		return &NotSupportedError{Feature: f, Reason: ns.Error(), Instead: kernelInstead(f), Err: err}
	}
	return fmt.Errorf("probe %s: %w", f, err)
}
