package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/testenv"
)

// netnsExecChildEnv makes this test binary, started by `netns exec`, report
// what it sees instead of testing (TestNetnsExecChild).
const netnsExecChildEnv = "VMLINK_NETNS_EXEC_CHILD"

// TestNetnsExecChild is the program `netns exec` runs in the tests below:
// it prints the interfaces /sys/class/net lists and the first line of
// /etc/hosts, and exits 42 so the tests see the exit status come through.
func TestNetnsExecChild(t *testing.T) {
	if os.Getenv(netnsExecChildEnv) == "" {
		t.Skip("the program TestNetnsExecSysfsAndEtc runs inside a namespace; nothing to do on its own")
	}
	fmt.Printf("sys: %s\n", strings.Join(sysClassNet(), ","))
	b, _ := os.ReadFile("/etc/hosts")
	first, _, _ := strings.Cut(string(b), "\n")
	fmt.Printf("hosts: %s\n", first)
	os.Exit(42)
}

// sysEtcMounts is this process's mounts on /sys and /etc/hosts
// (mountinfo's mount point is its fifth field).
func sysEtcMounts(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == "/sys" || f[4] == "/etc/hosts") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func sysClassNet() []string {
	ents, _ := os.ReadDir("/sys/class/net")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// TestNetnsExecSysfsAndEtc: `vmlink netns exec NAME -- CMD` shows CMD the
// namespace's own /sys (lo and its one veth end, not the caller's links)
// and /etc/netns/NAME/hosts as /etc/hosts, passes CMD's exit status on,
// leaves the caller's mounts alone, and sees the same as `ip netns exec`.
func TestNetnsExecSysfsAndEtc(t *testing.T) {
	requireLabRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("vmlt-nx%d", os.Getpid())
	peer := name + "-peer"
	for _, n := range []string{name, peer} {
		h, err := netns.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { netns.Delete(n) })
		h.Close()
	}
	// lo and one end of a veth pair whose other end is in peer.
	ph, err := netns.Open(peer)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	c, err := rtnl.DialNetNS(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	fd := uint32(ph.FD())
	err = c.NewLink(context.Background(), &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "nxv0", Info: &rtnl.LinkInfo{Kind: "veth",
		Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "nxv1", NetNSFD: &fd}}}}}}, 0x400|0x200)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	// /etc/netns/NAME/hosts, as ip netns exec binds it.
	etcDir := filepath.Join(dataplane.EtcNetNSDir, name)
	_, statErr := os.Stat(dataplane.EtcNetNSDir)
	if err := os.MkdirAll(etcDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(etcDir)
		if errors.Is(statErr, os.ErrNotExist) {
			os.Remove(dataplane.EtcNetNSDir)
		}
	})
	marker := "# vmlink test hosts of " + name
	if err := os.WriteFile(filepath.Join(etcDir, "hosts"), []byte(marker+"\n127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := sysClassNet()
	mountsBefore := sysEtcMounts(t)

	child := func(argv ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), netnsExecChildEnv+"=1")
		out, err := cmd.Output()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%v: %v", argv, err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	childArgs := []string{exe, "-test.run=^TestNetnsExecChild$"}
	// The helper process takes its vmlink arguments from the environment.
	cmd := exec.Command(exe, "-test.run=^TestVmlinkHelperProcess$")
	cmd.Env = append(os.Environ(), netnsExecChildEnv+"=1",
		"VMLINK_HELPER_ARGS="+strings.Join(append([]string{"netns", "exec", name, "--"}, childArgs...), "\x1f"))
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	got, code := string(out), cmd.ProcessState.ExitCode()
	want := "sys: lo,nxv0\nhosts: " + marker + "\n"
	if got != want || code != 42 {
		t.Fatalf("vmlink netns exec: exit %d, printed\n%s\nwant exit 42 and\n%s", code, got, want)
	}
	if after := sysClassNet(); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("the caller's /sys/class/net changed: %v, was %v", after, before)
	}
	if mountsAfter := sysEtcMounts(t); mountsAfter != mountsBefore {
		t.Errorf("the caller's mounts on /sys and /etc changed:\n%s\nwas\n%s", mountsAfter, mountsBefore)
	}
	if testenv.Probe(testenv.FeatureIPRoute2) == nil {
		ipOut, ipCode := child(append([]string{"ip", "netns", "exec", name}, childArgs...)...)
		if ipOut != got || ipCode != code {
			t.Errorf("ip netns exec: exit %d\n%s\nvmlink netns exec: exit %d\n%s", ipCode, ipOut, code, got)
		}
	}
}

// TestNetnsExecMissing: a namespace or command that does not exist is an
// error naming it, and nothing runs.
func TestNetnsExecMissing(t *testing.T) {
	requireLabRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runLabCLI("netns", "exec", "vmlt-no-such-ns", "--", exe)
	if code != exitEnvError || !strings.Contains(errOut, "vmlt-no-such-ns") {
		t.Errorf("missing namespace: exit %d %q", code, errOut)
	}
	name := fmt.Sprintf("vmlt-nxm%d", os.Getpid())
	h, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() { netns.Delete(name) })
	code, _, errOut = runLabCLI("netns", "exec", name, "--", "vmlink-no-such-command")
	if code != exitFailed || !strings.Contains(errOut, "vmlink-no-such-command") {
		t.Errorf("missing command: exit %d %q", code, errOut)
	}
}
