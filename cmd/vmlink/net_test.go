package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
)

func TestNetUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"net", "frob"}, "unknown command"},
		{[]string{"net", "create"}, "exactly one network NAME"},
		{[]string{"net", "create", "--subnet", "10.0.0.1", "x"}, "--subnet"},
		{[]string{"net", "create", "--gateway", "nope", "x"}, "--gateway"},
		{[]string{"net", "create", "--aux-address", "10.0.0.5", "x"}, "NAME=IP"},
		{[]string{"net", "create", "-o", "parent", "x"}, "KEY=VALUE"},
		{[]string{"net", "connect", "onlyone"}, "NETWORK and CONTAINER"},
		{[]string{"net", "connect", "--ip", "2001:db8::1", "n", "c"}, "not an IPv4 address"},
		{[]string{"net", "connect", "--mac-address", "zz", "n", "c"}, "not a MAC"},
		{[]string{"net", "disconnect", "n"}, "NETWORK and CONTAINER"},
		{[]string{"net", "inspect"}, "NETWORK names"},
		{[]string{"net", "rm"}, "NETWORK names"},
	} {
		code, _, errOut := runLabCLI(c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d %q, want %d and %q", c.args, code, errOut, exitUsage, c.want)
		}
	}
}

// TestUpDownCLI applies a topology file twice and removes it, through the
// command line.
func TestUpDownCLI(t *testing.T) {
	requireLabRoot(t)
	prefix := fmt.Sprintf("vmlt-ud%d-", os.Getpid())
	t.Cleanup(func() {
		names, _ := netns.List()
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				netns.Delete(n)
			}
		}
	})
	f := t.TempDir() + "/topo.yaml"
	os.WriteFile(f, []byte(fmt.Sprintf(`
name: %[1]stopo
host: %[1]shost
parents: [{name: p0, sandbox: {switch: %[1]ssw}}]
networks: [{name: n, parent: p0, subnets: [10.3.0.0/24]}]
endpoints: [{name: c1, netns: %[1]sc1, interfaces: [{network: n}]}]
`, prefix)), 0o644)
	if code, out, e := runLabCLI("up", "-f", f); code != exitOK || !strings.Contains(out, "created") || !strings.Contains(out, "10.3.0.1/24") {
		t.Fatalf("up: %d\n%s%s", code, out, e)
	}
	if code, out, e := runLabCLI("up", "-f", f); code != exitOK || !strings.Contains(out, "already applied, nothing changed") {
		t.Fatalf("second up: %d\n%s%s", code, out, e)
	}
	if code, out, e := runLabCLI("down", "-f", f); code != exitOK || !strings.Contains(out, "3 namespaces") {
		t.Fatalf("down: %d\n%s%s", code, out, e)
	}
	names, _ := netns.List()
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			t.Errorf("namespace %s left behind", n)
		}
	}
}

// TestUpInterruptedBySIGINT interrupts `vmlink up` (this test binary
// re-executed as vmlink) with SIGINT at a random step, as Ctrl-C does, and
// checks against the kernel that nothing is left behind.
func TestUpInterruptedBySIGINT(t *testing.T) {
	requireLabRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("vmlt-si%d-", os.Getpid())
	leftovers := func() []string {
		var out []string
		names, _ := netns.List()
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				out = append(out, n)
			}
		}
		return out
	}
	t.Cleanup(func() {
		for _, n := range leftovers() {
			netns.Delete(n)
		}
	})
	f := t.TempDir() + "/topo.yaml"
	os.WriteFile(f, []byte(fmt.Sprintf(`
name: %[1]stopo
host: %[1]shost
parents:
  - {name: p0, sandbox: {switch: %[1]ssw, hairpin: true}}
  - {name: p1, sandbox: {switch: %[1]ssw}}
networks:
  - {name: a, parent: p0, mode: vepa, subnets: [10.3.0.0/24, "fd00:3::/64"], gateways: [10.3.0.1]}
  - {name: b, parent: p1, mode: bridge, subnets: [10.4.0.0/24]}
endpoints:
  - {name: c1, netns: %[1]sc1, interfaces: [{network: a}, {network: b}]}
  - {name: c2, netns: %[1]sc2, interfaces: [{network: a}]}
  - {name: c3, netns: %[1]sc3, interfaces: [{network: b}]}
host_shims: [{network: b, name: shim0, addresses: [10.4.0.250/32]}]
`, prefix)), 0o644)
	rng := rand.New(rand.NewPCG(7, 7))
	interrupted := 0
	for run := range 15 {
		stopAfter := rng.IntN(16)
		cmd := exec.Command(exe, "-test.run=^TestVmlinkHelperProcess$")
		cmd.Env = append(os.Environ(), "VMLINK_HELPER_ARGS="+strings.Join([]string{"up", "-v", "-f", f}, "\x1f"))
		stderr, _ := cmd.StderrPipe()
		cmd.Stdout = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		steps, sent := 0, false
		var last string
		for sc.Scan() {
			last = sc.Text()
			if strings.HasPrefix(last, "  ") {
				steps++
				if steps == stopAfter+1 && !sent {
					cmd.Process.Signal(os.Interrupt)
					sent = true
				}
			}
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			// Finished before the signal: take it down the normal way.
			if code, _, e := runLabCLI("down", "-f", f); code != exitOK {
				t.Fatalf("run %d: down: %s", run, e)
			}
		case errors.As(err, &ee) && ee.ExitCode() == exitFailed:
			interrupted++
			if !strings.Contains(last, "rolled back") || !strings.Contains(last, "context canceled") {
				t.Errorf("run %d: last line %q, want the rollback and the interruption", run, last)
			}
		default:
			t.Fatalf("run %d: %v (last line %q)", run, err, last)
		}
		if l := leftovers(); len(l) > 0 {
			t.Fatalf("run %d (SIGINT after step %d): left behind %v", run, stopAfter, l)
		}
	}
	if interrupted == 0 {
		t.Fatal("no run was interrupted: the test proves nothing")
	}
	t.Logf("%d of 15 runs interrupted mid-way, all rolled back", interrupted)
}

// TestNetReconcileAfterKill kills `vmlink net connect` with SIGKILL at random
// moments; `net ls` must then leave state and kernel in agreement: every
// endpoint the state lists exists, and nothing the killed processes created
// without recording it is left.
func TestNetReconcileAfterKill(t *testing.T) {
	requireLabRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("vmlt-k9%d-", os.Getpid())
	host := prefix + "host"
	network := fmt.Sprintf("k9net%d", os.Getpid())
	// Every name under /run/netns counts, mounted or not: a kill between
	// creating the name and mounting the namespace leaves a bare file.
	leftovers := func() []string {
		var out []string
		ents, _ := os.ReadDir(netns.Dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix) && e.Name() != host {
				out = append(out, e.Name())
			}
		}
		return out
	}
	h, err := netns.Create(host)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() {
		runLabCLI("-n", host, "net", "rm", network)
		for _, n := range append(leftovers(), host) {
			netns.Delete(n)
		}
	})
	// A veth parent in the throwaway host namespace.
	c, err := rtnl.DialNetNS(host, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.NewLink(context.Background(), &rtnl.LinkMessage{Flags: 1, Change: 1, Attrs: rtnl.LinkAttrs{Name: "p0", Info: &rtnl.LinkInfo{Kind: "veth",
		Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "p0peer"}}}}}}, 0x400|0x200); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if code, _, e := runLabCLI("-n", host, "net", "create", "--subnet", "10.44.0.0/24", "-o", "parent=p0", "--host-shim", network); code != exitOK {
		t.Fatalf("create: %s", e)
	}
	connect := func(i int) *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^TestVmlinkHelperProcess$")
		cmd.Env = append(os.Environ(), "VMLINK_HELPER_ARGS="+strings.Join([]string{"-n", host, "net", "connect", network, fmt.Sprintf("%sc%d", prefix, i)}, "\x1f"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// Calibrate: how long a whole connect takes here, process start included.
	start := time.Now()
	if err := connect(99).Wait(); err != nil {
		t.Fatalf("calibration connect: %v", err)
	}
	full := time.Since(start)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range 12 {
		cmd := connect(i)
		time.Sleep(time.Duration(rng.Int64N(int64(full))))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	code, _, e := runLabCLI("-n", host, "net", "ls")
	if code != exitOK {
		t.Fatalf("ls: %s", e)
	}
	t.Logf("net ls said:\n%s", e)
	code, out, e := runLabCLI("-n", host, "net", "inspect", network)
	if code != exitOK {
		t.Fatalf("inspect: %s", e)
	}
	var insp []struct {
		Containers map[string]struct{ Name string }
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for name := range insp[0].Containers {
		listed[name] = true
		ec, err := rtnl.DialNetNS(name, nil)
		if err != nil {
			t.Fatalf("state lists %s but its namespace is gone: %v", name, err)
		}
		m, err := ec.GetLink(context.Background(), &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "eth0"}})
		ec.Close()
		if err != nil || m == nil {
			t.Fatalf("state lists %s but it has no eth0: %v", name, err)
		}
	}
	for _, n := range leftovers() {
		if !listed[n] {
			t.Errorf("namespace %s exists but no network lists it (not reconciled)", n)
		}
	}
	for name := range listed {
		if code, _, e := runLabCLI("-n", host, "net", "disconnect", network, name); code != exitOK {
			t.Fatalf("disconnect %s: %s", name, e)
		}
	}
	if code, _, e := runLabCLI("-n", host, "net", "rm", network); code != exitOK {
		t.Fatalf("rm: %s", e)
	}
	if l := leftovers(); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
	t.Logf("a connect takes %s; %d of 12 killed connects had completed", full.Round(time.Millisecond), len(listed)-1)
}
