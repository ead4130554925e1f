package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv"
)

// Paths of Debian's docker.io. The client is named by its full path: a
// different docker client earlier in PATH may not match this dockerd.
const (
	DockerdPath   = "/usr/sbin/dockerd"
	DockerCLIPath = "/usr/bin/docker"
)

// DockerImage is the busybox image StartDocker imports.
const DockerImage = "vmlt-busybox:local"

// Bounds of the daemon's life cycle.
const (
	dockerStartTimeout = 90 * time.Second
	dockerStopGrace    = 30 * time.Second
	cliTimeout         = 2 * time.Minute
)

// Docker is a dockerd running in a sandbox namespace with state of its own.
type Docker struct {
	// NS is the namespace dockerd runs in: its "host" network, where
	// `-o parent=…` of a macvlan network is looked up.
	NS *testenv.NetNS
	// Dir holds everything of this daemon: data and exec roots, socket,
	// pidfile, log.
	Dir      string
	DataRoot string
	// ExecRoot holds the container namespaces (ExecRoot/netns/…), not
	// /var/run/docker.
	ExecRoot string
	Socket   string // the API's unix socket
	PID      int    // dockerd's process id
	Log      string // dockerd's output

	done chan struct{}
}

// Host is the socket as DOCKER_HOST and `docker -H` take it.
func (d *Docker) Host() string { return "unix://" + d.Socket }

// StartDocker starts dockerd in ns (nsenter --net=), waits until its API
// answers, imports DockerImage, and stops it in tb.Cleanup after removing
// every container and network it made. It requires FeatureDocker.
func StartDocker(tb testing.TB, ns *testenv.NetNS) *Docker {
	tb.Helper()
	testenv.Require(tb, testenv.FeaturePrivileged, testenv.FeatureDocker)
	// A short directory: the sockets under it (containerd's) must fit
	// sun_path's 108 bytes.
	dir, err := os.MkdirTemp("", "vmlt-docker-")
	if err != nil {
		tb.Fatalf("runtime: %v", err)
	}
	d := &Docker{NS: ns, Dir: dir, DataRoot: filepath.Join(dir, "data"), ExecRoot: filepath.Join(dir, "exec"),
		Socket: filepath.Join(dir, "docker.sock"), Log: filepath.Join(dir, "dockerd.log"), done: make(chan struct{})}
	tb.Cleanup(func() {
		if err := d.stop(); err != nil {
			tb.Errorf("runtime: %v", err)
		}
	})
	if err := d.start(); err != nil {
		tb.Fatalf("runtime: %v", err)
	}
	tar := filepath.Join(dir, "busybox.tar")
	if err := writeBusyboxTar(tar); err != nil {
		tb.Fatalf("runtime: %v", err)
	}
	d.CLI(tb, "import", tar, DockerImage)
	return d
}

func (d *Docker) start() error {
	logf, err := os.Create(d.Log)
	if err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", "--net="+d.NS.Path(), "--", DockerdPath,
		"--data-root", d.DataRoot, "--exec-root", d.ExecRoot, "-H", d.Host(),
		"--pidfile", filepath.Join(d.Dir, "dockerd.pid"),
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--storage-driver", "vfs")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	// nsenter without --fork execs dockerd: the pid is the daemon's.
	d.PID = cmd.Process.Pid
	go func() { cmd.Wait(); close(d.done) }()

	client := d.HTTPClient()
	deadline := time.Now().Add(dockerStartTimeout)
	for {
		select {
		case <-d.done:
			return fmt.Errorf("dockerd exited during start-up: %s", d.logTail())
		default:
		}
		resp, err := client.Get("http://docker/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd's API at %s did not answer within %v (last: %v): %s", d.Socket, dockerStartTimeout, err, d.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// HTTPClient talks to the daemon's API over its unix socket.
func (d *Docker) HTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.Socket)
		},
	}}
}

func (d *Docker) logTail() string {
	b, _ := os.ReadFile(d.Log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// Exec runs the docker client against this daemon and returns its
// combined output.
func (d *Docker) Exec(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, DockerCLIPath, append([]string{"-H", d.Host()}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(d.Dir, "client"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// CLI is Exec for tests: it fails tb when the command fails, and returns
// the output trimmed.
func (d *Docker) CLI(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := d.Exec(context.Background(), args...)
	if err != nil {
		tb.Fatalf("runtime: %v", err)
	}
	return strings.TrimSpace(out)
}

// stop removes every container and custom network, stops dockerd by PID,
// and removes its directory with whatever it left mounted there.
func (d *Docker) stop() error {
	var errs []error
	if d.PID > 0 {
		select {
		case <-d.done:
		default:
			ctx := context.Background()
			if ids, err := d.Exec(ctx, "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
				if _, err := d.Exec(ctx, append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
					errs = append(errs, err)
				}
			}
			if _, err := d.Exec(ctx, "network", "prune", "-f"); err != nil {
				errs = append(errs, err)
			}
		}
		if err := stopPID(d.PID, d.done, dockerStopGrace); err != nil {
			errs = append(errs, fmt.Errorf("dockerd: %w", err))
		}
	}
	if err := removeDir(d.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
