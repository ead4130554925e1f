package link

import (
	"context"
	"fmt"
)

// Filter selects links in List; the zero value selects all.
type Filter struct {
	// Kind keeps links of this kind ("macvlan", "vlan"…).
	Kind string
	// Group keeps links in this group.
	Group *uint32
	// Up keeps links that are administratively up.
	Up bool
}

// List returns the namespace's links that pass f, in ifindex order, with
// parent names resolved.
func (h *Handle) List(ctx context.Context, f Filter) ([]*Link, error) {
	all, err := h.dump(ctx)
	if err != nil {
		return nil, fmt.Errorf("list links%s: %w", h.where(), err)
	}
	var out []*Link
	for _, l := range all {
		if f.Kind != "" && l.Kind != f.Kind {
			continue
		}
		if f.Group != nil && l.Group != *f.Group {
			continue
		}
		if f.Up && !l.Up() {
			continue
		}
		out = append(out, l)
	}
	return out, nil
}

// dump returns every link of the namespace, parents resolved.
func (h *Handle) dump(ctx context.Context) ([]*Link, error) {
	msgs, err := h.c.Links(ctx)
	if err != nil {
		return nil, err
	}
	links := make([]*Link, 0, len(msgs))
	byIndex := make(map[int32]*Link, len(msgs))
	for i := range msgs {
		l, err := decodeLink(&msgs[i])
		if err != nil {
			return nil, err
		}
		links = append(links, l)
		byIndex[l.Index] = l
	}
	for _, l := range links {
		if l.ParentIndex != 0 && l.ParentNetNSID == nil {
			if p := byIndex[l.ParentIndex]; p != nil {
				l.Parent = p.Name
				l.ParentDown = !p.Up()
			}
		}
		if l.Master != 0 {
			if p := byIndex[l.Master]; p != nil {
				l.MasterName = p.Name
			}
		}
	}
	return links, nil
}
