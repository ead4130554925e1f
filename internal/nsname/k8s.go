package nsname

import (
	"encoding/json"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

// cniCacheEntry is the part of a libcni result cache file
// (<cache>/results/NETWORK-CONTAINERID-IFNAME) naming a pod: the CNI_ARGS
// a Kubernetes runtime passes (K8S_POD_NAMESPACE, K8S_POD_NAME) and the
// sandbox the result's interfaces were put in.
type cniCacheEntry struct {
	ContainerID string      `json:"containerId"`
	CNIArgs     [][2]string `json:"cniArgs"`
	Result      struct {
		Interfaces []struct {
			Sandbox string `json:"sandbox"`
		} `json:"interfaces"`
	} `json:"result"`
}

// k8s names pod sandboxes from libcni's result cache. Entries without
// K8S_POD_NAMESPACE (Podman sets only K8S_POD_NAME) are not pods.
func (r *resolver) k8s(byID map[netns.ID]*Namespace) {
	files, _ := filepath.Glob(filepath.Join(r.opts.CNICacheDir, "results", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var e cniCacheEntry
		if json.Unmarshal(b, &e) != nil {
			continue
		}
		var podNS, pod string
		for _, kv := range e.CNIArgs {
			switch kv[0] {
			case "K8S_POD_NAMESPACE":
				podNS = kv[1]
			case "K8S_POD_NAME":
				pod = kv[1]
			}
		}
		if podNS == "" || pod == "" {
			continue
		}
		for _, ifc := range e.Result.Interfaces {
			var st unix.Stat_t
			if ifc.Sandbox == "" || unix.Stat(ifc.Sandbox, &st) != nil {
				continue
			}
			name(byID[netns.ID{Dev: st.Dev, Inode: st.Ino}], RuntimeK8s, e.ContainerID, podNS+"/"+pod)
			break
		}
	}
}
