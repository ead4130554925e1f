package link

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// Set applies ch to the link called dev in one RTM_NEWLINK (as `ip link
// set` does). It checks ch against the link first (kind, the mode the
// macvlan options need, the parent's MTU). If the kernel refuses, the
// common fields the request may already have changed (name, MTU, address,
// alias, group, txqueuelen, master, hairpin, up/down) are put back as they
// were.
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
