package rtnl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Typed link requests over LinkMessage. Each one carries a HintContext built
// from the message, so a kernel refusal comes back with its hint.

// NewLink sends m as RTM_NEWLINK with flags (plus NLM_F_REQUEST|NLM_F_ACK).
// To create a link the way `ip link add` does, pass
// netlink.Create|netlink.Excl; Create without Excl updates an existing link
// of the same name instead of failing with EEXIST.
func (c *Conn) NewLink(ctx context.Context, m *LinkMessage, flags netlink.HeaderFlags) error {
	if m == nil {
		return &OpError{Op: "RTM_NEWLINK", Err: errors.New("nil link message")}
	}
	_, err := c.execute(ctx, unix.RTM_NEWLINK, flags, m, linkHint(unix.RTM_NEWLINK, m))
	return err
}

// SetLink changes an existing link (by m.Index, else m.Attrs.Name) as
// `ip link set` does: RTM_NEWLINK without NLM_F_CREATE, which unlike
// RTM_SETLINK also accepts IFLA_LINKINFO changes (e.g. a macvlan's source
// MAC list). Only what m sets changes; flags change where m.Change says.
func (c *Conn) SetLink(ctx context.Context, m *LinkMessage) error {
	if m == nil {
		return &OpError{Op: "RTM_NEWLINK", Err: errors.New("nil link message")}
	}
	_, err := c.execute(ctx, unix.RTM_NEWLINK, 0, m, linkHint(unix.RTM_SETLINK, m))
	return err
}

// DelLink deletes the link m names by index or name, or, with neither set
// and m.Attrs.Group set, every link of that group in one request: the kernel
// then unregisters them together (rtnl_group_dellink), paying one RCU grace
// period instead of one per link — 1,000 macvlans go in ~0.1 s instead of
// ~17 s. Group 0 is everybody's default group and is refused (EPERM).
func (c *Conn) DelLink(ctx context.Context, m *LinkMessage) error {
	if m == nil {
		return &OpError{Op: "RTM_DELLINK", Err: errors.New("nil link message")}
	}
	_, err := c.execute(ctx, unix.RTM_DELLINK, 0, m, linkHint(unix.RTM_DELLINK, m))
	return err
}

// GetLink returns the link m names by index (m.Index) or name
// (m.Attrs.Name); other fields of m are not sent (strict checking refuses
// them in a GET).
func (c *Conn) GetLink(ctx context.Context, m *LinkMessage) (*LinkMessage, error) {
	if m == nil || (m.Index == 0 && m.Attrs.Name == "") {
		return nil, &OpError{Op: "RTM_GETLINK", Err: errors.New("get link needs an index or a name")}
	}
	req := &LinkMessage{Index: m.Index}
	req.Attrs.Name = m.Attrs.Name
	msgs, err := c.execute(ctx, unix.RTM_GETLINK, 0, req, linkHint(unix.RTM_GETLINK, m))
	if err != nil {
		return nil, err
	}
	for _, msg := range msgs {
		if msg.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		var lm LinkMessage
		if err := lm.UnmarshalBinary(msg.Data); err != nil {
			return nil, &OpError{Op: "RTM_GETLINK", Err: fmt.Errorf("decode link: %w", err)}
		}
		return &lm, nil
	}
	return nil, &OpError{Op: "RTM_GETLINK", Err: errors.New("the kernel acknowledged but sent no link")}
}

// Links dumps every link of the namespace. A link that fails to decode
// fails the call (with its index): a listing that silently drops links or
// attributes is worse than an error.
func (c *Conn) Links(ctx context.Context) ([]LinkMessage, error) {
	msgs, err := c.Dump(ctx, unix.RTM_GETLINK, &LinkMessage{})
	if err != nil {
		return nil, err
	}
	out := make([]LinkMessage, 0, len(msgs))
	for _, msg := range msgs {
		if msg.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		var lm LinkMessage
		if err := lm.UnmarshalBinary(msg.Data); err != nil {
			idx := int32(-1)
			if len(msg.Data) >= 8 {
				idx = int32(binary.NativeEndian.Uint32(msg.Data[4:8]))
			}
			return nil, &OpError{Op: "RTM_GETLINK", Err: fmt.Errorf("decode link %d: %w", idx, err)}
		}
		out = append(out, lm)
	}
	return out, nil
}

// linkHint describes a link request for Hint. typ is the request's meaning
// (RTM_SETLINK for SetLink, which goes out as RTM_NEWLINK).
func linkHint(typ netlink.HeaderType, m *LinkMessage) *HintContext {
	hc := &HintContext{
		Type:        typ,
		Name:        m.Attrs.Name,
		SetsAddress: m.Attrs.Address != nil,
		SetsUp:      m.Flags&unix.IFF_UP != 0 && m.Change&unix.IFF_UP != 0,
		SetsMTU:     m.Attrs.MTU != nil,
		ByGroup:     typ == unix.RTM_DELLINK && m.Index == 0 && m.Attrs.Name == "" && m.Attrs.Group != nil,
	}
	if m.Attrs.Info != nil {
		hc.Kind = m.Attrs.Info.Kind
		hc.Mode = driverMode(m.Attrs.Info.Data)
	}
	return hc
}

// driverMode is the mode a kind driver sends, in iproute2's words, or "".
func driverMode(d rtnetlink.LinkDriver) string {
	switch d := d.(type) {
	case *Macvlan:
		if d.Mode != nil {
			return d.Mode.String()
		}
	case *Macvtap:
		if d.Mode != nil {
			return d.Mode.String()
		}
	case *IPVlan:
		if d.Mode != nil {
			return d.Mode.String()
		}
	}
	return ""
}

// NewLinkRequest is NewLink as a Batch request (hint context included), for
// creating many links in a few sendmsg calls.
func NewLinkRequest(m *LinkMessage, flags netlink.HeaderFlags) Request {
	return Request{Type: unix.RTM_NEWLINK, Flags: flags, Body: m, Hint: linkHint(unix.RTM_NEWLINK, m)}
}

// DelLinkRequest is DelLink as a Batch request.
func DelLinkRequest(m *LinkMessage) Request {
	return Request{Type: unix.RTM_DELLINK, Body: m, Hint: linkHint(unix.RTM_DELLINK, m)}
}
