package link

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// ErrNotFound is wrapped by errors about a link that does not exist; the
// kernel's ENODEV stays reachable too.
var ErrNotFound = errors.New("link not found")

// Get returns the link called name, with its parent's name resolved.
func (h *Handle) Get(ctx context.Context, name string) (*Link, error) {
	if err := CheckName(name); err != nil {
		return nil, fieldErr("", "", "dev", name, err.Error())
	}
	l, err := h.get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("get link %s%s: %w", name, h.where(), err)
	}
	return l, nil
}

// where is " in netns NAME" for messages, or "".
func (h *Handle) where() string {
	if h.ns == "" {
		return ""
	}
	return " in netns " + h.ns
}

// get is Get without the message prefix.
func (h *Handle) get(ctx context.Context, name string) (*Link, error) {
	return h.getBy(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
}

// getBy gets the link req names (by ifindex or name), decoded, with its
// parent resolved.
func (h *Handle) getBy(ctx context.Context, req *rtnl.LinkMessage) (*Link, error) {
	m, err := h.getMsg(ctx, req)
	if err != nil {
		return nil, err
	}
	l, err := decodeLink(m)
	if err != nil {
		return nil, err
	}
	if err := h.resolveParent(ctx, l); err != nil {
		return nil, err
	}
	return l, nil
}

// getMsg runs RTM_GETLINK for one link (by index or name); ENODEV becomes
// an error wrapping both ErrNotFound and the errno.
func (h *Handle) getMsg(ctx context.Context, req *rtnl.LinkMessage) (*rtnl.LinkMessage, error) {
	m, err := h.c.GetLink(ctx, req)
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, err
	}
	return m, nil
}

// resolveParent fills l.Parent and l.ParentDown from the parent's state
// when it lives in the same namespace.
func (h *Handle) resolveParent(ctx context.Context, l *Link) error {
	if l.ParentIndex == 0 || l.ParentNetNSID != nil {
		return nil
	}
	pm, err := h.getMsg(ctx, &rtnl.LinkMessage{Index: l.ParentIndex})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil // a parent that vanished: leave the index
		}
		return fmt.Errorf("get parent (index %d): %w", l.ParentIndex, err)
	}
	l.Parent = pm.Attrs.Name
	l.ParentDown = pm.Flags&unix.IFF_UP == 0
	return nil
}

// getIndex is get by ifindex.
func (h *Handle) getIndex(ctx context.Context, index int32) (*Link, error) {
	return h.getBy(ctx, &rtnl.LinkMessage{Index: index})
}

// readBack gets the link called name from the target's namespace, or h's.
func (h *Handle) readBack(ctx context.Context, name string, tgt *target) (*Link, error) {
	there, err := h.in(tgt)
	if err != nil {
		return nil, err
	}
	defer there.Close()
	return there.get(ctx, name)
}

// Describe returns the description of the link called name.
func (h *Handle) Describe(ctx context.Context, name string) (*Description, error) {
	l, err := h.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return l.Describe(), nil
}
