package verify

import (
	"fmt"
	"strings"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/internal/nsname"
)

// NetNSIdentity is what identifies an endpoint's namespace beyond the name
// shown: JSON reports carry it so a CI job can tell runs apart.
type NetNSIdentity struct {
	// Display is the name users know: "docker:b1", "ns1", "pid:1234".
	Display string `json:"name,omitempty"`
	// Inode is the namespace's inode (as in `ls -i /proc/PID/ns/net`).
	Inode uint64 `json:"inode"`
	// Path opens it: /run/netns/NAME, a Docker netns file, /proc/PID/ns/net.
	Path string `json:"path,omitempty"`
	// PID is a process in it (the lowest), 0 when none.
	PID int `json:"pid,omitempty"`
	// Runtime is docker, podman or k8s when a container runtime owns it.
	Runtime     string `json:"runtime,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	Container   string `json:"container,omitempty"`
}

// Search is where discovery looked: how many namespaces, found where, and
// what the Docker sockets answered.
type Search struct {
	Namespaces int
	// Named, Docker, Mounts and Processes count the namespaces by where
	// they were best found (a Docker container's counts as Docker's).
	Named, Docker, Mounts, Processes int
	// Unreadable counts namespaces that could not be entered.
	Unreadable int
	// DockerAnswered is true when a Docker socket answered.
	DockerAnswered bool
	// DockerHost is the socket asked first.
	DockerHost string
	// Filter is the filter in force ("--container b1"), "" for none;
	// Filtered counts the endpoints it left out.
	Filter   string
	Filtered int
}

func newSearch(r nsname.Result) *Search {
	s := &Search{Namespaces: len(r.Namespaces)}
	for _, n := range r.Namespaces {
		switch {
		case n.Runtime == nsname.RuntimeDocker || n.Source == netns.SourceDocker:
			s.Docker++
		case n.Source == netns.SourceNamed:
			s.Named++
		case n.Source == netns.SourceMount:
			s.Mounts++
		default:
			s.Processes++
		}
	}
	for i, a := range r.Docker {
		if i == 0 {
			s.DockerHost = a.Host
		}
		if a.Err == nil {
			s.DockerAnswered = true
		}
	}
	return s
}

// String says where discovery looked: "14 namespaces searched: /run/netns
// (3), docker (0 — is dockerd's socket reachable? --docker-host),
// processes (11)".
func (s *Search) String() string {
	if s == nil {
		return "the topology given"
	}
	docker := fmt.Sprintf("docker (%d)", s.Docker)
	if !s.DockerAnswered {
		docker = fmt.Sprintf("docker (%d — is dockerd's socket reachable? --docker-host; asked %s)", s.Docker, s.DockerHost)
	}
	parts := []string{fmt.Sprintf("%s (%d)", netns.Dir, s.Named), docker}
	if s.Mounts > 0 {
		parts = append(parts, fmt.Sprintf("bind mounts (%d)", s.Mounts))
	}
	parts = append(parts, fmt.Sprintf("processes (%d)", s.Processes))
	out := fmt.Sprintf("%d namespaces searched: %s", s.Namespaces, strings.Join(parts, ", "))
	if s.Unreadable > 0 {
		out += fmt.Sprintf("; %d could not be entered", s.Unreadable)
	}
	if s.Filter != "" {
		out += fmt.Sprintf("; %s left out %d", s.Filter, s.Filtered)
	}
	return out
}
