package link

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// MismatchError is Ensure finding a link of that name that differs from the
// spec in something it will not change on its own.
type MismatchError struct {
	Name  string
	Diffs []string // "mode: have vepa, want bridge"
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("link %s exists but differs: %s (delete it or change the spec)", e.Name, strings.Join(e.Diffs, "; "))
}

// Ensure makes sure a link matching s exists: it creates it when absent;
// when a link of that name exists it checks that kind, parent and every
// field the spec sets match (a *MismatchError lists what differs, and
// nothing is changed), and brings it up if s.Up and it is down. created
// reports whether Ensure created the link.
func (h *Handle) Ensure(ctx context.Context, s Spec) (l *Link, created bool, err error) {
	if err := s.Validate(); err != nil {
		return nil, false, err
	}
	b := s.Base()
	what := opName("ensure", s)
	tgt, err := openTarget(b.NetNS)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	defer tgt.close()
	cur, err := h.readBack(ctx, b.Name, tgt)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			return nil, false, fmt.Errorf("%s: %w", what, err)
		}
		l, err := h.Create(ctx, s)
		return l, err == nil, err
	}
	var p *parentInfo
	if s.needsParent() {
		if p, err = h.checkParent(ctx, s); err != nil {
			return nil, false, fmt.Errorf("%s: %w", what, err)
		}
	}
	if diffs := compareSpec(s, p, cur); len(diffs) > 0 {
		return nil, false, fmt.Errorf("%s: %w", what, &MismatchError{Name: b.Name, Diffs: diffs})
	}
	if b.Up && !cur.Up() {
		up := true
		hh := h
		if tgt.t != nil {
			c, err := tgt.dial()
			if err != nil {
				return nil, false, fmt.Errorf("%s: %w", what, err)
			}
			defer c.Close()
			hh = &Handle{c: c, ns: tgt.t.String()}
		}
		if err := hh.Set(ctx, b.Name, Change{Up: &up}); err != nil {
			return nil, false, fmt.Errorf("%s: %w", what, err)
		}
		if cur, err = hh.get(ctx, b.Name); err != nil {
			return nil, false, fmt.Errorf("%s: %w", what, err)
		}
	}
	return cur, false, nil
}
