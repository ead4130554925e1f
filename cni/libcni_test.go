package cni_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vmlink/vmlink/testenv"
)

// nsExec is libcni's plugin executor, running every plugin inside the
// lab's host namespace (the runtime's host there), never in this one.
type nsExec struct {
	ns *testenv.NetNS
	version.PluginDecoder
}

func (e *nsExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, pluginPath)
	cmd.Env = append(environ, pluginEnv+"=1")
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errb
	if err := e.ns.Start(cmd); err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		var te types.Error
		if json.Unmarshal(out.Bytes(), &te) == nil && te.Msg != "" {
			return nil, &te
		}
		return nil, err
	}
	return out.Bytes(), nil
}

func (e *nsExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// TestLibcni drives the plugin through libcni, as containerd and CRI-O
// do: a network list with capabilities and Multus-style CNI_ARGS, ADD,
// CHECK, STATUS, GC and DEL.
func TestLibcni(t *testing.T) {
	l := newLab(t)
	c := testenv.NewNetNS(t)
	list, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.1.0","name":"macvlan-demo","plugins":[` +
		`{"type":"vmlink","master":"p0","mode":"bridge","capabilities":{"mac":true,"ips":true},"dataDir":"` + stateDir(l.ipam) + `",` +
		`"ipam":{"type":"host-local","dataDir":"` + l.ipam + `","subnet":"172.16.123.0/24","gateway":"172.16.123.254","routes":[{"dst":"0.0.0.0/0"}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cn := libcni.NewCNIConfigWithCacheDir([]string{pluginDir(t), refDir}, t.TempDir(), &nsExec{ns: l.host})
	rt := &libcni.RuntimeConf{
		ContainerID: "libcni1", NetNS: c.Path(), IfName: "net1",
		Args:           [][2]string{{"IgnoreUnknown", "true"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "p1"}},
		CapabilityArgs: map[string]interface{}{"mac": "02:00:00:aa:bb:cc", "ips": []string{"172.16.123.77/24"}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := cn.AddNetworkList(ctx, list, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Mac != "02:00:00:aa:bb:cc" || r.Interfaces[0].Sandbox != c.Path() ||
		len(r.IPs) != 1 || r.IPs[0].Address.String() != "172.16.123.77/24" || *r.IPs[0].Interface != 0 {
		t.Fatalf("result: %+v %+v", r.Interfaces, r.IPs)
	}
	if err := cn.CheckNetworkList(ctx, list, rt); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := cn.GetStatusNetworkList(ctx, list); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	// GC with this attachment valid keeps it.
	if err := cn.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: "libcni1", IfName: "net1"}}}); err != nil {
		t.Errorf("GC: %v", err)
	}
	if got := linkNames(t, c); len(got) != 1 || got[0] != "net1" {
		t.Errorf("after GC keeping it: links %v", got)
	}
	if err := cn.DelNetworkList(ctx, list, rt); err != nil {
		t.Errorf("DEL: %v", err)
	}
	if got := linkNames(t, c); len(got) != 0 {
		t.Errorf("after DEL: links %v", got)
	}
	if got := ipamFiles(t, l.ipam); len(got) != 0 {
		t.Errorf("after DEL: allocations %v", got)
	}
	if got := records(t, stateDir(l.ipam)); len(got) != 0 {
		t.Errorf("after DEL: attachment records %v", got)
	}
}

// TestCnitool builds cnitool from the cni module into a temporary
// directory and runs the tutorial's network through it.
func TestCnitool(t *testing.T) {
	l := newLab(t)
	tool := buildFromCNIModule(t, "cnitool")
	dir := t.TempDir()
	netconf := filepath.Join(dir, "net.d")
	os.MkdirAll(netconf, 0o755)
	os.WriteFile(filepath.Join(netconf, "10-demo.conf"), []byte(tutorialConf(t, "vmlink", "1.0.0", l.ipam, nil)), 0o644)
	c := testenv.NewNetNS(t)
	// cnitool keeps libcni's result cache under /var/lib/cni with no way
	// to move it; a failed run must not leave its entry there.
	t.Cleanup(func() {
		stale, _ := filepath.Glob("/var/lib/cni/results/macvlan-demo-cnitool-*")
		for _, f := range stale {
			os.Remove(f)
		}
	})
	for _, verb := range []string{"add", "check", "del"} {
		cmd := exec.Command(tool, verb, "macvlan-demo", c.Path())
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NETCONFPATH=" + netconf, "CNI_PATH=" + pluginDir(t) + ":" + refDir,
			pluginEnv + "=1", "CNI_IFNAME=eth0"}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := l.host.Start(cmd); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("cnitool %s: %v: %s", verb, err, out.String())
		}
		if verb == "add" {
			if got := linkNames(t, c); len(got) != 1 {
				t.Fatalf("after cnitool add: links %v: %s", got, out.String())
			}
		}
	}
	if got := linkNames(t, c); len(got) != 0 {
		t.Errorf("after cnitool del: links %v", got)
	}
}
