package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/testenv"
)

// PodmanImage is the busybox image NewPodman imports.
const PodmanImage = "localhost/vmlt-busybox:local"

// DefaultCNIPluginDir is where Debian's containernetworking-plugins live.
const DefaultCNIPluginDir = "/usr/lib/cni"

// cniCacheDir is libcni's cache, where the host-local IPAM plugin keeps
// its leases and libcni its results; Podman 4.3 does not move it.
const cniCacheDir = "/var/lib/cni"

// PodmanOptions configure NewPodman.
type PodmanOptions struct {
	// CNIPluginDirs are searched for CNI plugins before
	// DefaultCNIPluginDir: a test of its own plugin puts its directory here.
	CNIPluginDirs []string
}

// Podman runs podman (CNI backend) in a sandbox namespace with state of
// its own.
type Podman struct {
	// NS is the namespace podman runs in: a macvlan network's master is
	// looked up there.
	NS *testenv.NetNS
	// Dir holds root, runroot, tmpdir, the network configs and Conf.
	Dir string
	// Conf is the containers.conf given as CONTAINERS_CONF.
	Conf string
	// NetworkConfigDir holds the CNI network configs podman writes.
	NetworkConfigDir string
}

// NewPodman prepares podman in ns, imports PodmanImage, and in
// tb.Cleanup removes every container and network it made, the CNI IPAM
// state of those networks, and its directory. It requires FeaturePodman.
func NewPodman(tb testing.TB, ns *testenv.NetNS, opts PodmanOptions) *Podman {
	tb.Helper()
	testenv.Require(tb, testenv.FeaturePrivileged, testenv.FeaturePodman)
	dir, err := os.MkdirTemp("", "vmlt-podman-")
	if err != nil {
		tb.Fatalf("runtime: %v", err)
	}
	p := &Podman{NS: ns, Dir: dir, Conf: filepath.Join(dir, "containers.conf"), NetworkConfigDir: filepath.Join(dir, "cni")}
	tb.Cleanup(func() {
		if err := p.remove(); err != nil {
			tb.Errorf("runtime: %v", err)
		}
	})
	for _, d := range []string{p.NetworkConfigDir, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatalf("runtime: %v", err)
		}
	}
	if err := os.WriteFile(p.Conf, []byte(p.containersConf(opts)), 0o600); err != nil {
		tb.Fatalf("runtime: %v", err)
	}
	tar := filepath.Join(dir, "busybox.tar")
	if err := writeBusyboxTar(tar); err != nil {
		tb.Fatalf("runtime: %v", err)
	}
	p.CLI(tb, "import", tar, PodmanImage)
	return p
}

// containersConf selects the CNI backend with our plugin and config dirs.
func (p *Podman) containersConf(opts PodmanOptions) string {
	var dirs []string
	for _, d := range append(append([]string{}, opts.CNIPluginDirs...), DefaultCNIPluginDir) {
		dirs = append(dirs, strconv.Quote(d))
	}
	return fmt.Sprintf("[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [%s]\nnetwork_config_dir = %s\n",
		strings.Join(dirs, ", "), strconv.Quote(p.NetworkConfigDir))
}

// Command is podman with this instance's global flags and CONTAINERS_CONF,
// started inside NS.
func (p *Podman) Command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--net=" + p.NS.Path(), "--", "podman",
		"--root", filepath.Join(p.Dir, "root"), "--runroot", filepath.Join(p.Dir, "runroot"),
		"--tmpdir", filepath.Join(p.Dir, "tmp"), "--storage-driver", "vfs",
		"--cgroup-manager", "cgroupfs", "--events-backend", "file"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.Conf)
	return cmd
}

// Exec runs podman and returns its combined output.
func (p *Podman) Exec(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	out, err := p.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// CLI is Exec for tests: it fails tb when podman fails, and returns the
// output trimmed.
func (p *Podman) CLI(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := p.Exec(context.Background(), args...)
	if err != nil {
		tb.Fatalf("runtime: %v", err)
	}
	return strings.TrimSpace(out)
}

// RunArgs are the `podman run` flags every container here needs: runc
// may not raise the open-file and process limits past the sandbox's.
var RunArgs = []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}

// Run starts a detached container: `podman run -d RunArgs args…`; it
// returns the container id.
func (p *Podman) Run(tb testing.TB, args ...string) string {
	tb.Helper()
	return p.CLI(tb, append(append([]string{"run", "-d"}, RunArgs...), args...)...)
}

// networks lists the networks podman has configs for, by name.
func (p *Podman) networks() []string {
	ents, _ := os.ReadDir(p.NetworkConfigDir)
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".conflist"); ok {
			names = append(names, n)
		}
	}
	return names
}

func (p *Podman) remove() error {
	var errs []error
	ctx := context.Background()
	if _, err := os.Stat(filepath.Join(p.Dir, "root")); err == nil {
		if _, err := p.Exec(ctx, "rm", "-a", "-f", "-t", "0"); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range p.networks() {
		if _, err := p.Exec(ctx, "network", "rm", "-f", n); err != nil {
			errs = append(errs, err)
		}
		// host-local keeps its leases per network name; the network's
		// name was ours, so its state is too.
		if err := os.RemoveAll(filepath.Join(cniCacheDir, "networks", n)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeDir(p.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
