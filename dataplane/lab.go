package dataplane

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

//go:embed labs/*.yaml
var labFiles embed.FS

// Lab is a self-contained topology shipped in the binary: it runs in
// throwaway namespaces and touches no real NIC. Most labs have one phase;
// host-shim has two (the isolation, then the fix).
type Lab struct {
	Name        string
	Description string
	// Needs names a kernel feature the lab cannot run without ("8021q").
	Needs  string
	Phases []LabPhase
}

// LabPhase is one state of a lab that is built and verified in turn; each
// phase's topology contains the previous one, so building it is an Up of
// the same topology with more in it.
type LabPhase struct {
	Name     string
	Topology *Topology
}

// Labs returns the labs shipped in the binary, sorted by name.
func Labs() ([]*Lab, error) {
	ents, err := labFiles.ReadDir("labs")
	if err != nil {
		return nil, err
	}
	var out []*Lab
	for _, e := range ents {
		b, err := labFiles.ReadFile(path.Join("labs", e.Name()))
		if err != nil {
			return nil, err
		}
		t, err := Parse(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("lab %s: %w", e.Name(), err)
		}
		out = append(out, labOf(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// LookupLab returns the lab called name.
func LookupLab(name string) (*Lab, error) {
	labs, err := Labs()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range labs {
		if l.Name == name {
			return l, nil
		}
		names = append(names, l.Name)
	}
	return nil, fmt.Errorf("no lab %q: choose one of %s", name, strings.Join(names, ", "))
}

func labOf(t *Topology) *Lab {
	l := &Lab{Name: t.Name, Description: t.Description}
	for _, n := range t.Networks {
		if _, _, ok := splitVLANParent(n.Parent); ok {
			l.Needs = "8021q"
		}
	}
	if len(t.HostShims) > 0 {
		before := t.clone()
		before.HostShims = nil
		l.Phases = append(l.Phases, LabPhase{Name: "isolation", Topology: before}, LabPhase{Name: "shim", Topology: t})
		return l
	}
	l.Phases = []LabPhase{{Name: t.Name, Topology: t}}
	return l
}

// WithPrefix returns the lab with every phase's topology prefixed (see
// Topology.WithPrefix).
func (l *Lab) WithPrefix(prefix string) *Lab {
	c := *l
	c.Phases = nil
	for _, p := range l.Phases {
		c.Phases = append(c.Phases, LabPhase{Name: p.Name, Topology: p.Topology.WithPrefix(prefix)})
	}
	return &c
}

// Final is the topology of the last phase: the superset Down removes.
func (l *Lab) Final() *Topology { return l.Phases[len(l.Phases)-1].Topology }

// labPrefixRE is the namespace prefix a lab run by process PID uses:
// vmlab-PID-. The PID in it is the lab's ownership record: once that process
// is gone, its namespaces belong to nobody (a lab killed with -9).
var labPrefixRE = regexp.MustCompile(`^vmlab-([0-9]{1,10})-`)

// LabPrefix is the namespace prefix of a lab run by process pid.
func LabPrefix(pid int) string { return fmt.Sprintf("vmlab-%d-", pid) }

// ParseLabPrefix checks a prefix given to `lab --down`; "vmlab-1234" gets
// its trailing dash, so it cannot match vmlab-12345-… by accident.
func ParseLabPrefix(s string) (string, error) {
	if !strings.HasSuffix(s, "-") {
		s += "-"
	}
	if m := labPrefixRE.FindString(s); m == "" || m != s {
		return "", fmt.Errorf("%q is not a lab prefix: give the one a kept lab printed, such as vmlab-1234-", strings.TrimSuffix(s, "-"))
	}
	return s, nil
}

// OrphanLabPrefixes returns the prefixes of the lab namespaces in
// /run/netns whose process no longer runs, sorted.
func OrphanLabPrefixes() ([]string, error) {
	names, err := netns.List()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		m := labPrefixRE.FindStringSubmatch(n)
		if m == nil || seen[m[0]] {
			continue
		}
		seen[m[0]] = true
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		out = append(out, m[0])
	}
	sort.Strings(out)
	return out, nil
}

// processAlive reports whether pid runs (kill -0: EPERM means it does, as
// someone else's).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// ErrNoLab is returned by DownLab when no namespace carries the prefix.
var ErrNoLab = errors.New("no lab namespace")

// DownLab removes what the labs run under prefix left: each shipped lab's
// topology is taken down (links, marked namespaces, state), then any
// namespace still carrying the prefix — one a killed lab created but had
// not marked yet — is deleted. It fails with ErrNoLab when no namespace
// carries the prefix, so a mistyped prefix never passes for success.
func DownLab(ctx context.Context, prefix string, opts *Options) (*Removed, error) {
	if _, err := ParseLabPrefix(prefix); err != nil {
		return nil, err
	}
	names, err := netnsFiles()
	if err != nil {
		return nil, err
	}
	labs, err := Labs()
	if err != nil {
		return nil, err
	}
	// A lab killed after recording its state but before creating a
	// namespace has only its state file: that is still a lab to take down.
	recorded := slices.ContainsFunc(labs, func(l *Lab) bool {
		_, err := os.Stat(topoStatePath(opts.stateDir(), l.WithPrefix(prefix).Final().Name))
		return err == nil
	})
	if !recorded && !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, prefix) }) {
		return nil, fmt.Errorf("%w starts with %s (see 'ip netns list'; 'vmlink lab --down' lists orphaned labs)", ErrNoLab, prefix)
	}
	out := &Removed{}
	for _, l := range labs {
		r, err := Down(ctx, l.WithPrefix(prefix).Final(), opts)
		if r != nil {
			out.Links = append(out.Links, r.Links...)
			out.Namespaces = append(out.Namespaces, r.Namespaces...)
			out.Addrs = append(out.Addrs, r.Addrs...)
		}
		if err != nil {
			return out, fmt.Errorf("down lab %s%s: %w", prefix, l.Name, err)
		}
	}
	if names, err = netnsFiles(); err != nil {
		return out, err
	}
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		if err := netns.Delete(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			return out, fmt.Errorf("down lab %s: delete netns %s: %w", prefix, n, err)
		}
		out.Namespaces = append(out.Namespaces, n)
	}
	return out, nil
}

// netnsFiles lists every name under /run/netns, mounted or not: a lab
// killed between creating a name and mounting its namespace leaves a bare
// file that netns.List skips and the next lab of that name trips over.
func netnsFiles() ([]string, error) {
	ents, err := os.ReadDir(netns.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list %s: %w", netns.Dir, err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, nil
}
