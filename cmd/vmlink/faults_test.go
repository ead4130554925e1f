//go:build faults

package main

// The fault tier (`make test-faults`): vmlink killed with -9 at seeded
// random moments of up, net create, net connect and lab, followed by the
// command a user would run to recover; SIGINT, SIGTERM, SIGHUP and SIGPIPE
// on lab, up, capture, verify and net connect; parallel operations on one
// network and on two topologies sharing a parent; empty, corrupt and
// foreign state files. After each run the kernel and the state directory
// are compared with what the state records: no namespace, link, address,
// forwarding sysctl, state or temp file that nothing owns; every container
// has exactly the interfaces and addresses its record says; no panic.
//
// It lives here, behind the faults build tag, because the test binary is
// the vmlink binary built once (TestVmlinkHelperProcess) and the package's
// process helpers are reused; the tag keeps its minutes out of the priv tier.
//
// Every command runs in throwaway namespaces named vmf<PID>… with its own
// state directory (VMLINK_STATE_DIR), never /run/vmlink and never the
// caller's namespace. VMLINK_FAULT_SEED repeats a run's kill points,
// VMLINK_FAULT_RUNS changes the number of runs per kill scenario (30).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/internal/netns"
)

// faultTally is what the summary prints.
var faultTally struct {
	sync.Mutex
	runs, faults, leaks int
	seen                map[string]bool // leaks counted once each
}

func tally(runs, faults, leaks int) {
	faultTally.Lock()
	faultTally.runs += runs
	faultTally.faults += faults
	faultTally.leaks += leaks
	faultTally.Unlock()
}

// faultSeed is VMLINK_FAULT_SEED or the clock; faultRuns is
// VMLINK_FAULT_RUNS or 30.
func faultSeed(t *testing.T) uint64 {
	if s := os.Getenv("VMLINK_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("VMLINK_FAULT_SEED=%q: want an unsigned integer", s)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

func faultRuns(t *testing.T) int {
	if s := os.Getenv("VMLINK_FAULT_RUNS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("VMLINK_FAULT_RUNS=%q: want a positive integer", s)
		}
		return v
	}
	return 30
}

// TestFaults runs every scenario and prints the summary, whose last line
// has the plain form the test runner counts.
func TestFaults(t *testing.T) {
	requireLabRoot(t)
	seed := faultSeed(t)
	runs := faultRuns(t)
	t.Logf("seed %d (VMLINK_FAULT_SEED=%d repeats it), %d runs per kill scenario", seed, seed, runs)
	hostFwd := readSysctls("")
	start := time.Now()
	scenarios := []struct {
		name string
		fn   func(*testing.T, *rand.Rand, int)
	}{
		{"Kill9NetCreate", faultKillNetCreate},
		{"Kill9NetConnect", faultKillNetConnect},
		{"Kill9Up", faultKillUp},
		{"Kill9Lab", faultKillLab},
		{"SignalsUp", faultSignalsUp},
		{"SignalsNetConnect", faultSignalsNetConnect},
		{"SignalsCaptureVerify", faultSignalsCaptureVerify},
		{"SignalsLab", faultSignalsLab},
		{"ParallelOneNetwork", faultParallelNetwork},
		{"ParallelTopologiesSharingParent", faultParallelTopologies},
		{"BadStateFiles", faultBadState},
	}
	passed, failed := 0, 0
	for i, sc := range scenarios {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		ran := false // -run may leave a scenario out
		ok := t.Run(sc.name, func(t *testing.T) { ran = true; sc.fn(t, rng, runs) })
		switch {
		case !ran:
		case ok:
			passed++
		default:
			failed++
		}
	}
	if got := readSysctls(""); got != hostFwd {
		t.Errorf("the caller's namespace forwarding changed: %s, was %s", got, hostFwd)
		tally(0, 0, 1)
	}
	faultTally.Lock()
	defer faultTally.Unlock()
	t.Logf("fault summary: %d runs, %d faults injected, %d leaks found (must be 0), seed %d, %s",
		faultTally.runs, faultTally.faults, faultTally.leaks, seed, time.Since(start).Round(time.Second))
	fmt.Printf("faults: %d runs, %d faults injected, %d leaks found\n", faultTally.runs, faultTally.faults, faultTally.leaks)
	fmt.Printf("faults: %d passed, %d failed\n", passed, failed)
	if faultTally.leaks > 0 {
		t.Errorf("%d leaks found", faultTally.leaks)
	}
}

// faultEnv is one scenario's sandbox: a host namespace holding a veth
// parent p0, a private state directory and the names it may create.
type faultEnv struct {
	t        *testing.T
	prefix   string // every namespace the scenario names starts with it
	host     string
	stateDir string
	links    []string // the host namespace's links before anything ran
	addrs    []string // and its addresses
	fwd      string   // and its forwarding sysctls
	// pre are namespaces that existed before a topology used them, with
	// their forwarding sysctls: after down they hold nothing but lo and
	// their old sysctls again.
	pre map[string]string
	// startup is how long `vmlink help` takes here.
	startup time.Duration
}

var faultEnvs int

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	faultEnvs++
	fx := &faultEnv{t: t, prefix: fmt.Sprintf("vmf%d%c-", os.Getpid(), 'a'+faultEnvs-1), stateDir: t.TempDir(), pre: map[string]string{}}
	fx.host = fx.prefix + "host"
	h, err := netns.Create(fx.host)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() {
		// Whatever a failure left: networks first (their parents'
		// children), then every namespace of the prefix.
		for _, name := range fx.recordedNetworks() {
			fx.vmlink("-n", fx.host, "net", "rm", name)
		}
		for _, n := range fx.netnsFiles() {
			netns.Delete(n)
		}
	})
	if out, err := exec.Command("ip", "-n", fx.host, "link", "add", "p0", "type", "veth", "peer", "name", "p0peer").CombinedOutput(); err != nil {
		t.Fatalf("veth parent: %v %s", err, out)
	}
	for _, l := range []string{"p0", "p0peer", "lo"} {
		exec.Command("ip", "-n", fx.host, "link", "set", l, "up").Run()
	}
	fx.links, fx.addrs, fx.fwd = fx.hostView()
	start := time.Now()
	fx.vmlink("help")
	fx.startup = time.Since(start)
	return fx
}

// cmd is vmlink ARGS in a process of its own with the scenario's state.
func (fx *faultEnv) cmd(args ...string) *exec.Cmd {
	c := helperCmd(fx.t, args...)
	c.Env = append(c.Env, "VMLINK_STATE_DIR="+fx.stateDir)
	return c
}

// vmlink runs vmlink ARGS to the end (at most 2 minutes) and reports a
// panic as a failure.
func (fx *faultEnv) vmlink(args ...string) (code int, stdout, stderr string) {
	c := fx.cmd(args...)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	code = fx.finish(c, 2*time.Minute, args)
	return code, o.String(), e.String()
}

// finish waits for a started c at most d (then kills it: a hang is a
// failure) and checks its stderr, when it is a buffer, for a panic.
func (fx *faultEnv) finish(c *exec.Cmd, d time.Duration, what any) int {
	if c.Process == nil {
		if err := c.Start(); err != nil {
			fx.t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(d):
		c.Process.Kill()
		<-done
		fx.t.Errorf("vmlink %v still ran after %s", what, d)
		return -1
	}
	if e, ok := c.Stderr.(*bytes.Buffer); ok {
		if s := e.String(); strings.Contains(s, "panic:") || strings.Contains(s, "goroutine ") {
			fx.t.Errorf("vmlink %v panicked:\n%s", what, s)
		}
	}
	if c.ProcessState == nil {
		fx.t.Fatal(err)
	}
	if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -int(ws.Signal())
	}
	return c.ProcessState.ExitCode()
}

// killAt starts vmlink ARGS and sends sig after delay; it returns the exit
// code (-N when sig N killed it) and the output.
func (fx *faultEnv) killAt(delay time.Duration, sig syscall.Signal, args ...string) (int, string) {
	c := fx.cmd(args...)
	var e bytes.Buffer
	c.Stdout, c.Stderr = &e, &e
	if err := c.Start(); err != nil {
		fx.t.Fatal(err)
	}
	if sig != syscall.SIGKILL {
		// A signal that arrives before the program asked for it
		// (signal.Notify) ends any Go program by default: catchable
		// signals come after twice the time `vmlink help` takes.
		delay += 2 * fx.startup
	}
	time.Sleep(delay)
	c.Process.Signal(sig)
	return fx.finish(c, 2*time.Minute, args), e.String()
}

// calibrate is how long vmlink ARGS takes here, process start included;
// undo takes its effect back.
func (fx *faultEnv) calibrate(undo func(), args ...string) time.Duration {
	start := time.Now()
	if code, _, e := fx.vmlink(args...); code != exitOK {
		fx.t.Fatalf("calibration %v: exit %d %s", args, code, e)
	}
	d := time.Since(start)
	undo()
	fx.t.Logf("%v takes %s", args, d.Round(time.Millisecond))
	return d
}

// delay is a kill point in [0, full·1.2).
func delay(rng *rand.Rand, full time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(full) * 6 / 5))
}

func (fx *faultEnv) netnsFiles() []string { return netnsFilesWith(fx.prefix) }

// ipJSON runs `ip -j ARGS` and decodes its output.
func ipJSON(args ...string) ([]map[string]any, error) {
	out, err := exec.Command("ip", append([]string{"-j"}, args...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("ip %v: %w", args, err)
	}
	var v []map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("ip %v: %w", args, err)
	}
	return v, nil
}

// view is a namespace's interfaces (but lo) and global addresses.
func view(ns string) (links, addrs []string, err error) {
	v, err := ipJSON("-n", ns, "addr")
	if err != nil {
		return nil, nil, err
	}
	for _, l := range v {
		name, _ := l["ifname"].(string)
		if name == "lo" {
			continue
		}
		links = append(links, name)
		ai, _ := l["addr_info"].([]any)
		for _, a := range ai {
			m, _ := a.(map[string]any)
			if m["scope"] == "link" {
				continue
			}
			addrs = append(addrs, fmt.Sprintf("%s %v/%v", name, m["local"], m["prefixlen"]))
		}
	}
	sort.Strings(links)
	sort.Strings(addrs)
	return links, addrs, nil
}

// readSysctls reads the forwarding sysctls vmlink may set, in ns ("" the
// caller's).
func readSysctls(ns string) string {
	keys := []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv6/conf/all/forwarding"}
	if ns == "" {
		var out []string
		for _, k := range keys {
			b, _ := os.ReadFile("/proc/sys/" + k)
			out = append(out, strings.TrimSpace(string(b)))
		}
		return strings.Join(out, ",")
	}
	args := []string{"netns", "exec", ns, "cat"}
	for _, k := range keys {
		args = append(args, "/proc/sys/"+k)
	}
	out, err := exec.Command("ip", args...).Output()
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return strings.Join(strings.Fields(string(out)), ",")
}

func (fx *faultEnv) hostView() (links, addrs []string, fwd string) {
	links, addrs, err := view(fx.host)
	if err != nil {
		fx.t.Fatal(err)
	}
	return links, addrs, readSysctls(fx.host)
}

// netState is the state file as the harness reads it: only what it needs
// to compare with the kernel.
func (fx *faultEnv) netState() (map[string]*dataplane.NetworkRecord, error) {
	nets, _, err := fx.netStateAll()
	return nets, err
}

// netStateAll also returns the namespaces the state records as being
// created (a connect killed before it finished): the next reconcile owns
// them.
func (fx *faultEnv) netStateAll() (map[string]*dataplane.NetworkRecord, []string, error) {
	b, err := os.ReadFile(filepath.Join(fx.stateDir, "state.json"))
	if os.IsNotExist(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var st struct {
		Networks map[string]*dataplane.NetworkRecord `json:"networks"`
		Pending  []string                            `json:"pending_namespaces"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil, fmt.Errorf("state.json: %w", err)
	}
	return st.Networks, st.Pending, nil
}

func (fx *faultEnv) recordedNetworks() []string {
	nets, _ := fx.netState()
	var out []string
	for n := range nets {
		out = append(out, n)
	}
	return out
}

// leaks compares kernel and state: every leak is logged and counted; it
// returns how many. extraNS are namespaces something else owns (a kept
// topology's, a parallel run's).
func (fx *faultEnv) leaks(when string, extraNS ...string) int {
	t := fx.t
	var found []string
	nets, pending, err := fx.netStateAll()
	if err != nil {
		found = append(found, "unreadable state: "+err.Error())
	}
	owned := map[string]bool{fx.host: true}
	for _, n := range pending {
		owned[n] = true
	}
	for _, n := range extraNS {
		owned[n] = true
	}
	for n := range fx.pre {
		owned[n] = true
	}
	want := map[string][]string{}     // container namespace → interfaces
	wantAddr := map[string][]string{} // and addresses
	hostLinks := slices.Clone(fx.links)
	hostAddrs := slices.Clone(fx.addrs)
	for _, rec := range nets {
		if rec.ParentCreated {
			hostLinks = append(hostLinks, rec.Parent)
		}
		if rec.Shim != nil {
			hostLinks = append(hostLinks, rec.Shim.Interface)
			for _, a := range rec.Shim.Addrs {
				hostAddrs = append(hostAddrs, rec.Shim.Interface+" "+a.String())
			}
		}
		for name, a := range rec.Endpoints {
			owned[a.NetNS] = true
			want[a.NetNS] = append(want[a.NetNS], a.Interface)
			for _, p := range a.Addrs {
				wantAddr[a.NetNS] = append(wantAddr[a.NetNS], a.Interface+" "+p.String())
			}
			_ = name
		}
	}
	for _, n := range fx.netnsFiles() {
		if !owned[n] {
			found = append(found, "namespace "+n+" that no record owns")
		}
	}
	for ns, ifs := range want {
		links, addrs, err := view(ns)
		if err != nil {
			found = append(found, fmt.Sprintf("container %s is recorded but unreadable: %v", ns, err))
			continue
		}
		sort.Strings(ifs)
		w := wantAddr[ns]
		sort.Strings(w)
		if !slices.Equal(links, ifs) {
			found = append(found, fmt.Sprintf("container %s has interfaces %v, its records say %v", ns, links, ifs))
		}
		if !slices.Equal(addrs, w) {
			found = append(found, fmt.Sprintf("container %s has addresses %v, its records say %v", ns, addrs, w))
		}
	}
	links, addrs, fwd := fx.hostView()
	sort.Strings(hostLinks)
	sort.Strings(hostAddrs)
	if l := setDiff(links, hostLinks); len(l) > 0 {
		found = append(found, fmt.Sprintf("host links %v that no record owns", l))
	}
	if l := setDiff(addrs, hostAddrs); len(l) > 0 {
		found = append(found, fmt.Sprintf("host addresses %v that no record owns", l))
	}
	if fwd != fx.fwd && len(nets) == 0 {
		found = append(found, fmt.Sprintf("host forwarding %s, was %s", fwd, fx.fwd))
	}
	filepath.WalkDir(fx.stateDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".tmp") || strings.Contains(filepath.Base(p), ".tmp")) {
			found = append(found, "temp file "+p)
		}
		return nil
	})
	for _, f := range found {
		t.Errorf("leak %s: %s", when, f)
	}
	n := 0
	faultTally.Lock()
	for _, f := range found {
		if faultTally.seen == nil {
			faultTally.seen = map[string]bool{}
		}
		if !faultTally.seen[f] {
			faultTally.seen[f] = true
			n++
		}
	}
	faultTally.Unlock()
	tally(0, 0, n)
	return len(found)
}

func setDiff(have, want []string) []string {
	var out []string
	for _, h := range have {
		if !slices.Contains(want, h) {
			out = append(out, h)
		}
	}
	return out
}

// noTopologyLeft: after down nothing of the prefix but the host, and no
// topology state.
func (fx *faultEnv) noTopologyLeft(when string, keep ...string) int {
	n := fx.leaks(when, keep...)
	for ns, fwd := range fx.pre {
		links, addrs, err := view(ns)
		got := readSysctls(ns)
		if err != nil || len(links) > 0 || len(addrs) > 0 || got != fwd {
			fx.t.Errorf("leak %s: namespace %s that existed before has links %v, addresses %v, forwarding %s (was %s) %v", when, ns, links, addrs, got, fwd, err)
			n++
			tally(0, 0, 1)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(fx.stateDir, "topologies"))
	for _, e := range ents {
		fx.t.Errorf("leak %s: topology state %s after down", when, e.Name())
		n++
		tally(0, 0, 1)
	}
	return n
}

func faultKillNetCreate(t *testing.T, rng *rand.Rand, runs int) {
	fx := newFaultEnv(t)
	create := func(name string) []string {
		return []string{"-n", fx.host, "net", "create", "--subnet", "10.61.0.0/24", "-o", "parent=p0", "--host-shim", name}
	}
	full := fx.calibrate(func() { fx.vmlink("-n", fx.host, "net", "rm", "cal") }, create("cal")...)
	for run := range runs {
		name := fmt.Sprintf("n%d", run)
		fx.killAt(delay(rng, full), syscall.SIGKILL, create(name)...)
		// Recovery: see what is there, remove the network (it may not exist).
		if code, _, e := fx.vmlink("-n", fx.host, "net", "ls"); code != exitOK {
			t.Errorf("run %d: net ls after the kill: exit %d %s", run, code, e)
		}
		fx.leaks(fmt.Sprintf("run %d after kill+ls", run))
		if code, _, e := fx.vmlink("-n", fx.host, "net", "rm", name); code != exitOK && !strings.Contains(e, "no network") && !strings.Contains(e, "not found") {
			t.Errorf("run %d: net rm: exit %d %s", run, code, e)
		}
		fx.leaks(fmt.Sprintf("run %d after rm", run))
		if len(fx.recordedNetworks()) != 0 {
			t.Errorf("run %d: networks still recorded after rm: %v", run, fx.recordedNetworks())
		}
		tally(1, 1, 0)
	}
}

func faultKillNetConnect(t *testing.T, rng *rand.Rand, runs int) {
	fx := newFaultEnv(t)
	if code, _, e := fx.vmlink("-n", fx.host, "net", "create", "--subnet", "10.62.0.0/24", "-o", "parent=p0", "--host-shim", "kn"); code != exitOK {
		t.Fatalf("create: %s", e)
	}
	connect := func(c string) []string { return []string{"-n", fx.host, "net", "connect", "kn", fx.prefix + c} }
	full := fx.calibrate(func() { fx.vmlink("-n", fx.host, "net", "disconnect", "kn", fx.prefix+"cal") }, connect("cal")...)
	for run := range runs {
		c := fmt.Sprintf("c%d", run)
		fx.killAt(delay(rng, full), syscall.SIGKILL, connect(c)...)
		// Recovery: the user connects again; "already exists" (exit 1 as
		// docker says it, or 2) when the killed connect had finished.
		if code, _, e := fx.vmlink(connect(c)...); code != exitOK && !((code == exitFailed || code == exitUsage) && strings.Contains(e, "already exists")) {
			t.Errorf("run %d: connect again: exit %d %s", run, code, e)
		}
		fx.leaks(fmt.Sprintf("run %d after connecting again", run))
		tally(1, 1, 0)
	}
	if code, _, e := fx.vmlink("-n", fx.host, "net", "ls"); code != exitOK {
		t.Errorf("net ls: %s", e)
	}
	for run := range runs {
		if code, _, e := fx.vmlink("-n", fx.host, "net", "disconnect", "kn", fx.prefix+fmt.Sprintf("c%d", run)); code != exitOK {
			t.Errorf("disconnect c%d: %s", run, e)
		}
	}
	if code, _, e := fx.vmlink("-n", fx.host, "net", "rm", "kn"); code != exitOK {
		t.Errorf("rm: %s", e)
	}
	fx.leaks("after disconnect and rm")
}

// topology is a file of one network on the host namespace's p0 (which
// every topology of the scenario shares), a host shim, and endpoints; the
// first endpoint lives in a namespace that existed before (…NAMEpre) and
// turns forwarding on, which down must put back.
func (fx *faultEnv) topology(name, subnet string, ends int) string {
	pre := fx.prefix + name + "pre"
	if _, ok := fx.pre[pre]; !ok {
		h, err := netns.Create(pre)
		if err != nil {
			fx.t.Fatal(err)
		}
		h.Close()
		fx.pre[pre] = readSysctls(pre)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s%s\nhost: %s\nparents:\n  - {name: p0}\n", fx.prefix, name, fx.host)
	fmt.Fprintf(&b, "networks:\n  - {name: a, parent: p0, mode: bridge, subnets: [%s]}\nendpoints:\n", subnet)
	fmt.Fprintf(&b, "  - {name: e0, netns: %s, forwarding: true, interfaces: [{network: a}]}\n", pre)
	for i := 1; i < ends; i++ {
		fmt.Fprintf(&b, "  - {name: e%d, netns: %s%se%d, interfaces: [{network: a}]}\n", i, fx.prefix, name, i)
	}
	shim := strings.TrimSuffix(subnet, "0/24") + "250/32"
	fmt.Fprintf(&b, "host_shims: [{network: a, name: shim%s, addresses: [%s]}]\n", name, shim)
	f := filepath.Join(fx.t.TempDir(), name+".yaml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		fx.t.Fatal(err)
	}
	return f
}

func faultKillUp(t *testing.T, rng *rand.Rand, runs int) {
	fx := newFaultEnv(t)
	f := fx.topology("t", "10.63.0.0/24", 3)
	full := fx.calibrate(func() { fx.vmlink("down", "-f", f) }, "up", "-f", f)
	for run := range runs {
		fx.killAt(delay(rng, full), syscall.SIGKILL, "up", "-f", f)
		if code, _, e := fx.vmlink("down", "-f", f); code != exitOK {
			t.Errorf("run %d: down -f after the kill: exit %d %s", run, code, e)
		}
		fx.noTopologyLeft(fmt.Sprintf("run %d after down -f", run))
		tally(1, 1, 0)
	}
}

func faultKillLab(t *testing.T, rng *rand.Rand, runs int) {
	fx := newFaultEnv(t)
	full := 3 * time.Second // a lab's setup; its verify phase is the same code killed later
	for run := range runs {
		c := fx.cmd("lab", "modes")
		var e bytes.Buffer
		c.Stdout, c.Stderr = &e, &e
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		prefix := dataplane.LabPrefix(c.Process.Pid)
		time.Sleep(delay(rng, full))
		c.Process.Kill()
		fx.finish(c, time.Minute, "lab")
		code, out, errOut := fx.vmlink("lab", "--down", prefix)
		if code != exitOK && !(code == exitFailed && strings.Contains(errOut, "no lab namespace")) {
			t.Errorf("run %d: lab --down %s: exit %d %s %s", run, prefix, code, out, errOut)
		}
		if l := netnsFilesWith(prefix); len(l) > 0 {
			t.Errorf("leak run %d: lab namespaces after lab --down: %v", run, l)
			tally(0, 0, len(l))
			for _, n := range l {
				netns.Delete(n)
			}
		}
		fx.noTopologyLeft(fmt.Sprintf("lab run %d", run))
		tally(1, 1, 0)
	}
}

var faultSignals = []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE}

// signalled checks the exit of a command that got sig: finished before it
// (0) or cleaned up and exited 128+N.
func signalled(t *testing.T, what string, sig syscall.Signal, code int, out string) bool {
	switch code {
	case exitOK:
		return false
	case exitSignal + int(sig):
		if !strings.Contains(out, "interrupted by "+signalName(sig)) {
			t.Errorf("%s: exit %d without naming %s: %q", what, code, signalName(sig), out)
		}
		return true
	}
	t.Errorf("%s: %s gave exit %d, want 0 or %d: %q", what, signalName(sig), code, exitSignal+int(sig), out)
	return true
}

func faultSignalsUp(t *testing.T, rng *rand.Rand, _ int) {
	fx := newFaultEnv(t)
	f := fx.topology("s", "10.64.0.0/24", 3)
	full := fx.calibrate(func() { fx.vmlink("down", "-f", f) }, "up", "-f", f)
	for _, sig := range faultSignals {
		for run := range 3 {
			code, out := fx.killAt(delay(rng, full), sig, "up", "-f", f)
			what := fmt.Sprintf("up %s run %d", signalName(sig), run)
			if !signalled(t, what, sig, code, out) {
				fx.vmlink("down", "-f", f)
			}
			fx.noTopologyLeft(what)
			tally(1, 1, 0)
		}
	}
}

func faultSignalsNetConnect(t *testing.T, rng *rand.Rand, _ int) {
	fx := newFaultEnv(t)
	if code, _, e := fx.vmlink("-n", fx.host, "net", "create", "--subnet", "10.65.0.0/24", "-o", "parent=p0", "sn"); code != exitOK {
		t.Fatalf("create: %s", e)
	}
	connect := func(c string) []string { return []string{"-n", fx.host, "net", "connect", "sn", fx.prefix + c} }
	full := fx.calibrate(func() { fx.vmlink("-n", fx.host, "net", "disconnect", "sn", fx.prefix+"cal") }, connect("cal")...)
	for _, sig := range faultSignals {
		for run := range 3 {
			c := fmt.Sprintf("%s%d", strings.ToLower(signalName(sig))[3:], run)
			code, out := fx.killAt(delay(rng, full), sig, connect(c)...)
			what := fmt.Sprintf("connect %s run %d", signalName(sig), run)
			signalled(t, what, sig, code, out)
			fx.leaks(what)
			fx.vmlink("-n", fx.host, "net", "disconnect", "sn", fx.prefix+c)
			tally(1, 1, 0)
		}
	}
	if code, _, e := fx.vmlink("-n", fx.host, "net", "rm", "sn"); code != exitOK {
		t.Errorf("rm: %s", e)
	}
	fx.leaks("after rm")
}

// promisc is the promiscuity count of the host's p0.
func (fx *faultEnv) promisc() float64 {
	v, err := ipJSON("-n", fx.host, "-d", "link", "show", "p0")
	if err != nil || len(v) == 0 {
		fx.t.Fatal(err)
	}
	p, _ := v[0]["promiscuity"].(float64)
	return p
}

func faultSignalsCaptureVerify(t *testing.T, rng *rand.Rand, _ int) {
	fx := newFaultEnv(t)
	f := fx.topology("v", "10.66.0.0/24", 2)
	if code, _, e := fx.vmlink("up", "-f", f); code != exitOK {
		t.Fatalf("up: %s", e)
	}
	before := fx.promisc()
	for _, sig := range faultSignals {
		for run := range 2 {
			// capture runs until stopped: every signal interrupts it.
			code, out := fx.killAt(300*time.Millisecond+delay(rng, 500*time.Millisecond), sig, "-n", fx.host, "capture", "-i", "p0")
			what := fmt.Sprintf("capture %s run %d", signalName(sig), run)
			// Ending a capture is what its signals are for: 0 like
			// tcpdump, or 128+N.
			if code != exitOK {
				signalled(t, what, sig, code, out)
			}
			if fx.promisc() != before {
				t.Errorf("leak %s: p0 left promiscuous", what)
				tally(0, 0, 1)
			}
			code, out = fx.killAt(delay(rng, 3*time.Second), sig, "verify", "--topology", f)
			what = fmt.Sprintf("verify %s run %d", signalName(sig), run)
			if code != exitFailed { // a verdict is 0 or 1
				signalled(t, what, sig, code, out)
			}
			if fx.promisc() != before {
				t.Errorf("leak %s: p0 left promiscuous", what)
				tally(0, 0, 1)
			}
			tally(2, 2, 0)
		}
	}
	if code, _, e := fx.vmlink("down", "-f", f); code != exitOK {
		t.Errorf("down: %s", e)
	}
	fx.noTopologyLeft("after down")
}

func faultSignalsLab(t *testing.T, rng *rand.Rand, _ int) {
	fx := newFaultEnv(t)
	for _, sig := range faultSignals {
		c := fx.cmd("lab", "modes")
		var e bytes.Buffer
		c.Stdout, c.Stderr = &e, &e
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		prefix := dataplane.LabPrefix(c.Process.Pid)
		time.Sleep(500*time.Millisecond + delay(rng, 3*time.Second))
		c.Process.Signal(sig)
		code := fx.finish(c, 2*time.Minute, "lab")
		what := "lab " + signalName(sig)
		if code != exitFailed {
			signalled(t, what, sig, code, e.String())
		}
		if l := namespacesWith(prefix); len(l) > 0 {
			t.Errorf("leak %s: %v", what, l)
			tally(0, 0, len(l))
			fx.vmlink("lab", "--down", prefix)
		}
		fx.noTopologyLeft(what)
		tally(1, 1, 0)
	}
}

func faultParallelNetwork(t *testing.T, rng *rand.Rand, runs int) {
	fx := newFaultEnv(t)
	if code, _, e := fx.vmlink("-n", fx.host, "net", "create", "--subnet", "10.67.0.0/24", "-o", "parent=p0", "--host-shim", "pn"); code != exitOK {
		t.Fatalf("create: %s", e)
	}
	// Connects, some killed at random, with ls (which reconciles) and
	// disconnects of earlier ones alongside.
	var wg sync.WaitGroup
	var mu sync.Mutex
	killed := 0
	n := min(runs, 12)
	for i := range n {
		kill := rng.IntN(3) == 0
		d := delay(rng, 2*time.Second)
		wg.Go(func() {
			args := []string{"-n", fx.host, "net", "connect", "pn", fmt.Sprintf("%sp%d", fx.prefix, i)}
			if kill {
				fx.killAt(d, syscall.SIGKILL, args...)
				mu.Lock()
				killed++
				mu.Unlock()
				return
			}
			if code, _, e := fx.vmlink(args...); code != exitOK {
				t.Errorf("parallel connect %d: exit %d %s", i, code, e)
			}
		})
		if i%3 == 0 {
			wg.Go(func() {
				if code, _, e := fx.vmlink("-n", fx.host, "net", "ls"); code != exitOK {
					t.Errorf("parallel ls: %s", e)
				}
			})
		}
	}
	wg.Wait()
	tally(n, killed, 0)
	if code, _, e := fx.vmlink("-n", fx.host, "net", "ls"); code != exitOK {
		t.Errorf("ls: %s", e)
	}
	fx.leaks("after parallel connects and ls")
	nets, _ := fx.netState()
	if rec := nets["pn"]; rec != nil {
		seen := map[string]string{}
		for name, a := range rec.Endpoints {
			for _, p := range a.Addrs {
				if o, dup := seen[p.Addr().String()]; dup {
					t.Errorf("%s given to %s and %s", p.Addr(), o, name)
				}
				seen[p.Addr().String()] = name
			}
			if code, _, e := fx.vmlink("-n", fx.host, "net", "disconnect", "pn", a.NetNS); code != exitOK {
				t.Errorf("disconnect %s: %s", a.NetNS, e)
			}
		}
	}
	if code, _, e := fx.vmlink("-n", fx.host, "net", "rm", "pn"); code != exitOK {
		t.Errorf("rm: %s", e)
	}
	fx.leaks("after rm")
}

func faultParallelTopologies(t *testing.T, rng *rand.Rand, _ int) {
	fx := newFaultEnv(t)
	// Two topologies on the same sandbox switch (one wire, one parent).
	f1 := fx.topology("x", "10.68.0.0/24", 2)
	f2 := fx.topology("y", "10.68.1.0/24", 2)
	for run := range 5 {
		var wg sync.WaitGroup
		kill := run%2 == 1
		for _, f := range []string{f1, f2} {
			d := delay(rng, 2*time.Second)
			wg.Go(func() {
				if kill && f == f2 {
					fx.killAt(d, syscall.SIGKILL, "up", "-f", f)
					return
				}
				if code, _, e := fx.vmlink("up", "-f", f); code != exitOK {
					t.Errorf("run %d: parallel up %s: exit %d %s", run, filepath.Base(f), code, e)
				}
			})
		}
		wg.Wait()
		// Down of one leaves the other whole.
		if code, _, e := fx.vmlink("down", "-f", f2); code != exitOK {
			t.Errorf("run %d: down y: %s", run, e)
		}
		for _, ns := range []string{fx.prefix + "xpre", fx.prefix + "xe1"} {
			if l, a, err := view(ns); err != nil || len(l) != 1 || len(a) != 1 {
				t.Errorf("run %d: x's %s after down of y: links %v addrs %v %v", run, ns, l, a, err)
			}
		}
		if code, _, e := fx.vmlink("down", "-f", f1); code != exitOK {
			t.Errorf("run %d: down x: %s", run, e)
		}
		fx.noTopologyLeft(fmt.Sprintf("parallel topologies run %d", run))
		tally(2, btoi(kill), 0)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// faultBadState: an empty, a corrupt and a foreign state.json, and an id
// too short: every net command ends with a message (no panic), and the
// way out the message names works.
func faultBadState(t *testing.T, _ *rand.Rand, _ int) {
	fx := newFaultEnv(t)
	path := filepath.Join(fx.stateDir, "state.json")
	good := func() {
		if code, _, e := fx.vmlink("-n", fx.host, "net", "create", "--subnet", "10.69.0.0/24", "-o", "parent=p0", "bs"); code != exitOK {
			t.Fatalf("create: %s", e)
		}
		if code, _, e := fx.vmlink("-n", fx.host, "net", "connect", "bs", fx.prefix+"b1"); code != exitOK {
			t.Fatalf("connect: %s", e)
		}
	}
	bad := map[string]func([]byte) []byte{
		"empty":    func([]byte) []byte { return nil },
		"corrupt":  func(b []byte) []byte { return b[:len(b)/2] },
		"foreign":  func([]byte) []byte { return []byte(`{"version":3,"containers":[{"id":"x"}]}`) },
		"shortid":  func(b []byte) []byte { return bytes.Replace(b, []byte(`"id": "`), []byte(`"id": "ab`+`", "x": "`), 1) },
		"nul":      func(b []byte) []byte { return bytes.Repeat([]byte{0}, len(b)) },
		"notafile": nil,
	}
	names := make([]string, 0, len(bad))
	for k := range bad {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, kind := range names {
		good()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if mangle := bad[kind]; mangle != nil {
			os.WriteFile(path, mangle(b), 0o644)
		} else {
			os.Remove(path)
			os.Mkdir(path, 0o755)
		}
		for _, args := range [][]string{{"net", "ls"}, {"net", "inspect", "bs"}, {"net", "create", "--subnet", "10.70.0.0/24", "-o", "parent=p0", "bs2"}, {"net", "connect", "bs", fx.prefix + "b2"}, {"net", "rm", "bs"}} {
			code, _, e := fx.vmlink(append([]string{"-n", fx.host}, args...)...)
			if code != exitOK && (strings.Count(strings.TrimSpace(e), "\n") > 3 || e == "") {
				t.Errorf("%s state, %v: exit %d with %q, want one message", kind, args, code, e)
			}
		}
		// The way out: whatever the state was, moving it away and
		// cleaning the namespaces by hand must leave nothing.
		os.RemoveAll(path)
		for _, n := range fx.netnsFiles() {
			if n != fx.host {
				netns.Delete(n)
			}
		}
		fx.vmlink("-n", fx.host, "net", "ls")
		fx.leaks(kind + " state")
		tally(1, 1, 0)
	}
}

// netnsFilesWith lists the names under /run/netns starting with prefix,
// mounted or not (namespacesWith lists only mounted ones).
func netnsFilesWith(prefix string) []string {
	var out []string
	ents, _ := os.ReadDir(netns.Dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}
