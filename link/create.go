package link

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// opName is the prefix of an operation's errors: "create macvlan mv1 on eth0".
func opName(verb string, s Spec) string {
	b := s.Base()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s %s", verb, s.Kind(), b.Name)
	if b.Parent != "" {
		fmt.Fprintf(&sb, " on %s", b.Parent)
	}
	if b.NetNS != nil {
		fmt.Fprintf(&sb, " in netns %s", b.NetNS)
	}
	return sb.String()
}

// parentInfo is what creating a link needs to know about its parent.
type parentInfo struct {
	index int32
	mtu   uint32
}

// checkParent looks the parent of s up and checks it can carry s: it
// exists, is not a loopback, and its MTU is not below s's.
func (h *Handle) checkParent(ctx context.Context, s Spec) (*parentInfo, error) {
	b := s.Base()
	if !s.needsParent() {
		return nil, nil
	}
	m, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: b.Parent}})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, h.noParent(s)
		}
		return nil, fmt.Errorf("get parent %s: %w", b.Parent, err)
	}
	return parentFromMsg(s, m)
}

// noParent is the refusal of a spec whose parent does not exist in h's
// namespace.
func (h *Handle) noParent(s Spec) *FieldError {
	b := s.Base()
	return &FieldError{Kind: s.Kind(), Name: b.Name, Field: "link", Value: b.Parent,
		Fix: fmt.Sprintf("no such parent link%s: create it first or name an existing one", h.where()), Err: ErrNotFound}
}

func parentFromMsg(s Spec, m *rtnl.LinkMessage) (*parentInfo, error) {
	b := s.Base()
	if m.Type == unix.ARPHRD_LOOPBACK || m.Flags&unix.IFF_LOOPBACK != 0 {
		return nil, &FieldError{Kind: s.Kind(), Name: b.Name, Field: "link", Value: b.Parent,
			Fix: loopbackParentFix}
	}
	p := &parentInfo{index: m.Index}
	if m.Attrs.MTU != nil {
		p.mtu = *m.Attrs.MTU
	}
	if b.MTU != 0 && p.mtu != 0 && b.MTU > p.mtu {
		return nil, &FieldError{Kind: s.Kind(), Name: b.Name, Field: "mtu", Value: fmt.Sprint(b.MTU),
			Fix: fmt.Sprintf("above the parent %s's MTU %d: use mtu %d or less, or raise the parent's first", b.Parent, p.mtu, p.mtu)}
	}
	return p, nil
}

// Create validates s, checks its parent, and creates the link in one
// RTM_NEWLINK (NLM_F_CREATE|NLM_F_EXCL), in s.NetNS when set and up
// already if s.Up. An alias takes a second request (the kernel ignores
// IFLA_IFALIAS at creation). The returned Link is read back from the
// namespace the link landed in.
//
// A link going to another namespace may be named like a link of the
// handle's namespace — a container's eth0 on the host's eth0, as docker's
// macvlan driver makes. Some kernels (Debian's 6.1, measured) look the
// name up in the requesting socket's namespace and refuse with EEXIST
// (6.18 looks in the target's), so such a link is created under a
// temporary name and renamed over there, the way docker does it.
//
// If anything fails once the link exists (the read-back, the rename, the
// alias), the link is deleted again by its ifindex in the namespace where
// it is: never by name in the handle's namespace, where the name may be
// an unrelated link's — its own parent's, even.
func (h *Handle) Create(ctx context.Context, s Spec) (*Link, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	what := opName("create", s)
	b := s.Base()
	p, err := h.checkParent(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	tgt, err := openTarget(b.NetNS)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer tgt.close()
	createName := b.Name
	if tgt.t != nil {
		_, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: b.Name}})
		switch {
		case err == nil:
			createName = tempName()
		case !errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("%s: look for %s here: %w", what, b.Name, err)
		}
	}
	// Reach the link's namespace before creating anything: once the link
	// exists, a failure to get there would leave it behind.
	there, err := h.in(tgt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer there.Close()
	msg, err := newLinkMessage(s, p, tgt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	renamed := createName != b.Name
	if renamed {
		// Up after the rename: the kernel renames only links that are down.
		msg.Attrs.Name = createName
		msg.Flags &^= unix.IFF_UP
		msg.Change &^= unix.IFF_UP
	}
	if err := h.c.NewLink(ctx, msg, netlink.Create|netlink.Excl); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	l, err := there.get(ctx, createName)
	if err == nil {
		if ierr := ignoredByKernel(s, l); ierr != nil {
			return nil, fmt.Errorf("%s: %w%s", what, ierr, there.rollback(ctx, s, createName, l))
		}
	}
	if err == nil && h.afterCreate != nil {
		err = h.afterCreate()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read the new link back: %w%s", what, err, there.rollback(ctx, s, createName, l))
	}
	if renamed || b.Alias != "" {
		if err := there.c.SetLink(ctx, finishByIndex(l.Index, s, createName)); err != nil {
			return nil, fmt.Errorf("%s: %s: %w%s", what, finishStep(s, createName), err, there.rollback(ctx, s, createName, l))
		}
		if l, err = there.getIndex(ctx, l.Index); err != nil {
			return nil, fmt.Errorf("%s: read the new link back: %w%s", what, err, there.rollback(ctx, s, b.Name, l))
		}
	}
	l.ModeDefaulted = modeDefaulted(s)
	return l, nil
}

// tempName is a name for a link that is renamed right after its creation:
// "vmlink" and 8 random hex digits (14 bytes, under IFNAMSIZ).
func tempName() string {
	return fmt.Sprintf("vmlink%08x", rand.Uint32())
}

func modeDefaulted(s Spec) bool {
	switch v := s.(type) {
	case *Macvlan:
		return v.Mode == MacvlanModeUnset
	case *Macvtap:
		return v.Mode == MacvlanModeUnset
	}
	return false
}

// rollback deletes the link Create just made, on h, the handle of the
// namespace the link is in, by ifindex; with a fresh context, as the
// caller's may be what failed. l is the link as read back, nil when the
// read-back failed: then the link is looked up by name (the name it was
// created under) in this namespace, where Create's NLM_F_EXCL made the name
// ours, and deleted only if it is of the kind created. The result completes
// the error message.
func (h *Handle) rollback(ctx context.Context, s Spec, name string, l *Link) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rtnl.DefaultTimeout)
	defer cancel()
	if l == nil {
		m, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
		if err != nil {
			return fmt.Sprintf("; finding the new link to delete it failed too, check for %s%s: %v", name, h.where(), err)
		}
		if m.Attrs.Info == nil || m.Attrs.Info.Kind != s.Kind() {
			return fmt.Sprintf("; %s%s is no longer the %s created, so it was left alone", name, h.where(), s.Kind())
		}
		l = &Link{Index: m.Index}
	}
	if err := h.c.DelLink(ctx, &rtnl.LinkMessage{Index: l.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Sprintf("; deleting the new link (ifindex %d%s) failed too: %v", l.Index, h.where(), err)
	}
	return " (the link was deleted)"
}

// finishByIndex is the request, by ifindex, that gives a new link created
// as createdAs what its creation could not: its name and up state when it
// was created under a temporary name, and its alias.
func finishByIndex(index int32, s Spec, createdAs string) *rtnl.LinkMessage {
	b := s.Base()
	m := &rtnl.LinkMessage{Index: index}
	if createdAs != b.Name {
		m.Attrs.Name = b.Name
		if b.Up {
			m.Flags, m.Change = unix.IFF_UP, unix.IFF_UP
		}
	}
	if b.Alias != "" {
		alias := b.Alias
		m.Attrs.Alias = &alias
	}
	return m
}

// finishStep names what finishMessage does, for errors.
func finishStep(s Spec, createdAs string) string {
	var step []string
	if createdAs != s.Base().Name {
		step = append(step, "rename from the temporary "+createdAs)
	}
	if s.Base().Alias != "" {
		step = append(step, "set alias")
	}
	return strings.Join(step, ", ")
}
