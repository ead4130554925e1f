//go:build runtime

package cni_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/cni"
	"github.com/vmlink/vmlink/testenv"
	"github.com/vmlink/vmlink/testenv/runtime"
)

// TestRuntimePodmanVmlink: Debian's Podman (CNI backend), in a sandbox
// whose eth0 is wired to a switch, runs two containers on a network whose
// configuration has "type": "vmlink"; they ping each other; removing the
// containers and `podman network rm` leave no link and no address behind.
func TestRuntimePodmanVmlink(t *testing.T) {
	p := testenv.NewParent(t, testenv.ParentOptions{Name: "eth0"})
	// Podman hands its environment to the plugins: the test binary in
	// pluginDir answers as the plugin.
	t.Setenv(pluginEnv, "1")
	pm := runtime.NewPodman(t, p.Host, runtime.PodmanOptions{CNIPluginDirs: []string{pluginDir(t)}})
	net := "vmlt-vmlink-" + strconv.Itoa(os.Getpid())
	// host-local keeps its lock and last-reserved files per network name.
	// libcni's result cache keeps an entry per attachment until its DEL;
	// a failed run must leave neither.
	t.Cleanup(func() {
		os.RemoveAll(filepath.Join("/var/lib/cni/networks", net))
		os.RemoveAll(filepath.Join(cni.DefaultDataDir, net))
		os.Remove(cni.DefaultDataDir) // only when empty: other networks' records stay
		stale, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", net+"-*"))
		for _, f := range stale {
			os.Remove(f)
		}
	})
	conflist := `{"cniVersion":"0.4.0","name":"` + net + `","plugins":[{"type":"vmlink","kind":"macvlan","master":"eth0","mode":"bridge",` +
		`"ipam":{"type":"host-local","subnet":"172.16.30.0/24","gateway":"172.16.30.1","routes":[{"dst":"0.0.0.0/0"}]}}]}`
	if err := os.WriteFile(filepath.Join(pm.NetworkConfigDir, net+".conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := pm.CLI(t, "network", "ls", "--format", "{{.Name}} {{.Driver}}"); !strings.Contains(out, net) {
		t.Fatalf("podman does not list the vmlink network: %s", out)
	}
	pm.Run(t, "--name", "p1", "--network", net, runtime.PodmanImage, "sleep", "3600")
	pm.Run(t, "--name", "p2", "--network", net, runtime.PodmanImage, "sleep", "3600")
	out := pm.CLI(t, "exec", "p2", "ip", "-o", "-4", "addr", "show", "eth0")
	m := regexp.MustCompile(`inet (172\.16\.30\.\d+)/24`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("p2's eth0: %s", out)
	}
	key := pm.CLI(t, "inspect", "p1", "--format", "{{.NetworkSettings.SandboxKey}}")
	if out, err := exec.Command("ip", "-n", filepath.Base(key), "-d", "link", "show", "eth0").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "macvlan mode bridge") || !strings.Contains(string(out), "alias vmlink:cni:"+net+"/") {
		t.Errorf("p1's eth0 (%s) is not vmlink's bridge macvlan: %v: %s", key, err, out)
	}
	if out, err := pm.Exec(t.Context(), "exec", "p1", "ping", "-c", "1", "-W", "3", m[1]); err != nil {
		t.Fatalf("p1 cannot ping p2 (%s): %v: %s", m[1], err, out)
	}
	pm.CLI(t, "rm", "-f", "-t", "0", "p1", "p2")
	pm.CLI(t, "network", "rm", net)
	if _, err := os.Stat(filepath.Join(pm.NetworkConfigDir, net+".conflist")); !os.IsNotExist(err) {
		t.Errorf("the network's configuration is still there: %v", err)
	}
	if got := ipamFiles(t, filepath.Join("/var/lib/cni/networks", net)); len(got) != 0 {
		t.Errorf("host-local still holds %v", got)
	}
	if got := records(t, filepath.Join(cni.DefaultDataDir, net)); len(got) != 0 {
		t.Errorf("the plugin still has attachment records %v (no DEL reached it)", got)
	}
	if cached, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", net+"-*")); len(cached) != 0 {
		t.Errorf("libcni's result cache still holds %v (no DEL reached the plugin)", cached)
	}
	// No link of this network in any named namespace (the sandbox host
	// and Podman's container namespaces are all under /run/netns).
	spaces, _ := filepath.Glob("/run/netns/*")
	for _, ns := range spaces {
		out, _ := exec.Command("ip", "-n", filepath.Base(ns), "-d", "link", "show").CombinedOutput()
		if strings.Contains(string(out), "vmlink:cni:"+net+"/") {
			t.Errorf("a link of the network is left in %s: %s", ns, out)
		}
	}
}
