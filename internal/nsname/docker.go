package nsname

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

// DefaultDockerHost is where dockerd listens unless told otherwise.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// dockerTimeout bounds each request to a Docker socket.
const dockerTimeout = 3 * time.Second

// DockerSocket turns a DOCKER_HOST value into a socket path: only unix
// sockets are supported ("unix:///path").
func DockerSocket(host string) (string, error) {
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "unix" || u.Path == "" {
		return "", fmt.Errorf("docker host %q: only unix sockets are supported: write unix:///path/to/docker.sock", host)
	}
	return u.Path, nil
}

// dockerHosts are the sockets to ask: the one given (or DOCKER_HOST, or
// the default), then every unix socket a running dockerd listens on.
func (r *resolver) dockerHosts() []string {
	first := r.opts.DockerHost
	if first == "" {
		first = os.Getenv("DOCKER_HOST")
	}
	if first == "" {
		first = DefaultDockerHost
	}
	hosts := []string{first}
	seen := map[string]bool{first: true}
	for _, argv := range r.procs {
		if len(argv) == 0 || filepath.Base(argv[0]) != "dockerd" {
			continue
		}
		for i := 1; i < len(argv); i++ {
			var v string
			switch a := argv[i]; {
			case (a == "-H" || a == "--host") && i+1 < len(argv):
				v = argv[i+1]
				i++
			case strings.HasPrefix(a, "--host="):
				v = strings.TrimPrefix(a, "--host=")
			case strings.HasPrefix(a, "-H="):
				v = strings.TrimPrefix(a, "-H=")
			default:
				continue
			}
			if strings.HasPrefix(v, "unix://") && !seen[v] {
				seen[v] = true
				hosts = append(hosts, v)
			}
		}
	}
	return hosts
}

// dockerContainer is what the API's container list and inspect give.
type dockerContainer struct {
	ID              string   `json:"Id"`
	Names           []string `json:"Names"`
	NetworkSettings struct {
		Networks map[string]json.RawMessage `json:"Networks"`
	} `json:"NetworkSettings"`
}

type dockerInspect struct {
	State struct {
		Pid int `json:"Pid"`
	} `json:"State"`
	NetworkSettings struct {
		SandboxKey string `json:"SandboxKey"`
	} `json:"NetworkSettings"`
}

// docker names the namespaces of the running containers of every Docker
// socket that answers: a container's namespace is its sandbox file's (or
// its first process's).
func (r *resolver) docker(ctx context.Context, byID map[netns.ID]*Namespace) []DockerAnswer {
	var answers []DockerAnswer
	for i, host := range r.dockerHosts() {
		n, err := r.dockerHost(ctx, host, byID)
		if err != nil && i > 0 {
			continue // a dockerd seen on a command line that does not answer: say nothing
		}
		answers = append(answers, DockerAnswer{Host: host, Containers: n, Err: err})
	}
	return answers
}

func (r *resolver) dockerHost(ctx context.Context, host string, byID map[netns.ID]*Namespace) (int, error) {
	sock, err := DockerSocket(host)
	if err != nil {
		return 0, err
	}
	c := unixClient(sock)
	defer c.CloseIdleConnections()
	var list []dockerContainer
	if err := getJSON(ctx, c, "/containers/json", &list); err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
			return 0, fmt.Errorf("no socket at %s", sock)
		}
		return 0, err
	}
	for _, ct := range list {
		var in dockerInspect
		if err := getJSON(ctx, c, "/containers/"+url.PathEscape(ct.ID)+"/json", &in); err != nil {
			continue // gone meanwhile
		}
		var n *Namespace
		for _, p := range []string{in.NetworkSettings.SandboxKey, "/proc/" + strconv.Itoa(in.State.Pid) + "/ns/net"} {
			var st unix.Stat_t
			if p == "" || p == "/proc/0/ns/net" || unix.Stat(p, &st) != nil {
				continue
			}
			if n = byID[netns.ID{Dev: st.Dev, Inode: st.Ino}]; n != nil {
				break
			}
		}
		if n == nil || n.Runtime != "" {
			continue // host network, or a namespace shared with another container
		}
		cname := shortID(ct.ID)
		if len(ct.Names) > 0 {
			cname = strings.TrimPrefix(ct.Names[0], "/")
		}
		name(n, RuntimeDocker, ct.ID, cname)
		for nw := range ct.NetworkSettings.Networks {
			n.Networks = append(n.Networks, nw)
		}
	}
	return len(list), nil
}

func getJSON(ctx context.Context, c *http.Client, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return op.Err
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// unixClient speaks HTTP over the unix socket at sock.
func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: dockerTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}
