package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

// ErrNotSupported marks a feature this environment does not have. Probe
// errors that do not wrap it mean the probe itself could not tell.
var ErrNotSupported = errors.New("not supported")

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

// kernelRelease is uname -r, for messages.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown)"
	}
	return unix.ByteSliceToString(u.Release[:])
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

func probeKernel(f Feature) error {
	var probeErr error
	err := inThrowawayNetNS(func(c *netlink.Conn) error {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		l := &probeLink{c: c, ctx: ctx}
		switch f {
		case FeatureVeth:
			probeErr = l.add("vp0", "veth", 0, nil)
		case FeatureBridge:
			probeErr = l.add("vb0", "bridge", 0, nil)
		case FeatureBridgeVLAN:
			probeErr = l.add("vb0", "bridge", 0, func(ae *netlink.AttributeEncoder) {
				ae.Uint8(iflaBrVLANFiltering, 1)
			})
		case FeatureDummy:
			probeErr = l.add("vd0", "dummy", 0, nil)
		default:
			// Stacked kinds need a parent: a veth, which this kernel
			// must have for the probe (and the tests) to mean anything.
			if err := l.add("vp0", "veth", 0, nil); err != nil {
				return fmt.Errorf("create a veth parent: %w", err)
			}
			parent, err := l.index("vp0")
			if err != nil {
				return err
			}
			switch f {
			case FeatureMacvlan, FeatureMacvtap:
				probeErr = l.add("vm0", features[f].kind, parent, func(ae *netlink.AttributeEncoder) {
					ae.Uint32(unix.IFLA_MACVLAN_MODE, 4 /* MACVLAN_MODE_BRIDGE */)
				})
			case FeatureVLAN:
				probeErr = l.add("vv0", "vlan", parent, func(ae *netlink.AttributeEncoder) {
					ae.Uint16(unix.IFLA_VLAN_ID, 10)
				})
			case FeatureIPVlan:
				probeErr = l.add("vi0", "ipvlan", parent, func(ae *netlink.AttributeEncoder) {
					ae.Uint16(unix.IFLA_IPVLAN_MODE, 0 /* IPVLAN_MODE_L2 */)
				})
			default:
				return fmt.Errorf("no probe for %s", f)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("probe %s: %w", f, err)
	}
	if probeErr == nil {
		return nil
	}
	if errors.Is(probeErr, unix.EOPNOTSUPP) {
		what := features[f].module
		if f == FeatureBridgeVLAN {
			what = "bridge VLAN filtering"
		}
		refusal := "EOPNOTSUPP"
		var oe *netlink.OpError
		if errors.As(probeErr, &oe) && oe.Message != "" {
			refusal += fmt.Sprintf(" %q", oe.Message)
		}
		return &NotSupportedError{Feature: f,
			Reason: fmt.Sprintf("kernel %s has no %s (creating %s: %s)",
				kernelRelease(), what, probeWhat(f), refusal),
			Instead: kernelInstead(f), Err: probeErr}
	}
	return fmt.Errorf("probe %s: %w", f, probeErr)
}

// probeWhat names the link a probe creates, for messages.
func probeWhat(f Feature) string {
	if f == FeatureBridgeVLAN {
		return "a bridge with vlan_filtering 1"
	}
	return "a link of kind " + features[f].kind
}

// iflaBrVLANFiltering is IFLA_BR_VLAN_FILTERING (u8) in a bridge's
// IFLA_INFO_DATA.
const iflaBrVLANFiltering = 7

// probeLink creates links with hand-built RTM_NEWLINK requests: probes must
// not depend on the codecs they exist to test.
type probeLink struct {
	c   *netlink.Conn
	ctx context.Context
}

func (l *probeLink) add(name, kind string, parent uint32, data func(*netlink.AttributeEncoder)) error {
	ae := netlink.NewAttributeEncoder()
	if parent != 0 {
		ae.Uint32(unix.IFLA_LINK, parent)
	}
	ae.String(unix.IFLA_IFNAME, name)
	ae.Nested(unix.IFLA_LINKINFO, func(li *netlink.AttributeEncoder) error {
		li.String(unix.IFLA_INFO_KIND, kind)
		if data != nil {
			li.Nested(unix.IFLA_INFO_DATA, func(d *netlink.AttributeEncoder) error {
				data(d)
				return nil
			})
		}
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = l.exec(unix.RTM_NEWLINK, netlink.Acknowledge|netlink.Create|netlink.Excl, attrs)
	if err != nil {
		return fmt.Errorf("create %s link: %w", kind, err)
	}
	return nil
}

func (l *probeLink) index(name string) (uint32, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	attrs, err := ae.Encode()
	if err != nil {
		return 0, err
	}
	// No ACK flag on a GET: the answer is the link, and a trailing ACK
	// would be read as the reply to the next request.
	msgs, err := l.exec(unix.RTM_GETLINK, 0, attrs)
	if err != nil {
		return 0, fmt.Errorf("get link %s: %w", name, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWLINK && len(m.Data) >= unix.SizeofIfInfomsg {
			return binary.NativeEndian.Uint32(m.Data[4:8]), nil
		}
	}
	return 0, fmt.Errorf("get link %s: no answer", name)
}

func (l *probeLink) exec(typ netlink.HeaderType, flags netlink.HeaderFlags, attrs []byte) ([]netlink.Message, error) {
	if dl, ok := l.ctx.Deadline(); ok {
		if err := l.c.SetDeadline(dl); err != nil {
			return nil, err
		}
	}
	body := append(make([]byte, unix.SizeofIfInfomsg), attrs...)
	return l.c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | flags},
		Data:   body,
	})
}

// inThrowawayNetNS opens a route netlink socket in a new, unnamed network
// namespace and runs fn with it. The namespace lives only as long as the
// socket: closing it at the end removes the namespace and every link the
// probe made, whatever happened.
func inThrowawayNetNS(fn func(*netlink.Conn) error) error {
	var c *netlink.Conn
	err := netns.DoNew(func() error {
		var err error
		if c, err = netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Strict: true}); err != nil {
			return fmt.Errorf("dial rtnetlink in the probe netns: %w", err)
		}
		return nil
	})
	if err != nil {
		if c != nil {
			c.Close()
		}
		return err
	}
	defer c.Close()
	return fn(c)
}
