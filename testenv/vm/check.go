package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/vmlink/vmlink/internal/feature"
)

// A boot check runs before a kernel's VM tier: one VM whose "test" is the
// guest half of the check (GuestCheck, run by cmd/vmtest inside the guest).
// When the kernel cannot boot, every test binary of the tier would fail the
// same way after its own boot attempt; the check says so once, with the
// kernel's last console lines, and proves the guest has every feature the
// tier expects before a test relies on it.

// CheckAppend is the kernel command line of a boot check: DefaultAppend
// without quiet, so a failing boot leaves the kernel's own last lines on
// the console for the report.
const CheckAppend = "console=ttyS0 panic=-1 mitigations=off"

// GuestChecks maps the features a tier may expect (VMLINK_EXPECT_FEATURES)
// to how the guest proves it has them: a link kind is created in a
// throwaway namespace with ip(8), a tool is run with its version flag.
// Features not named here (netns, ...) are not checked.
var GuestChecks = map[string][]string{
	"ip":      {"ip", "-V"},
	"tcpdump": {"tcpdump", "--version"},
	// Not in the guest by default (add them with --bin); listed so a tier
	// that expects them fails here, once, rather than in every test.
	"tshark":  {"tshark", "--version"},
	"strace":  {"strace", "-V"},
	"veth":    {"ip", "-n", checkNetNS, "link", "add", "p0", "type", "veth", "peer", "name", "p1"},
	"vlan":    {"ip", "-n", checkNetNS, "link", "add", "link", "p0", "name", "p0.10", "type", "vlan", "id", "10"},
	"macvlan": {"ip", "-n", checkNetNS, "link", "add", "link", "p0", "name", "mv0", "type", "macvlan", "mode", "bridge"},
	"macvtap": {"ip", "-n", checkNetNS, "link", "add", "link", "p0", "name", "mvt0", "type", "macvtap", "mode", "bridge"},
	// ipvlan and macvlan cannot share a parent: the other veth end.
	"ipvlan": {"ip", "-n", checkNetNS, "link", "add", "link", "p1", "name", "ipv0", "type", "ipvlan", "mode", "l2"},
	"dummy":  {"ip", "-n", checkNetNS, "link", "add", "d0", "type", "dummy"},
	"bridge": {"ip", "-n", checkNetNS, "link", "add", "br0", "type", "bridge"},
	// A VLAN-aware bridge (CONFIG_BRIDGE_VLAN_FILTERING): the kernel
	// refuses vlan_filtering 1 without it.
	"bridge_vlan": {"ip", "-n", checkNetNS, "link", "add", "brv0", "type", "bridge", "vlan_filtering", "1"},
}

// checkOrder is the order the guest checks run in: link kinds on p0/p1
// after the veth pair.
var checkOrder = []string{"privileged", "ip", "tcpdump", "tshark", "strace", "veth", "vlan", "macvlan", "macvtap", "ipvlan", "dummy", "bridge", "bridge_vlan"}

const checkNetNS = "vmlink-check"

// GuestCheck runs inside the guest: it checks every feature in features
// (default: ExpectFeatures) that it knows how to, prints one line per
// feature to w and returns an error naming those that failed.
func GuestCheck(ctx context.Context, w io.Writer, features []string) error {
	if len(features) == 0 {
		features = strings.Split(ExpectFeatures, ",")
	}
	want := map[string]bool{}
	for _, f := range features {
		want[strings.TrimSpace(f)] = true
	}
	// The link checks need the namespace and the veth pair even when only
	// one kind is asked for.
	if want["vlan"] || want["macvlan"] || want["macvtap"] || want["ipvlan"] {
		want["veth"] = true
	}
	var failed []string
	if want["veth"] || want["dummy"] || want["bridge"] || want["bridge_vlan"] {
		if out, err := runCheck(ctx, "ip", "netns", "add", checkNetNS); err != nil {
			return fmt.Errorf("guest check: ip netns add %s: %v: %s", checkNetNS, err, out)
		}
		defer runCheck(context.Background(), "ip", "netns", "del", checkNetNS)
	}
	done := map[string]bool{}
	for _, f := range slices.Concat(checkOrder, features) {
		f = strings.TrimSpace(f)
		if !want[f] || done[f] {
			continue
		}
		done[f] = true
		if f == "privileged" {
			if os.Geteuid() != 0 {
				failed = append(failed, f)
				fmt.Fprintf(w, "guest check: privileged: FAIL: euid %d, want 0\n", os.Geteuid())
				continue
			}
			fmt.Fprintln(w, "guest check: privileged: ok (root)")
			continue
		}
		argv, ok := GuestChecks[f]
		if !ok {
			fmt.Fprintf(w, "guest check: %s: not checked (no guest check for it)\n", f)
			continue
		}
		out, err := runCheck(ctx, argv[0], argv[1:]...)
		if err != nil {
			failed = append(failed, f)
			what := ""
			if mod := feature.Module(f); mod != "" {
				what = " (module " + mod + ")"
			}
			fmt.Fprintf(w, "guest check: %s%s: FAIL: %s: %v: %s\n", f, what, strings.Join(argv, " "), err, out)
			continue
		}
		fmt.Fprintf(w, "guest check: %s: ok\n", f)
	}
	if len(failed) > 0 {
		return fmt.Errorf("guest check: the guest lacks %s, which the tier expects (VMLINK_EXPECT_FEATURES)", strings.Join(failed, ", "))
	}
	return nil
}

func runCheck(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// CheckResult is a boot check that produced a result.
type CheckResult struct {
	*Result
	Output string // the guest check's lines
}

// ErrGuestCheck is wrapped by BootCheck's error when the VM booted but the
// guest lacks an expected feature.
var ErrGuestCheck = errors.New("guest check failed")

// BootCheck boots kernel opts.Kernel once and runs self (a static binary
// that runs GuestCheck when given the argument "guest-check", as
// cmd/vmtest does) in it. A VM that cannot boot is a *VMError; a guest
// missing a feature is an error wrapping ErrGuestCheck.
func BootCheck(ctx context.Context, opts Options, self string) (*CheckResult, error) {
	if opts.Append == "" {
		opts.Append = CheckAppend
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	var out strings.Builder
	if opts.Notices == nil {
		opts.Notices = os.Stderr // the guest's output is kept for the report; the runner's notices are not the guest's
	}
	opts.Stdout, opts.Stderr = &out, &out
	opts.NoTestdata = true
	dir, err := os.MkdirTemp("", "vmtest-check-")
	if err != nil {
		return nil, fmt.Errorf("boot check: %w", err)
	}
	defer os.RemoveAll(dir)
	res, err := Run(ctx, opts, []string{self, "guest-check"}, dir)
	if err != nil {
		return nil, err
	}
	cr := &CheckResult{Result: res, Output: out.String()}
	if res.ExitCode != 0 {
		return cr, fmt.Errorf("%w on kernel %s (exit %d):\n%s", ErrGuestCheck, res.Kernel, res.ExitCode, strings.TrimRight(cr.Output, "\n"))
	}
	return cr, nil
}
