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
	"slices"
	"strings"
	"sync"
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
		{[]string{"net", "create", "-d", "ipvlan", "-o", "ipvlan_flag=bogus", "--subnet", "10.0.0.0/24", "x"}, "net create: -o ipvlan_flag=bogus: use bridge, private or vepa\n"},
		{[]string{"net", "create", "-o", "com.docker.network.bridge.name=x", "--subnet", "10.0.0.0/24", "x"}, "net create: -o com.docker.network.bridge.name: unknown option"},
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
	const runs = 50 // as the fault tests of the topology engine
	for run := range runs {
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
		case errors.As(err, &ee) && ee.ExitCode() == exitSignal+int(syscall.SIGINT):
			interrupted++
			if !strings.Contains(last, "rolled back") || !strings.Contains(last, "interrupted by SIGINT") {
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
	t.Logf("%d of %d runs interrupted mid-way, all rolled back", interrupted, runs)
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
	addVethParent(t, host)
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

// TestNetConcurrentProcesses runs two streams of 10 `vmlink net connect`
// processes side by side (and `net ls`, which reconciles and rewrites the
// state, alongside): the exclusive lock on /run/vmlink must serialise them
// so that no update is lost and no address handed out twice — the state
// lists all 20 containers, each with its own address, and the kernel has
// exactly what the state says.
func TestNetConcurrentProcesses(t *testing.T) {
	requireLabRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("vmlt-cc%d-", os.Getpid())
	host := prefix + "host"
	network := fmt.Sprintf("ccnet%d", os.Getpid())
	h, err := netns.Create(host)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() {
		names, _ := netns.List()
		for _, n := range names {
			if strings.HasPrefix(n, prefix) && n != host {
				runLabCLI("-n", host, "net", "disconnect", network, n)
				netns.Delete(n)
			}
		}
		runLabCLI("-n", host, "net", "rm", network)
		netns.Delete(host)
	})
	addVethParent(t, host)
	if code, _, e := runLabCLI("-n", host, "net", "create", "--subnet", "10.45.0.0/24", "-o", "parent=p0", network); code != exitOK {
		t.Fatalf("create: %s", e)
	}
	vmlink := func(args ...string) error {
		cmd := exec.Command(exe, "-test.run=^TestVmlinkHelperProcess$")
		cmd.Env = append(os.Environ(), "VMLINK_HELPER_ARGS="+strings.Join(append([]string{"-n", host}, args...), "\x1f"))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("vmlink %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	const streams, each = 2, 10
	errs := make(chan error, streams*each+1)
	stop, lsDone := make(chan struct{}), make(chan struct{})
	lsRuns := 0
	go func() { // net ls alongside, until the connects are done
		defer close(lsDone)
		for ; lsRuns < 200 && !closed(stop); lsRuns++ {
			if err := vmlink("net", "ls"); err != nil {
				errs <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := vmlink("net", "connect", network, fmt.Sprintf("%sc%d-%d", prefix, s, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-lsDone
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	code, out, e := runLabCLI("-n", host, "net", "inspect", network)
	if code != exitOK {
		t.Fatalf("inspect: %s", e)
	}
	var insp []struct {
		Containers map[string]struct{ IPv4Address string }
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		t.Fatalf("state after the concurrent connects: %v\n%s", err, out)
	}
	addrs := map[string]string{}
	for name, ep := range insp[0].Containers {
		if other, dup := addrs[ep.IPv4Address]; dup {
			t.Errorf("%s and %s both got %s", name, other, ep.IPv4Address)
		}
		addrs[ep.IPv4Address] = name
		ec, err := rtnl.DialNetNS(name, nil)
		if err != nil {
			t.Fatalf("state lists %s but its namespace is gone: %v", name, err)
		}
		m, err := ec.GetLink(context.Background(), &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "eth0"}})
		var has []string
		if err == nil {
			as, _ := ec.Addrs(context.Background(), syscall.AF_INET, uint32(m.Index))
			for _, a := range as {
				has = append(has, a.Prefix().String())
			}
		}
		ec.Close()
		if len(has) != 1 || has[0] != ep.IPv4Address {
			t.Errorf("%s: state says %s, the kernel has %v on eth0 (%v)", name, ep.IPv4Address, has, err)
		}
	}
	if len(insp[0].Containers) != streams*each {
		t.Fatalf("state lists %d containers, want %d: updates were lost", len(insp[0].Containers), streams*each)
	}
	t.Logf("%d connects in %d processes side by side with %d net ls runs: all recorded, all addresses distinct", streams*each, streams, lsRuns)
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestNetRefusalMessages: what docker would refuse is refused before
// anything changes, with exit status 2 and one line that names the flag
// and the fix.
func TestNetRefusalMessages(t *testing.T) {
	requireLabRoot(t)
	prefix := fmt.Sprintf("vmlt-rf%d-", os.Getpid())
	host := prefix + "host"
	network := fmt.Sprintf("rfnet%d", os.Getpid())
	h, err := netns.Create(host)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() {
		runLabCLI("-n", host, "net", "rm", network)
		netns.Delete(host)
	})
	c, err := rtnl.DialNetNS(host, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"p0", "p1"} {
		if err := c.NewLink(context.Background(), &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: p, Info: &rtnl.LinkInfo{Kind: "veth",
			Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: p + "peer"}}}}}}, 0x400|0x200); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if code, _, e := runLabCLI("-n", host, "net", "create", "--subnet", "10.46.0.0/24", "--ip-range", "10.46.0.0/30", "-o", "parent=p0", network); code != exitOK {
		t.Fatalf("create: %s", e)
	}
	for _, r := range []struct {
		args []string
		want string
	}{
		{[]string{"net", "create", "--subnet", "10.47.0.0/24", "-o", "parent=p1", network}, "network with name " + network + " already exists"},
		{[]string{"net", "create", "--subnet", "10.47.0.0/24", "-o", "parent=lo", "x"}, "-o parent=lo: the loopback cannot be a parent: use an Ethernet interface such as eth0 or eth0.10"},
		{[]string{"net", "create", "--subnet", "10.46.0.128/25", "-o", "parent=p0", "x"}, "--subnet 10.46.0.128/25 overlaps subnet 10.46.0.0/24 of network " + network + " on the same parent p0"},
		{[]string{"net", "create", "--subnet", "10.47.0.0/24", "-o", "parent=p1", "-o", "macvlan_mode=passthru", "x"}, ""},
		{[]string{"net", "create", "--subnet", "10.48.0.0/24", "-o", "parent=p1", "y"}, "-o parent=p1: network x uses it and passthru takes the parent alone"},
		{[]string{"net", "create", "--subnet", "10.48.0.0/24", "-o", "parent=p0", "-d", "ipvlan", "y"}, "-o parent=p0: network " + network + " uses it and ipvlan takes one network per parent"},
		{[]string{"net", "create", "--subnet", "fd00:48::/64", "-o", "parent=p1", "y"}, "--subnet fd00:48::/64 is IPv6: add --ipv6"},
		{[]string{"net", "create", "--subnet", "10.48.0.0/24", "-o", "parent=nope0", "y"}, "-o parent=nope0: no such interface in netns " + host + ": create it first, or use X.N to have VLAN N on X created"},
		{[]string{"net", "connect", "--ip", "10.99.0.5", network, prefix + "c"}, "--ip 10.99.0.5 is outside the network's subnets (10.46.0.0/24)"},
		{[]string{"net", "connect", "--ip", "10.46.0.1", network, prefix + "c"}, "--ip 10.46.0.1 is already in use by the gateway"},
		{[]string{"net", "rm", "x"}, ""},
	} {
		code, _, errOut := runLabCLI(append([]string{"-n", host}, r.args...)...)
		if r.want == "" {
			if code != exitOK {
				t.Fatalf("%v: exit %d %s", r.args, code, errOut)
			}
			continue
		}
		// The exit-code table: a clash with an existing network fails (1,
		// as docker), a missing parent is the environment (3), the rest is
		// usage (2).
		wantCode := exitUsage
		switch {
		case strings.Contains(r.want, "already") || strings.Contains(r.want, "overlaps subnet") || strings.Contains(r.want, "uses it"):
			wantCode = exitFailed
		case strings.Contains(r.want, "no such interface"):
			wantCode = exitEnvError
		}
		if want := "vmlink: " + r.want + "\n"; code != wantCode || errOut != want {
			t.Errorf("%v: exit %d\n%q\nwant exit %d\n%q", r.args, code, errOut, wantCode, want)
		}
	}
	if names, _ := netns.List(); slices.Contains(names, prefix+"c") {
		t.Error("a refused connect left its container namespace")
	}
}

// TestShortNetID: net ls prints docker's 12-character id, and a record
// with a shorter id (written by hand, or by an older vmlink) whole instead
// of panicking.
func TestShortNetID(t *testing.T) {
	for in, want := range map[string]string{"": "", "abc": "abc", "0123456789ab": "0123456789ab", "0123456789abcdef": "0123456789ab"} {
		if got := shortNetID(in); got != want {
			t.Errorf("shortNetID(%q) = %q, want %q", in, got, want)
		}
	}
}

// addVethParent creates the veth pair p0/p0peer in the namespace ns: a
// parent for the networks of a test.
func addVethParent(t *testing.T, ns string) {
	t.Helper()
	c, err := rtnl.DialNetNS(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.NewLink(context.Background(), &rtnl.LinkMessage{Flags: 1, Change: 1, Attrs: rtnl.LinkAttrs{Name: "p0", Info: &rtnl.LinkInfo{Kind: "veth",
		Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "p0peer"}}}}}}, 0x400|0x200); err != nil {
		t.Fatal(err)
	}
}
