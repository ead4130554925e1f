package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/testenv"
)

func TestVerifyUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"verify"}, exitUsage, "--parent IFACE or --topology FILE is required"},
		{[]string{"-n", "x", "verify", "--topology", "lab.yaml"}, exitUsage, "-n does not go with --topology"},
		{[]string{"verify", "--topology", "/nonexistent/lab.yaml"}, exitUsage, "open topology"},
		{[]string{"verify", "--parent", "h0", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"verify", "--parent", "h0", "--reflects", "maybe"}, exitUsage, "--reflects"},
		{[]string{"verify", "--parent", "h0", "--wait", "-1s"}, exitUsage, "--wait"},
		{[]string{"verify", "--parent", "h0", "-w", "-"}, exitUsage, "-w -"},
		{[]string{"verify", "--parent", "h0", "-w", "x.pcapng", "--no-capture"}, exitUsage, "-w needs the capture"},
		{[]string{"verify", "--bogus"}, exitUsage, "bogus"},
		{[]string{"verify", "help"}, exitOK, ""},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, errOut.String())
		}
		if !strings.Contains(errOut.String(), tc.msg) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, errOut.String(), tc.msg)
		}
	}
	var out bytes.Buffer
	run([]string{"verify", "help"}, &out, &out)
	if !strings.Contains(out.String(), "--parent IFACE") {
		t.Errorf("help: %s", out.String())
	}
}

// A parent that does not exist is the environment's fault: exit 3.
func TestVerifyMissingParent(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the links of every namespace under /run/netns: needs root; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to read namespaces under /run/netns")
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"verify", "--parent", "vmlt-nosuch0"}, &out, &errOut); code != exitEnvError {
		t.Fatalf("exit %d, want %d: %s", code, exitEnvError, errOut.String())
	}
	if !strings.Contains(errOut.String(), `no interface "vmlt-nosuch0"`) {
		t.Fatalf("stderr %q", errOut.String())
	}
}

// vmlink verify --topology FILE, end to end: up -f applies a sandboxed
// parent (a switch with hairpin on) with a VEPA network, two containers and
// a host address; verify --topology finds the applied objects by the
// file's names and proves the matrix; down -f removes it all, after which
// verify --topology says the file is not applied (exit 3).
func TestVerifyTopologyFile(t *testing.T) {
	requireLabRoot(t)
	p := fmt.Sprintf("vmlt-vt%d", os.Getpid())
	file := filepath.Join(t.TempDir(), "topo.yaml")
	yaml := fmt.Sprintf(`name: %[1]s
host: %[1]s-host
parents:
  - name: eth0
    sandbox: {switch: %[1]s-sw, hairpin: true}
    addresses: [10.91.0.1/24]
networks:
  - {name: vepanet, parent: eth0, mode: vepa, subnets: [10.91.0.0/24]}
endpoints:
  - {name: %[1]s-a, interfaces: [{network: vepanet, mac: "02:00:00:00:91:0a", addresses: [10.91.0.10/24]}]}
  - {name: %[1]s-b, interfaces: [{network: vepanet, mac: "02:00:00:00:91:0b", addresses: [10.91.0.11/24]}]}
`, p)
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runLabCLI("up", "-f", file); code != exitOK {
		t.Fatalf("up: exit %d\n%s\n%s", code, out, errOut)
	}
	downed := false
	t.Cleanup(func() {
		if !downed {
			runLabCLI("down", "-f", file)
		}
	})

	junit := filepath.Join(t.TempDir(), "junit.xml")
	code, out, errOut := runLabCLI("-j", "verify", "--topology", file, "--junit", junit)
	if code != exitOK {
		t.Fatalf("verify --topology: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep struct {
		OK             bool `json:"ok"`
		SwitchReflects bool `json:"switch_reflects"`
		Pairs          []struct {
			From, To, Expected, Observed string
		} `json:"pairs"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	if !rep.OK || !rep.SwitchReflects {
		t.Errorf("ok %v switch_reflects %v, want both true:\n%s", rep.OK, rep.SwitchReflects, out)
	}
	// --reflects given on the command line is reported as such, not as the
	// topology's.
	if code, out, errOut := runLabCLI("verify", "--topology", file, "--reflects", "yes", "--no-capture"); code != exitOK ||
		!strings.Contains(out, "switch reflects: yes (configured: given with --reflects)") {
		t.Errorf("verify --reflects yes: exit %d\n%s\n%s", code, out, errOut)
	}
	cells := map[string]string{}
	for _, c := range rep.Pairs {
		cells[c.From+"→"+c.To] = c.Observed
	}
	a, b, host := p+"-a/eth0", p+"-b/eth0", p+"-host/eth0"
	for _, k := range []string{a + "→" + b, b + "→" + a, host + "→" + a, a + "→" + host} {
		if cells[k] != "reachable" {
			t.Errorf("%s observed %q, want reachable (VEPA through a reflecting switch); pairs %v", k, cells[k], cells)
		}
	}
	if x, err := os.ReadFile(junit); err != nil || !strings.Contains(string(x), "vmlink verify "+host) {
		t.Errorf("junit: %v\n%s", err, x)
	}
	if code, _, errOut := runLabCLI("verify", "--topology", file, "--parent", "nosuch0"); code != exitUsage || !strings.Contains(errOut, `no interfaces on parent "nosuch0"`) {
		t.Errorf("--parent nosuch0: exit %d, stderr %q", code, errOut)
	}

	if code, out, errOut := runLabCLI("down", "-f", file); code != exitOK {
		t.Fatalf("down: exit %d\n%s\n%s", code, out, errOut)
	}
	downed = true
	if code, _, errOut := runLabCLI("verify", "--topology", file); code != exitEnvError || !strings.Contains(errOut, "apply the file first") {
		t.Errorf("verify after down: exit %d, want %d; stderr %q", code, exitEnvError, errOut)
	}
}

// A verify that finds nothing, or probes nothing, never passes: exit 3
// with one line saying what it searched (or why no pair was probed). The
// parent has no children; then a child without an address (no pair: the
// parent has no address either); then the parent gets only an IPv6
// address while the child has IPv4 (pairs, none probed); --min-pairs fails
// a run that probed fewer.
func TestVerifyNothingToVerify(t *testing.T) {
	requireLabRoot(t)
	p := testenv.NewParent(t, testenv.ParentOptions{Name: "h0"})
	host := p.Host
	verifyCLI := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"-n", host.Name(), "verify"}, args...), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	cases := []struct {
		setup []string // ip command run in the host namespace first
		args  []string
		code  int
		want  string
	}{
		{nil, []string{"--parent", "lo"}, exitUsage, "the loopback carries no macvlan or VLAN links"},
		{nil, []string{"--parent", "h0"}, exitEnvError, "namespaces searched: /run/netns ("},
		{[]string{"link", "add", "m1", "link", "h0", "type", "macvlan", "mode", "bridge"}, []string{"--parent", "h0"}, exitEnvError, "no pair to probe"},
		{[]string{"addr", "add", "fd00:99::1/64", "dev", "h0", "nodad"}, []string{"--parent", "h0", "--no-capture"}, exitEnvError, "probed none of the 2 pairs"},
		{[]string{"addr", "add", "10.97.0.1/24", "dev", "h0"}, []string{"--parent", "h0", "--no-capture", "--container", "nosuch"}, exitEnvError, "--container nosuch left out 1"},
	}
	for _, tc := range cases {
		if tc.setup != nil {
			host.Run(t, "ip", tc.setup...)
		}
		code, out := verifyCLI(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("verify %v: exit %d, want %d with one line containing %q:\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}
	// m1 gets an address: one pair each way with the host, probed.
	host.Run(t, "ip", "link", "set", "m1", "up")
	host.Run(t, "ip", "addr", "add", "10.97.0.2/24", "dev", "m1")
	code, out := verifyCLI("--parent", "h0", "--no-capture", "--min-pairs", "3", "-j")
	var rep struct {
		PairsProbed int `json:"pairs_probed"`
		PairsTotal  int `json:"pairs_total"`
		Checks      []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, out)
	}
	if code != exitFailed || rep.PairsProbed != 2 || rep.PairsTotal != 2 {
		t.Fatalf("--min-pairs 3 with 2 pairs: exit %d, probed %d of %d; want exit %d, 2 of 2:\n%s", code, rep.PairsProbed, rep.PairsTotal, exitFailed, out)
	}
	failed := ""
	for _, c := range rep.Checks {
		if !c.OK {
			failed += c.Name + " "
		}
	}
	if failed != "pairs-probed " {
		t.Errorf("failed checks %q, want only pairs-probed:\n%s", failed, out)
	}
	if code, out := verifyCLI("--parent", "h0", "--no-capture", "--min-pairs", "2"); code != exitOK || !strings.Contains(out, "probed 2 of 2 ordered pairs") {
		t.Errorf("--min-pairs 2 with 2 pairs: exit %d:\n%s", code, out)
	}
}

// --network names a vmlink network too: verify keeps the endpoints of the
// containers connected to it (read from vmlink's state) and leaves out
// those of another network on the same parent.
func TestVerifyVmlinkNetworkFilter(t *testing.T) {
	requireLabRoot(t)
	p := testenv.NewParent(t, testenv.ParentOptions{Name: "h0"})
	host := p.Host.Name()
	tag := fmt.Sprintf("%d", os.Getpid())
	nets := []string{"vfa" + tag, "vfb" + tag}
	ctrs := []string{"vmlt-vf" + tag + "-c1", "vmlt-vf" + tag + "-c2", "vmlt-vf" + tag + "-c3"}
	t.Cleanup(func() {
		// Containers first: net rm refuses a network whose endpoints
		// are alive, and reconciles those whose namespace is gone.
		for _, c := range ctrs {
			netns.Delete(c)
		}
		for _, n := range nets {
			if code, _, e := runLabCLI("-n", host, "net", "rm", n); code != exitOK && !strings.Contains(e, "not found") && !strings.Contains(e, "no network") {
				t.Errorf("cleanup: net rm %s: exit %d: %s", n, code, e)
			}
		}
	})
	for i, n := range nets {
		if code, _, e := runLabCLI("-n", host, "net", "create", "--subnet", fmt.Sprintf("10.96.%d.0/24", i), "-o", "parent=h0", n); code != exitOK {
			t.Fatalf("net create %s: %s", n, e)
		}
	}
	for i, c := range ctrs {
		if code, _, e := runLabCLI("-n", host, "net", "connect", nets[i/2], c); code != exitOK {
			t.Fatalf("net connect %s %s: %s", nets[i/2], c, e)
		}
	}
	for _, filter := range [][]string{{"--network", nets[0]}, {"--netns", ctrs[0] + "," + ctrs[1]}} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"-n", host, "verify", "--parent", "h0", "--no-capture", "-j"}, filter...), &out, &errOut)
		var rep struct {
			Endpoints []struct{ ID string } `json:"endpoints"`
		}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("%v: exit %d: %v: %s%s", filter, code, err, out.String(), errOut.String())
		}
		var got []string
		for _, ep := range rep.Endpoints {
			ns, _, _ := strings.Cut(ep.ID, "/")
			got = append(got, ns)
		}
		if code != exitOK || strings.Join(got, " ") != ctrs[0]+" "+ctrs[1] {
			t.Errorf("%v: exit %d, endpoints in %v, want %v:\n%s%s", filter, code, got, ctrs[:2], out.String(), errOut.String())
		}
	}
}
