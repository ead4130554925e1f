package cni_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlink/vmlink/cni"
	"github.com/vmlink/vmlink/testenv"
)

// refDir is where Debian's containernetworking-plugins puts the reference
// plugins (and host-local).
const refDir = "/usr/lib/cni"

// pluginEnv makes the test binary itself answer as the plugin: TestMain
// sees it and runs cni.Main. So the tests need no Go toolchain (the VM
// guest has none) and exercise exactly the code under test.
const pluginEnv = "VMLINK_CNI_TEST_PLUGIN"

var (
	dirOnce sync.Once
	dir     string
	dirErr  error
)

// pluginDir is a directory holding the plugin as "vmlink", as a runtime
// finds it in CNI_PATH: a link to this test binary.
func pluginDir(t testing.TB) string {
	t.Helper()
	dirOnce.Do(func() {
		var self string
		if self, dirErr = os.Executable(); dirErr != nil {
			return
		}
		if dir, dirErr = os.MkdirTemp("", "vmlink-cni-test-"); dirErr != nil {
			return
		}
		dirErr = os.Symlink(self, filepath.Join(dir, "vmlink"))
	})
	if dirErr != nil {
		t.Fatalf("plugin directory: %v", dirErr)
	}
	return dir
}

// TestMain runs the plugin when the test binary is invoked as one, and
// removes the plugin directory after the tests.
func TestMain(m *testing.M) {
	// By the variable, or by the name runtimes exec it under: Podman's
	// "container cleanup" (conmon's exit command) calls the plugin with an
	// environment of its own, and a test binary that then ran its tests
	// instead of the plugin recursed into Podman and hung.
	if os.Getenv(pluginEnv) == "1" || filepath.Base(os.Args[0]) == "vmlink" {
		os.Exit(cni.Main(cni.EnvFrom(os.Getenv), os.Stdin, os.Stdout))
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// hostTierOnly skips a test of the plugin's own logic on the macvlan kind
// inside the VM: the priv tier runs it on the host kernel, and under TCG
// it costs minutes per kernel. The VM tier runs what the host cannot
// (ipvlan, vlan: the *VM tests) and what depends on the kernel version.
func hostTierOnly(t testing.TB) {
	t.Helper()
	if k := os.Getenv("VMLINK_VM_KERNEL"); k != "" {
		t.Skipf("plugin logic on macvlan, covered by the priv tier on the host; the VM (%s) runs the *VM tests", k)
	}
}

// requireRef skips (or, in CI, fails) without Debian's reference plugins.
func requireRef(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(refDir, "host-local")); err != nil {
		// The VM guest carries only the tools vmtest puts in it.
		if os.Getenv("CI") == "true" && os.Getenv("VMLINK_VM_KERNEL") == "" {
			t.Fatalf("no reference plugins in %s: install containernetworking-plugins (make deps)", refDir)
		}
		t.Skipf("no reference plugins in %s: install containernetworking-plugins to run this test", refDir)
	}
}

// lab is a sandboxed "host" (the namespace the plugin runs in, as a
// runtime's host namespace) with a parent p0 wired to a switch, and a
// host-local data directory of its own.
type lab struct {
	host   *testenv.NetNS
	parent *testenv.Parent
	ipam   string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testenv.Require(t, testenv.FeaturePrivileged, testenv.FeatureMacvlan, testenv.FeatureVeth, testenv.FeatureBridge)
	requireRef(t)
	p := testenv.NewParent(t, testenv.ParentOptions{})
	return &lab{host: p.Host, parent: p, ipam: t.TempDir()}
}

// result is one plugin invocation.
type result struct {
	code   int
	stdout []byte
	stderr string
}

// cniError is the error JSON of a failed invocation.
type cniError struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details"`
}

func (r result) err(t testing.TB) cniError {
	t.Helper()
	var e cniError
	if err := json.Unmarshal(r.stdout, &e); err != nil {
		t.Fatalf("exit %d, stdout is no CNI error JSON: %v: %s", r.code, err, r.stdout)
	}
	return e
}

// run runs plugin (a path) in ns with the protocol's environment.
func run(t testing.TB, ns *testenv.NetNS, plugin string, env map[string]string, conf string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, plugin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), pluginEnv + "=1"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(conf), &out, &errb
	if err := ns.Start(cmd); err != nil {
		t.Fatalf("start %s: %v", plugin, err)
	}
	err := cmd.Wait()
	r := result{stdout: out.Bytes(), stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %s: %v", plugin, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// env is the protocol's environment for container c's eth0.
func (l *lab) env(t testing.TB, cmd, id string, c *testenv.NetNS) map[string]string {
	e := map[string]string{
		"CNI_COMMAND":     cmd,
		"CNI_CONTAINERID": id,
		"CNI_IFNAME":      "eth0",
		"CNI_PATH":        pluginDir(t) + ":" + refDir,
	}
	if c != nil {
		e["CNI_NETNS"] = c.Path()
	}
	return e
}

func (l *lab) vmlink(t testing.TB, cmd, id string, c *testenv.NetNS, conf string) result {
	t.Helper()
	return run(t, l.host, filepath.Join(pluginDir(t), "vmlink"), l.env(t, cmd, id, c), conf)
}

// ipamFiles lists host-local's allocations (files named by address).
func ipamFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(fi.Name(), "last_reserved_ip") && fi.Name() != "lock" {
			out = append(out, fi.Name())
		}
		return nil
	})
	return out
}

// ipJSON runs `ip -j ARGS` in ns and decodes it.
func ipJSON(t testing.TB, ns *testenv.NetNS, args ...string) []map[string]any {
	t.Helper()
	out := ns.Run(t, "ip", append([]string{"-j"}, args...)...)
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("ip -j %v: %v: %s", args, err, out)
	}
	return v
}

// linkNames lists the interfaces of ns other than lo.
func linkNames(t testing.TB, ns *testenv.NetNS) []string {
	t.Helper()
	var names []string
	for _, l := range ipJSON(t, ns, "link", "show") {
		if n, _ := l["ifname"].(string); n != "lo" {
			names = append(names, n)
		}
	}
	return names
}

// stateDir is the plugin's data directory in the tests whose host-local
// data is in dir.
func stateDir(dir string) string { return dir + ".vmlink" }

// records lists the plugin's attachment records under dir (stateDir).
func records(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	return out
}

// tutorialConf is the tutorials' macvlan-demo configuration with vmlink's
// type (or another plugin's), on master p0 and with host-local's data in
// dir; extra keys are merged in.
func tutorialConf(t testing.TB, typ, version, dir string, extra map[string]any) string {
	t.Helper()
	c := map[string]any{
		"cniVersion": version, "name": "macvlan-demo", "type": typ, "master": "p0", "mode": "bridge",
		"ipam": map[string]any{"type": "host-local", "dataDir": dir, "subnet": "172.16.123.0/24",
			"rangeStart": "172.16.123.200", "rangeEnd": "172.16.123.250", "gateway": "172.16.123.254",
			"routes": []any{map[string]any{"dst": "0.0.0.0/0"}}},
	}
	if typ == "vmlink" {
		// The plugin's attachment records, beside host-local's data
		// (not in it: ipamFiles counts that directory's files).
		c["dataDir"] = stateDir(dir)
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// buildFromCNIModule builds the command pkg of the cni module (cnitool,
// plugins/test/noop) into a temporary directory and returns its path; it
// skips without a Go toolchain (the VM guest has none).
func buildFromCNIModule(t testing.TB, pkg string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no Go toolchain to build %s with (the VM guest has none): run on the host", pkg)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, filepath.Base(pkg))
	mod := filepath.Join(dir, "mod")
	full := "github.com/containernetworking/cni/" + pkg
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module cnitooltest\n\ngo 1.21\n\nrequire github.com/containernetworking/cni v1.3.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "tools.go"), []byte("//go:build tools\n\npackage tools\n\nimport _ \""+full+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-o", out, full}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v: %s", args, err, b)
		}
	}
	return out
}

// resultOf decodes a result the plugin printed.
func resultOf(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("result %s: %v", b, err)
	}
	return r
}

// withPrevResult is conf with prev as its prevResult, as a runtime hands
// it to CHECK.
func withPrevResult(t testing.TB, conf string, prev map[string]any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(conf), &m); err != nil {
		t.Fatalf("conf %s: %v", conf, err)
	}
	m["prevResult"] = prev
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
