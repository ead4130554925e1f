//go:build runtime

package runtime_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/testenv"
	"github.com/vmlink/vmlink/testenv/runtime"
)

// gone fails t unless dir no longer exists and pid no longer runs.
func gone(t *testing.T, dir string, pid int) {
	t.Helper()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after cleanup (%v)", dir, err)
	}
	if pid > 0 {
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("pid %d still runs after cleanup (%v)", pid, err)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), dir) {
		t.Errorf("mounts under %s remain after cleanup", dir)
	}
}

// TestRuntimeDocker starts dockerd in a sandbox, runs a container from the
// imported busybox image on a macvlan network dockerd creates itself, and
// checks the container's namespace is where Docker says it is; after the
// subtest's cleanup the daemon, its mounts and its directory are gone.
func TestRuntimeDocker(t *testing.T) {
	var dir string
	var pid int
	t.Run("start", func(t *testing.T) {
		p := testenv.NewParent(t, testenv.ParentOptions{Name: "eth0"})
		d := runtime.StartDocker(t, p.Host)
		dir, pid = d.Dir, d.PID
		d.CLI(t, "network", "create", "-d", "macvlan", "--subnet=172.16.10.0/24", "-o", "parent=eth0", "mac_net10")
		d.CLI(t, "run", "-d", "--name", "b1", "--ip=172.16.10.10", "--network", "mac_net10", runtime.DockerImage, "sleep", "3600")
		out := d.CLI(t, "exec", "b1", "ip", "-o", "addr", "show", "eth0")
		if !strings.Contains(out, "172.16.10.10/24") {
			t.Fatalf("b1's eth0: %s", out)
		}
		cpid, err := strconv.Atoi(d.CLI(t, "inspect", "-f", "{{.State.Pid}}", "b1"))
		if err != nil {
			t.Fatal(err)
		}
		key := d.CLI(t, "inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "b1")
		if !strings.HasPrefix(key, d.ExecRoot+"/netns/") {
			t.Errorf("SandboxKey %s is not under the exec root %s", key, d.ExecRoot)
		}
		var a, b unix.Stat_t
		if err := unix.Stat(key, &a); err != nil {
			t.Fatal(err)
		}
		if err := unix.Stat("/proc/"+strconv.Itoa(cpid)+"/ns/net", &b); err != nil {
			t.Fatal(err)
		}
		if a.Ino != b.Ino {
			t.Errorf("SandboxKey inode %d, container pid %d's netns %d", a.Ino, cpid, b.Ino)
		}
	})
	gone(t, dir, pid)
}

// TestRuntimePodman runs a container on a Podman (CNI) macvlan network in
// a sandbox and checks it got its address; cleanup leaves nothing.
func TestRuntimePodman(t *testing.T) {
	var dir string
	t.Run("run", func(t *testing.T) {
		p := testenv.NewParent(t, testenv.ParentOptions{Name: "eth0"})
		pm := runtime.NewPodman(t, p.Host, runtime.PodmanOptions{})
		dir = pm.Dir
		net := "vmlt-pnet-" + strconv.Itoa(os.Getpid())
		pm.CLI(t, "network", "create", "-d", "macvlan", "--subnet", "172.16.20.0/24", "-o", "parent=eth0", net)
		pm.Run(t, "--name", "p1", "--ip", "172.16.20.10", "--network", net, runtime.PodmanImage, "sleep", "3600")
		out := pm.CLI(t, "exec", "p1", "ip", "-o", "addr", "show", "eth0")
		if !strings.Contains(out, "172.16.20.10/24") {
			t.Fatalf("p1's eth0: %s", out)
		}
	})
	gone(t, dir, 0)
}
