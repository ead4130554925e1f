package nsname

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/vmlink/vmlink/internal/netns"
)

// Runtimes, as Namespace.Runtime spells them.
const (
	RuntimeDocker = "docker"
	RuntimePodman = "podman"
	RuntimeK8s    = "k8s"
)

// Namespace is a network namespace with the name its user knows it by and
// what identifies it for good.
type Namespace struct {
	netns.Found
	// Display is the name to show: "ns1", "docker:b1", "podman:p1",
	// "k8s:default/web-0", a bind mount's path, or "pid:1234".
	Display string
	// Runtime is the runtime owning it (RuntimeDocker, …), "" for none.
	Runtime string
	// ContainerID is the runtime's full container (or sandbox) id.
	ContainerID string
	// Container is the container's (pod's) name, without the runtime.
	Container string
	// Networks are the runtime networks the container is attached to
	// (Docker's network names), for filters.
	Networks []string
}

// Open is what opens the namespace again: its name under netns.Dir when it
// has one (what `-n NAME` takes), else a path.
func (n *Namespace) Open() string {
	if n.Name != "" {
		return n.Name
	}
	return n.Path
}

// Options tune Resolve.
type Options struct {
	// DockerHost is the Docker API socket ("unix:///run/docker.sock");
	// when empty, DOCKER_HOST, then the default socket. Sockets that
	// running dockerds were started with (-H unix://…) are asked too.
	DockerHost string
	// CNICacheDir is libcni's cache, /var/lib/cni when empty.
	CNICacheDir string
	// Proc is the proc file system, /proc when empty.
	Proc string
}

// Result is what Resolve found, with what it asked.
type Result struct {
	Namespaces []Namespace
	// Docker is one line per Docker socket asked: "unix:///x: 3
	// containers" or the error; empty when none was reachable and no
	// dockerd runs.
	Docker []DockerAnswer
}

// DockerAnswer is one Docker socket's answer.
type DockerAnswer struct {
	Host       string
	Containers int
	Err        error
}

// Resolve names every namespace in found. Nothing it cannot reach (no
// Docker socket, an unreadable cache) is fatal: the namespace keeps a
// plainer name, and Result.Docker says what the sockets answered.
func Resolve(ctx context.Context, found []netns.Found, opts Options) Result {
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	if opts.CNICacheDir == "" {
		opts.CNICacheDir = "/var/lib/cni"
	}
	r := &resolver{opts: opts, ppid: map[int]int{}}
	r.procs = readCmdlines(opts.Proc)
	byID := map[netns.ID]*Namespace{}
	var res Result
	res.Namespaces = make([]Namespace, len(found))
	for i, f := range found {
		res.Namespaces[i] = Namespace{Found: f}
		byID[f.ID] = &res.Namespaces[i]
	}
	res.Docker = r.docker(ctx, byID)
	r.podman(byID)
	r.k8s(byID)
	r.cgroups(byID)
	for i := range res.Namespaces {
		n := &res.Namespaces[i]
		if n.Display != "" {
			continue
		}
		switch {
		case n.Name != "":
			n.Display = n.Name
		case n.Source == netns.SourceProcess && len(n.PIDs) > 0:
			n.Display = "pid:" + strconv.Itoa(n.PIDs[0])
		default:
			n.Display = n.Path
		}
	}
	return res
}

type resolver struct {
	opts  Options
	procs map[int][]string // command lines
	ppid  map[int]int
}

// name sets a runtime name unless a better source named n already.
func name(n *Namespace, runtime, id, container string) {
	if n == nil || n.Runtime != "" {
		return
	}
	n.Runtime, n.ContainerID, n.Container = runtime, id, container
	switch runtime {
	case RuntimeK8s:
		n.Display = "k8s:" + container
	default:
		n.Display = runtime + ":" + container
	}
}

// podman names the namespaces of Podman's containers: each container's
// first process is a child of its conmon, whose command line carries the
// container id (-c) and name (-n).
func (r *resolver) podman(byID map[netns.ID]*Namespace) {
	type mon struct{ id, name string }
	mons := map[int]mon{}
	for pid, argv := range r.procs {
		if len(argv) == 0 || filepath.Base(argv[0]) != "conmon" {
			continue
		}
		id, _ := shortFlag(argv[1:], "-c", "--cid")
		nm, _ := shortFlag(argv[1:], "-n", "--name")
		if id != "" {
			mons[pid] = mon{id: id, name: nm}
		}
	}
	if len(mons) == 0 {
		return
	}
	for _, n := range byID {
		for _, pid := range n.PIDs {
			m, ok := mons[r.parent(pid)]
			if !ok {
				continue
			}
			nm := m.name
			if nm == "" {
				nm = shortID(m.id)
			}
			name(n, RuntimePodman, m.id, nm)
			break
		}
	}
}

// shortFlag returns the value of -f V, -fV is not used by conmon;
// --long V and --long=V are accepted too.
func shortFlag(argv []string, short, long string) (string, bool) {
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if (a == short || a == long) && i+1 < len(argv) {
			return argv[i+1], true
		}
		if v, ok := strings.CutPrefix(a, long+"="); ok {
			return v, true
		}
	}
	return "", false
}

func (r *resolver) parent(pid int) int {
	if p, ok := r.ppid[pid]; ok {
		return p
	}
	b, err := os.ReadFile(filepath.Join(r.opts.Proc, strconv.Itoa(pid), "stat"))
	p := 0
	if err == nil {
		// "PID (comm) S PPID …": comm may hold spaces and parentheses.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) >= 2 {
				p, _ = strconv.Atoi(f[1])
			}
		}
	}
	r.ppid[pid] = p
	return p
}

// cgroupID finds a container id in a /proc/PID/cgroup file: Docker's
// (/docker/ID, docker-ID.scope) and Podman's (libpod-ID).
var cgroupID = regexp.MustCompile(`(docker|libpod)[-/]([0-9a-f]{64})`)

// cgroups names what no runtime answered for by the container id in its
// processes' cgroup: docker:<short id> when dockerd's socket is out of
// reach, podman:<short id> without conmon.
func (r *resolver) cgroups(byID map[netns.ID]*Namespace) {
	for _, n := range byID {
		if n.Runtime != "" {
			continue
		}
		for _, pid := range n.PIDs {
			b, err := os.ReadFile(filepath.Join(r.opts.Proc, strconv.Itoa(pid), "cgroup"))
			if err != nil {
				continue
			}
			m := cgroupID.FindStringSubmatch(string(b))
			if m == nil {
				continue
			}
			rt := RuntimeDocker
			if m[1] == "libpod" {
				rt = RuntimePodman
			}
			name(n, rt, m[2], shortID(m[2]))
			break
		}
	}
}

// shortID is the 12-character id Docker and Podman print.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func readCmdlines(proc string) map[int][]string {
	out := map[int][]string{}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		out[pid] = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	return out
}

func (a DockerAnswer) String() string {
	if a.Err != nil {
		return fmt.Sprintf("%s: %v", a.Host, a.Err)
	}
	return fmt.Sprintf("%s: %d containers", a.Host, a.Containers)
}
