package dataplane

import (
	"bytes"
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"
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
