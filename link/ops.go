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

// ErrNotFound is wrapped by errors about a link that does not exist; the
// kernel's ENODEV stays reachable too.
var ErrNotFound = errors.New("link not found")

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

// Describe returns the description of the link called name.
func (h *Handle) Describe(ctx context.Context, name string) (*Description, error) {
	l, err := h.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return l.Describe(), nil
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
			return nil, &FieldError{Kind: s.Kind(), Name: b.Name, Field: "link", Value: b.Parent,
				Fix: fmt.Sprintf("no such parent link%s: create it first or name an existing one", h.where()), Err: ErrNotFound}
		}
		return nil, fmt.Errorf("get parent %s: %w", b.Parent, err)
	}
	return parentFromMsg(s, m)
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

// getIndex is get by ifindex.
func (h *Handle) getIndex(ctx context.Context, index int32) (*Link, error) {
	return h.getBy(ctx, &rtnl.LinkMessage{Index: index})
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

// in returns a Handle on the target's namespace (a fresh connection, closed
// by its Close), or one sharing h's connection when there is no target.
func (h *Handle) in(tgt *target) (*Handle, error) {
	if tgt == nil || tgt.t == nil {
		return &Handle{c: h.c, ns: h.ns}, nil
	}
	c, err := tgt.dial()
	if err != nil {
		return nil, err
	}
	return &Handle{c: c, own: true, ns: tgt.t.String()}, nil
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

// Set applies ch to the link called dev in one RTM_NEWLINK (as `ip link
// set` does). It checks ch against the link first (kind, the mode the
// macvlan options need, the parent's MTU). If the kernel refuses, the
// common fields the request may already have changed (name, MTU, address,
// alias, group, txqueuelen, up/down) are put back as they were.
func (h *Handle) Set(ctx context.Context, dev string, ch Change) error {
	if err := ch.Validate(dev); err != nil {
		return err
	}
	what := "set link " + dev + h.where()
	cur, err := h.get(ctx, dev)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := h.checkChange(ctx, cur, &ch); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	tgt, err := openTarget(ch.NetNS)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tgt.close()
	msg, err := changeMessage(cur, &ch, tgt)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if ch.Master != nil {
		idx, err := h.masterIndex(ctx, *ch.Master)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		msg.Attrs.Master = &idx
	}
	if err := h.c.SetLink(ctx, msg); err != nil {
		if errors.Is(err, unix.ENODEV) {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		h.restore(ctx, cur, &ch)
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := h.checkApplied(ctx, cur, &ch); err != nil {
		h.restore(ctx, cur, &ch)
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// masterIndex is the ifindex of the bridge called name, 0 for "" (no
// master).
func (h *Handle) masterIndex(ctx context.Context, name string) (uint32, error) {
	if name == "" {
		return 0, nil
	}
	m, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
	if err != nil {
		return 0, fmt.Errorf("master %s: %w", name, err)
	}
	return uint32(m.Index), nil
}

// checkApplied reads the link back after a change that sets an option older
// kernels accept and drop without a word (see ignoredByKernel).
func (h *Handle) checkApplied(ctx context.Context, cur *Link, ch *Change) error {
	m := ch.Macvlan
	if m == nil || ch.NetNS != nil || (m.BCQueueLen == nil && (m.BCCutoff == nil || *m.BCCutoff == defaultBCCutoff)) {
		return nil
	}
	l, err := h.getIndex(ctx, cur.Index)
	if err != nil {
		return fmt.Errorf("read the link back: %w", err)
	}
	var s Spec = &Macvlan{Common: Common{Name: l.Name}, BCQueueLen: m.BCQueueLen, BCCutoff: m.BCCutoff}
	if cur.Kind == "macvtap" {
		s = (*Macvtap)(s.(*Macvlan))
	}
	return ignoredByKernel(s, l)
}

// checkChange checks ch against the link's current state.
func (h *Handle) checkChange(ctx context.Context, cur *Link, ch *Change) error {
	if ch.Kind != "" && ch.Kind != cur.Kind {
		return fieldErr(cur.Kind, cur.Name, "type", ch.Kind, fmt.Sprintf("the link is a %s, not a %s: use type %s", kindName(cur.Kind), ch.Kind, kindName(cur.Kind)))
	}
	switch {
	case ch.VLAN != nil && cur.VLAN == nil,
		ch.IPVlan != nil && cur.IPVlan == nil,
		ch.Macvlan != nil && cur.Macvlan == nil:
		return fieldErr(cur.Kind, cur.Name, "type", ch.Kind, fmt.Sprintf("the link is a %s: its kind's options do not apply", kindName(cur.Kind)))
	}
	if m := ch.Macvlan; m != nil {
		mode := cur.Macvlan.Mode
		if m.Mode != MacvlanModeUnset {
			mode = m.Mode
		}
		// macvlan_changelink: "Passthrough mode can't be set or cleared
		// dynamically" (EINVAL without a message).
		if (mode == MacvlanModePassthru) != (cur.Macvlan.Mode == MacvlanModePassthru) {
			return fieldErr(cur.Kind, cur.Name, "mode", mode.String(),
				fmt.Sprintf("the kernel cannot switch a link to or from passthru (it is %s): delete it and add it again", cur.Macvlan.Mode))
		}
		flags := cur.Macvlan.Flags
		if m.Flags != nil {
			flags = *m.Flags
		}
		if err := validateMacvlanOpts(cur.Kind, cur.Name, mode, flags&MacvlanFlagNoPromisc != 0, flags&MacvlanFlagNoDst != 0, m.MACAddrs, m.MACAddrOp); err != nil {
			return err
		}
	}
	if ch.MTU != nil && cur.ParentIndex != 0 && cur.ParentNetNSID == nil {
		pm, err := h.getMsg(ctx, &rtnl.LinkMessage{Index: cur.ParentIndex})
		if err == nil && pm.Attrs.MTU != nil && *ch.MTU > *pm.Attrs.MTU {
			return fieldErr(cur.Kind, cur.Name, "mtu", fmt.Sprint(*ch.MTU),
				fmt.Sprintf("above the parent %s's MTU %d: use mtu %d or less, or raise the parent's first", pm.Attrs.Name, *pm.Attrs.MTU, *pm.Attrs.MTU))
		}
	}
	return nil
}

func kindName(k string) string {
	if k == "" {
		return "link without a kind"
	}
	return k
}

// restore puts back the common fields a failed Set may have changed.
func (h *Handle) restore(ctx context.Context, cur *Link, ch *Change) {
	m := restoreMessage(cur, ch)
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rtnl.DefaultTimeout)
	defer cancel()
	_ = h.c.SetLink(ctx, m)
}

// CreateBatch creates every spec, all or nothing: it validates them all and
// checks their parents first (nothing is sent if one is wrong), then sends
// the RTM_NEWLINKs pipelined through rtnl's Batch (many per sendmsg). If
// the kernel refuses any, every link the batch created is deleted again and
// the error names the first refusal and how many failed.
//
// For speed give the links a Group: deleting them with DeleteGroup is one
// request.
//
// As Create does, a link going to another namespace under the name of a
// link of this one (a container's eth0 on the host's eth0) is created under
// a temporary name and renamed over there after the batch: 6.1 looks the
// name up in the requesting namespace and would refuse it with EEXIST.
func (h *Handle) CreateBatch(ctx context.Context, specs []Spec) error {
	if len(specs) == 0 {
		return nil
	}
	names := make(map[string]int, len(specs))
	parents := map[string]*rtnl.LinkMessage{}
	for i, s := range specs {
		if s == nil {
			return fmt.Errorf("create batch: spec %d is nil", i)
		}
		if err := s.Validate(); err != nil {
			return batchErr(i, err)
		}
		b := s.Base()
		if j, dup := names[b.Name]; dup && sameNS(specs[j].Base().NetNS, b.NetNS) {
			return batchErr(i, fieldErr(s.Kind(), b.Name, "name", b.Name, fmt.Sprintf("already used by line %d: give each link its own name", j+1)))
		}
		names[b.Name] = i
		if s.needsParent() {
			parents[b.Parent] = nil
		}
	}
	// One dump resolves every parent when there are many distinct ones;
	// a GETLINK each when few.
	if len(parents) > 8 {
		msgs, err := h.c.Links(ctx)
		if err != nil {
			return fmt.Errorf("create batch: list links: %w", err)
		}
		for i := range msgs {
			if _, ok := parents[msgs[i].Attrs.Name]; ok {
				parents[msgs[i].Attrs.Name] = &msgs[i]
			}
		}
	} else {
		for name := range parents {
			m, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
			if err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("create batch: get parent %s: %w", name, err)
			}
			parents[name] = m
		}
	}
	// Names that exist here: a link bound elsewhere under one of them is
	// created under a temporary name (see Create).
	here, err := h.namesHere(ctx, specs)
	if err != nil {
		return fmt.Errorf("create batch: %w", err)
	}
	// Open every target namespace once.
	targets := map[Target]*target{}
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	tgtOf := make([]*target, len(specs))
	for i, s := range specs {
		t := s.Base().NetNS
		if t == nil {
			tgtOf[i] = &target{fd: -1}
			continue
		}
		if targets[*t] == nil {
			ot, err := openTarget(t)
			if err != nil {
				return batchErr(i, err)
			}
			targets[*t] = ot
		}
		tgtOf[i] = targets[*t]
	}
	reqs := make([]rtnl.Request, len(specs))
	// createName is each link's name as sent (a temporary one for those in
	// here); the rollback deletes by it until the rename has happened.
	createName := make([]string, len(specs))
	var finish []int // specs needing a second request (rename, alias)
	for i, s := range specs {
		var p *parentInfo
		if s.needsParent() {
			pm := parents[s.Base().Parent]
			if pm == nil {
				return batchErr(i, &FieldError{Kind: s.Kind(), Name: s.Base().Name, Field: "link",
					Value: s.Base().Parent, Fix: fmt.Sprintf("no such parent link%s: create it first or name an existing one", h.where()), Err: ErrNotFound})
			}
			var err error
			if p, err = parentFromMsg(s, pm); err != nil {
				return batchErr(i, err)
			}
		}
		msg, err := newLinkMessage(s, p, tgtOf[i])
		if err != nil {
			return batchErr(i, err)
		}
		createName[i] = s.Base().Name
		if tgtOf[i].t != nil && here[createName[i]] {
			createName[i] = tempName()
			msg.Attrs.Name = createName[i]
			msg.Flags &^= unix.IFF_UP // up after the rename: the kernel renames only links that are down
			msg.Change &^= unix.IFF_UP
		}
		if s.Base().Alias != "" || createName[i] != s.Base().Name {
			finish = append(finish, i)
		}
		reqs[i] = rtnl.NewLinkRequest(msg, netlink.Create|netlink.Excl)
	}
	errs, terr := h.c.Batch(ctx, reqs)
	created := make([]bool, len(specs))
	var (
		failed   int
		firstErr error
		firstAt  = -1
	)
	fail := func(i int, err error) {
		failed++
		if firstAt < 0 {
			firstAt, firstErr = i, err
		}
	}
	for i := range specs {
		var e error
		switch {
		case i < len(errs):
			e = errs[i]
		case terr != nil:
			e = terr
		}
		if e != nil {
			fail(i, e)
			continue
		}
		created[i] = true
	}
	if failed == 0 && len(finish) > 0 {
		// Aliases are set where the links landed: one batch per namespace.
		byTarget := map[*target][]int{}
		var order []*target
		for _, i := range finish {
			t := tgtOf[i]
			if t.t == nil {
				t = nil
			}
			if _, ok := byTarget[t]; !ok {
				order = append(order, t)
			}
			byTarget[t] = append(byTarget[t], i)
		}
		for _, t := range order {
			idx := byTarget[t]
			there, err := h.in(t)
			if err != nil {
				for _, i := range idx {
					fail(i, fmt.Errorf("set alias: %w", err))
				}
				continue
			}
			freqs := make([]rtnl.Request, 0, len(idx))
			sent := make([]int, 0, len(idx))
			for _, i := range idx {
				m, err := there.finishMessage(ctx, specs[i], createName[i])
				if err != nil {
					fail(i, err)
					continue
				}
				freqs = append(freqs, rtnl.Request{Type: unix.RTM_NEWLINK, Body: m})
				sent = append(sent, i)
			}
			ferrs, fterr := there.c.Batch(ctx, freqs)
			there.Close()
			for k, i := range sent {
				var e error
				switch {
				case k < len(ferrs):
					e = ferrs[k]
				case fterr != nil:
					e = fterr
				}
				if e != nil {
					fail(i, fmt.Errorf("%s: %w", finishStep(specs[i], createName[i]), e))
					continue
				}
				createName[i] = specs[i].Base().Name
			}
		}
	}
	if failed == 0 {
		// Options older kernels drop without a word (bclim before 6.4):
		// read back only the links that asked for them.
		for i, s := range specs {
			if !hasNewerOptions(s) {
				continue
			}
			there, err := h.in(tgtOf[i])
			if err != nil {
				fail(i, fmt.Errorf("read the new link back: %w", err))
				break
			}
			l, err := there.get(ctx, createName[i])
			there.Close()
			if err == nil {
				err = ignoredByKernel(s, l)
			} else {
				err = fmt.Errorf("read the new link back: %w", err)
			}
			if err != nil {
				fail(i, err)
				break
			}
		}
	}
	if firstAt < 0 {
		return nil
	}
	n := 0
	for _, c := range created {
		if c {
			n++
		}
	}
	msg := fmt.Sprintf("%s: %v", opName("create", specs[firstAt]), firstErr)
	if failed > 1 {
		msg += fmt.Sprintf(" (%d of %d lines failed)", failed, len(specs))
	}
	if rerr := h.rollbackBatch(ctx, createName, created, tgtOf); rerr != nil {
		msg += fmt.Sprintf("; deleting the %d links already created failed too: %v", n, rerr)
	} else if n > 0 {
		msg += fmt.Sprintf("; the %d links the batch had created were deleted", n)
	}
	return &BatchError{Line: firstAt + 1, Msg: msg, Err: firstErr}
}

// namesHere reports which of the names of specs bound for another
// namespace exist in h's: one dump when there are many, a GETLINK each
// when few, nothing when no spec leaves.
func (h *Handle) namesHere(ctx context.Context, specs []Spec) (map[string]bool, error) {
	var leaving []string
	for _, s := range specs {
		if s.Base().NetNS != nil {
			leaving = append(leaving, s.Base().Name)
		}
	}
	here := map[string]bool{}
	if len(leaving) > 8 {
		msgs, err := h.c.Links(ctx)
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		for i := range msgs {
			here[msgs[i].Attrs.Name] = true
		}
		return here, nil
	}
	for _, name := range leaving {
		_, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
		switch {
		case err == nil:
			here[name] = true
		case !errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("look for %s here: %w", name, err)
		}
	}
	return here, nil
}

// finishMessage is the second request of a batch-created link, sent in
// the namespace where it landed: its alias, and for one created under a
// temporary name, the rename (by ifindex, read back here) and up.
func (h *Handle) finishMessage(ctx context.Context, s Spec, createdAs string) (*rtnl.LinkMessage, error) {
	b := s.Base()
	if createdAs == b.Name {
		return aliasMessage(s), nil
	}
	cur, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: createdAs}})
	if err != nil {
		return nil, fmt.Errorf("%s: read it back: %w", finishStep(s, createdAs), err)
	}
	return finishByIndex(cur.Index, s, createdAs), nil
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

// BatchError is CreateBatch's refusal, about the spec at Line (1-based
// position in the batch), so a caller that read the specs from a file can
// name the file's own line. The refusal stays reachable (errors.Is/As).
type BatchError struct {
	Line int
	Msg  string // what went wrong, without the position
	Err  error
}

func (e *BatchError) Error() string { return fmt.Sprintf("create batch: line %d: %s", e.Line, e.Msg) }
func (e *BatchError) Unwrap() error { return e.Err }

func batchErr(i int, err error) error { return &BatchError{Line: i + 1, Msg: err.Error(), Err: err} }

func sameNS(a, b *Target) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// rollbackBatch deletes the links marked created, by the names they have
// now, with a fresh context: the caller's may be what failed.
func (h *Handle) rollbackBatch(ctx context.Context, names []string, created []bool, tgtOf []*target) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*rtnl.DefaultTimeout)
	defer cancel()
	byTarget := map[*target][]string{}
	for i, name := range names {
		if created[i] {
			t := tgtOf[i]
			if t.t == nil {
				t = nil
			}
			byTarget[t] = append(byTarget[t], name)
		}
	}
	var errs []error
	for t, names := range byTarget {
		if t == nil {
			errs = append(errs, h.deleteNames(ctx, names))
			continue
		}
		c, err := t.dial()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, (&Handle{c: c, ns: t.t.String()}).deleteNames(ctx, names))
		c.Close()
	}
	return errors.Join(errs...)
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
