package rtnl

import (
	"context"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// NETNSA_* attributes and the "no id" value (include/uapi/linux/net_namespace.h).
const (
	netnsaNSID = 1
	netnsaPID  = 2
	netnsaFD   = 3
	// NSIDNotAssigned is what the kernel answers for a namespace this one
	// has no id for (NETNSA_NSID_NOT_ASSIGNED).
	NSIDNotAssigned = -1
)

// NSIDMessage is an RTM_{NEW,GET}NSID body: struct rtgenmsg (the family,
// padded to 4 bytes) and its NETNSA_* attributes. A request names the peer
// namespace by FD (or PID); the answer carries its NSID in this namespace.
type NSIDMessage struct {
	NSID *int32  // NETNSA_NSID
	PID  *uint32 // NETNSA_PID
	FD   *uint32 // NETNSA_FD
}

const sizeofRtgenmsg = 4 // NLMSG_ALIGN(sizeof(struct rtgenmsg))

// MarshalBinary encodes the message as iproute2 does (family AF_UNSPEC).
func (m *NSIDMessage) MarshalBinary() ([]byte, error) {
	b := make([]byte, sizeofRtgenmsg)
	ae := netlink.NewAttributeEncoder()
	if m.NSID != nil {
		ae.Int32(netnsaNSID, *m.NSID)
	}
	if m.PID != nil {
		ae.Uint32(netnsaPID, *m.PID)
	}
	if m.FD != nil {
		ae.Uint32(netnsaFD, *m.FD)
	}
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode nsid attributes: %w", err)
	}
	return append(b, attrs...), nil
}

// UnmarshalBinary decodes an rtgenmsg and its attributes; unknown
// attributes are skipped.
func (m *NSIDMessage) UnmarshalBinary(b []byte) error {
	if len(b) < sizeofRtgenmsg {
		return fmt.Errorf("nsid message: %d bytes, want at least %d", len(b), sizeofRtgenmsg)
	}
	*m = NSIDMessage{}
	ad, err := netlink.NewAttributeDecoder(b[sizeofRtgenmsg:])
	if err != nil {
		return fmt.Errorf("nsid message: %w", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case netnsaNSID:
			v := ad.Int32()
			m.NSID = &v
		case netnsaPID:
			v := ad.Uint32()
			m.PID = &v
		case netnsaFD:
			v := ad.Uint32()
			m.FD = &v
		}
	}
	return ad.Err()
}

// NSIDOf returns the id this connection's namespace gives the namespace
// open as fd (the id IFLA_LINK_NETNSID names a link's parent namespace
// by), or NSIDNotAssigned.
func (c *Conn) NSIDOf(ctx context.Context, fd int) (int32, error) {
	if fd < 0 {
		return 0, &OpError{Op: "RTM_GETNSID", Err: errors.New("no namespace fd")}
	}
	f := uint32(fd)
	msgs, err := c.execute(ctx, unix.RTM_GETNSID, 0, &NSIDMessage{FD: &f}, nil)
	if err != nil {
		return 0, err
	}
	for _, msg := range msgs {
		if msg.Header.Type != unix.RTM_NEWNSID {
			continue
		}
		var m NSIDMessage
		if err := m.UnmarshalBinary(msg.Data); err != nil {
			return 0, &OpError{Op: "RTM_GETNSID", Err: fmt.Errorf("decode RTM_NEWNSID: %w", err)}
		}
		if m.NSID != nil {
			return *m.NSID, nil
		}
	}
	return 0, &OpError{Op: "RTM_GETNSID", Err: errors.New("the kernel answered without an nsid")}
}
