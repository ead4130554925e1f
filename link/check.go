package link

import (
	"context"
	"fmt"
)

// Prepare validates s and checks its parent as Create would (it exists, is
// no loopback, its MTU is not below s's), without creating anything: for
// callers that must commit other resources (an IP address from an IPAM
// plugin) only once the link is known to be creatable.
func (h *Handle) Prepare(ctx context.Context, s Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if _, err := h.checkParent(ctx, s); err != nil {
		return fmt.Errorf("%s: %w", opName("create", s), err)
	}
	return nil
}

// Compare reads the link s names (in s.NetNS when set) and returns what
// differs from s — kind, parent ifindex, MTU, MAC, group, alias and every
// kind-specific field s sets — as Ensure would report it, without creating
// or changing anything. The error wraps ErrNotFound when the link is gone.
func (h *Handle) Compare(ctx context.Context, s Spec) (*Link, []string, error) {
	b := s.Base()
	tgt, err := openTarget(b.NetNS)
	if err != nil {
		return nil, nil, err
	}
	defer tgt.close()
	cur, err := h.readBack(ctx, b.Name, tgt)
	if err != nil {
		return nil, nil, err
	}
	var p *parentInfo
	if s.needsParent() {
		if p, err = h.checkParent(ctx, s); err != nil {
			return cur, nil, err
		}
	}
	return cur, compareSpec(s, p, cur), nil
}
