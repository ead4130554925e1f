package nsname

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fileID is the (dev, inode) of a file standing in for a namespace file.
func fileID(t *testing.T, path string) netns.ID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return netns.ID{Dev: st.Dev, Inode: st.Ino}
}

const (
	dockerID = "5115ca30d67e61d1f4d4d7a1cf15cffe70c58680426ea89221a8d4c148993bfd"
	podmanID = "4fd31a112f6ee06360a768308adbad5b324c6f9f58afd971c92671e33f54c053"
	orphanID = "aaaabbbbccccddddeeeeffff00001111222233334444555566667777888899990"
)

// TestResolve names one namespace of each kind from a fake /proc, a fake
// libcni cache and a fake Docker API on a unix socket, answering as
// dockerd 20.10 does (the fields of its /containers/json and inspect).
func TestResolve(t *testing.T) {
	dir := t.TempDir()
	proc := filepath.Join(dir, "proc")
	// conmon (pid 100) and its container's first process (101).
	write(t, proc+"/100/cmdline", "/usr/bin/conmon\x00--api-version\x001\x00-c\x00"+podmanID+"\x00-u\x00"+podmanID+"\x00-n\x00p1\x00")
	write(t, proc+"/101/stat", "101 (sleep 1) S 100 101 101 0 -1 4194560")
	write(t, proc+"/101/cmdline", "sleep\x003600\x00")
	// A Docker container whose daemon does not answer: the cgroup only.
	write(t, proc+"/200/cgroup", "0::/docker/"+orphanID[:64]+"\n")
	write(t, proc+"/200/cmdline", "sleep\x00")
	// A dockerd listening on a socket of its own.
	sock := filepath.Join(dir, "d.sock")
	write(t, proc+"/300/cmdline", "/usr/sbin/dockerd\x00--exec-root\x00/x\x00-H\x00unix://"+sock+"\x00")

	// libcni's cache: a pod, and Podman's entry (no K8S_POD_NAMESPACE).
	cache := filepath.Join(dir, "cni")
	podSandbox := filepath.Join(dir, "cni-1234")
	write(t, podSandbox, "")
	pod, _ := json.Marshal(map[string]any{"kind": "cniCacheV1", "containerId": "c0ffee", "cniArgs": [][2]string{
		{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "web-0"}, {"K8S_POD_INFRA_CONTAINER_ID", "c0ffee"}},
		"result": map[string]any{"interfaces": []map[string]string{{"name": "net1"}, {"name": "eth0", "sandbox": podSandbox}}}})
	write(t, cache+"/results/macvlan-c0ffee-net1", string(pod))
	podmanSandbox := filepath.Join(dir, "netns-93a1")
	write(t, podmanSandbox, "")
	pm, _ := json.Marshal(map[string]any{"containerId": podmanID, "cniArgs": [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", "p1"}},
		"result": map[string]any{"interfaces": []map[string]string{{"sandbox": podmanSandbox}}}})
	write(t, cache+"/results/pnet-"+podmanID+"-eth0", string(pm))

	// The Docker API.
	dockerSandbox := filepath.Join(dir, "exec/netns/2c90005a083b")
	write(t, dockerSandbox, "")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/containers/json", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`[{"Id":"` + dockerID + `","Names":["/b1"],"Image":"bb:local","State":"running",` +
			`"NetworkSettings":{"Networks":{"mac_net10":{"IPAddress":"172.16.10.10"}}}}]`))
	})
	mux.HandleFunc("/containers/"+dockerID+"/json", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"Id":"` + dockerID + `","State":{"Status":"running","Pid":0},"NetworkSettings":{"SandboxKey":"` + dockerSandbox + `"}}`))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	found := []netns.Found{
		{ID: netns.ID{Dev: 1, Inode: 1}, Source: netns.SourceNamed, Name: "ns1", Path: "/run/netns/ns1"},
		{ID: fileID(t, podmanSandbox), Source: netns.SourceNamed, Name: "netns-93a1", Path: podmanSandbox, PIDs: []int{101}},
		{ID: netns.ID{Dev: 1, Inode: 3}, Source: netns.SourceProcess, Path: proc + "/200/ns/net", PIDs: []int{200}},
		{ID: fileID(t, podSandbox), Source: netns.SourceNamed, Name: "cni-1234", Path: podSandbox},
		{ID: fileID(t, dockerSandbox), Source: netns.SourceDocker, Path: dockerSandbox, PIDs: []int{400}},
		{ID: netns.ID{Dev: 1, Inode: 6}, Source: netns.SourceProcess, Path: proc + "/500/ns/net", PIDs: []int{500, 501}},
		{ID: netns.ID{Dev: 1, Inode: 7}, Source: netns.SourceMount, Path: "/run/containerd/x"},
	}
	res := Resolve(context.Background(), found, Options{DockerHost: "unix://" + filepath.Join(dir, "none.sock"), CNICacheDir: cache, Proc: proc})
	want := []struct{ display, runtime, id string }{
		{"ns1", "", ""},
		{"podman:p1", RuntimePodman, podmanID},
		{"docker:" + orphanID[:12], RuntimeDocker, orphanID[:64]},
		{"k8s:default/web-0", RuntimeK8s, "c0ffee"},
		{"docker:b1", RuntimeDocker, dockerID},
		{"pid:500", "", ""},
		{"/run/containerd/x", "", ""},
	}
	for i, w := range want {
		n := res.Namespaces[i]
		if n.Display != w.display || n.Runtime != w.runtime || n.ContainerID != w.id {
			t.Errorf("namespace %d: %q %q %q, want %q %q %q", i, n.Display, n.Runtime, n.ContainerID, w.display, w.runtime, w.id)
		}
	}
	if nw := res.Namespaces[4].Networks; len(nw) != 1 || nw[0] != "mac_net10" {
		t.Errorf("b1's networks: %v", nw)
	}
	// The socket asked first (none.sock) is reported with its error; the
	// one found on dockerd's command line answered.
	if len(res.Docker) != 2 || res.Docker[0].Err == nil || res.Docker[1].Err != nil || res.Docker[1].Containers != 1 {
		t.Errorf("docker answers: %v", res.Docker)
	}
	if !strings.Contains(res.Docker[0].String(), "no socket at") {
		t.Errorf("missing socket reported as %q", res.Docker[0])
	}
}

func TestDockerSocket(t *testing.T) {
	if p, err := DockerSocket("unix:///run/x.sock"); err != nil || p != "/run/x.sock" {
		t.Errorf("unix: %q %v", p, err)
	}
	for _, h := range []string{"tcp://1.2.3.4:2375", "/run/x.sock", "unix://"} {
		if _, err := DockerSocket(h); err == nil || !strings.Contains(err.Error(), "unix:///") {
			t.Errorf("DockerSocket(%q) = %v, want the unix-only error", h, err)
		}
	}
}
