package link

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// Delete deletes the link called name. Deleting a link costs the kernel an
// RCU grace period (~60 links/s); to delete many, put them in a group and
// use DeleteGroup.
func (h *Handle) Delete(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return fieldErr("", "", "dev", name, err.Error())
	}
	err := h.c.DelLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return fmt.Errorf("delete link %s%s: %w", name, h.where(), err)
	}
	return nil
}

// DeleteGroup deletes every link in group with one RTM_DELLINK: the kernel
// unregisters them together, paying one RCU grace period for all (~10,000
// links/s instead of ~60). Group 0 is refused: every link starts in it.
// With no link in the group the error wraps ENODEV and ErrNotFound.
func (h *Handle) DeleteGroup(ctx context.Context, group uint32) error {
	if group == 0 {
		return fieldErr("", "", "group", "0", "group 0 is every link's default group: deleting it would delete every link; use a non-zero group")
	}
	g := group
	err := h.c.DelLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Group: &g}})
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return fmt.Errorf("delete group %d%s: %w", group, h.where(), err)
	}
	return nil
}

// deleteNames deletes the named links. Many links are first moved into a
// fresh group and deleted with one RTM_DELLINK by group (one RCU grace
// period instead of one per link); a few are deleted one by one.
func (h *Handle) deleteNames(ctx context.Context, names []string) error {
	if len(names) > 16 {
		if g, err := h.unusedGroup(ctx); err == nil {
			reqs := make([]rtnl.Request, len(names))
			for i, n := range names {
				gg := g
				reqs[i] = rtnl.Request{Type: unix.RTM_NEWLINK, Body: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: n, Group: &gg}}}
			}
			errs, _ := h.c.Batch(ctx, reqs)
			var rest []string
			for i := range names {
				if i >= len(errs) || errs[i] != nil {
					rest = append(rest, names[i])
				}
			}
			if err := h.c.DelLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Group: &g}}); err != nil && !errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("delete group %d: %w", g, err)
			}
			names = rest
		}
	}
	reqs := make([]rtnl.Request, len(names))
	for i, n := range names {
		reqs[i] = rtnl.DelLinkRequest(&rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: n}})
	}
	errs, err := h.c.Batch(ctx, reqs)
	var out []error
	for i, e := range errs {
		if e != nil && !errors.Is(e, unix.ENODEV) {
			out = append(out, fmt.Errorf("delete %s: %w", names[i], e))
		}
	}
	if err != nil {
		out = append(out, err)
	}
	return errors.Join(out...)
}

// unusedGroup picks a random non-zero link group no link of the namespace
// is in, for a rollback's delete by group.
func (h *Handle) unusedGroup(ctx context.Context) (uint32, error) {
	links, err := h.c.Links(ctx)
	if err != nil {
		return 0, err
	}
	used := map[uint32]bool{0: true}
	for _, l := range links {
		if l.Attrs.Group != nil {
			used[*l.Attrs.Group] = true
		}
	}
	for range 100 {
		if g := rand.Uint32(); !used[g] {
			return g, nil
		}
	}
	return 0, errors.New("no unused link group found")
}
