package feature

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

// probeTimeout bounds a probe's netlink requests.
const probeTimeout = 30 * time.Second

// probeKind creates a link of kind in a throwaway namespace; stacked kinds
// get a veth parent, which the kernel must have for the answer to mean
// anything.
func probeKind(kind string) error {
	return probeIn(kind, "a link of kind "+kind, Module(kind), func(l *probeLink) error {
		switch kind {
		case "veth", "bridge", "dummy":
			return l.add("vp0", kind, 0, nil)
		}
		if err := l.add("vp0", "veth", 0, nil); err != nil {
			return fmt.Errorf("%w: create a veth parent: %w", errCannotTell, err)
		}
		parent, err := l.index("vp0")
		if err != nil {
			return fmt.Errorf("%w: %w", errCannotTell, err)
		}
		switch kind {
		case "macvlan", "macvtap":
			return l.add("vm0", kind, parent, func(ae *netlink.AttributeEncoder) {
				ae.Uint32(unix.IFLA_MACVLAN_MODE, 4 /* MACVLAN_MODE_BRIDGE */)
			})
		case "vlan":
			return l.add("vv0", kind, parent, func(ae *netlink.AttributeEncoder) {
				ae.Uint16(unix.IFLA_VLAN_ID, 10)
			})
		case "ipvlan":
			return l.add("vi0", kind, parent, func(ae *netlink.AttributeEncoder) {
				ae.Uint16(unix.IFLA_IPVLAN_MODE, 0 /* IPVLAN_MODE_L2 */)
			})
		}
		return fmt.Errorf("%w: no probe for kind %s", errCannotTell, kind)
	})
}

// iflaBrVLANFiltering is IFLA_BR_VLAN_FILTERING (u8) in a bridge's
// IFLA_INFO_DATA.
const iflaBrVLANFiltering = 7

func probeBridgeVLANFiltering() error {
	return probeIn("bridge", "a bridge with vlan_filtering 1", "bridge VLAN filtering", func(l *probeLink) error {
		return l.add("vb0", "bridge", 0, func(ae *netlink.AttributeEncoder) {
			ae.Uint8(iflaBrVLANFiltering, 1)
		})
	})
}

// errCannotTell marks a failure of the probe's own setup.
var errCannotTell = errors.New("probe setup failed")

// probeIn runs create in a throwaway namespace and judges its error: the
// kernel's EOPNOTSUPP ("Unknown device type") is a missing feature, any
// other error means the probe could not tell.
func probeIn(kind, what, module string, create func(*probeLink) error) error {
	var probeErr error
	err := inThrowawayNetNS(func(c *netlink.Conn) error {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		probeErr = create(&probeLink{c: c, ctx: ctx})
		return nil
	})
	if err != nil {
		return fmt.Errorf("probe %s: %w", what, err)
	}
	if probeErr == nil {
		return nil
	}
	if errors.Is(probeErr, unix.EOPNOTSUPP) && !errors.Is(probeErr, errCannotTell) {
		return &NotSupportedError{Kind: kind, Module: module, Release: kernelRelease(), Probe: what, Err: probeErr}
	}
	return fmt.Errorf("probe %s: %w", what, probeErr)
}

// kernelRelease is uname -r, for messages.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "(unknown)"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// probeLink creates links with hand-built RTM_NEWLINK requests: the probe
// must not depend on the rtnl codecs whose tests it gates.
type probeLink struct {
	c   *netlink.Conn
	ctx context.Context
}

func (l *probeLink) add(name, kind string, parent uint32, data func(*netlink.AttributeEncoder)) error {
	ae := netlink.NewAttributeEncoder()
	if parent != 0 {
		ae.Uint32(unix.IFLA_LINK, parent)
	}
	ae.String(unix.IFLA_IFNAME, name)
	ae.Nested(unix.IFLA_LINKINFO, func(li *netlink.AttributeEncoder) error {
		li.String(unix.IFLA_INFO_KIND, kind)
		if data != nil {
			li.Nested(unix.IFLA_INFO_DATA, func(d *netlink.AttributeEncoder) error {
				data(d)
				return nil
			})
		}
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = l.exec(unix.RTM_NEWLINK, netlink.Acknowledge|netlink.Create|netlink.Excl, attrs)
	if err != nil {
		return fmt.Errorf("create %s link: %w", kind, err)
	}
	return nil
}

func (l *probeLink) index(name string) (uint32, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.IFLA_IFNAME, name)
	attrs, err := ae.Encode()
	if err != nil {
		return 0, err
	}
	// No ACK flag on a GET: the answer is the link, and a trailing ACK
	// would be read as the reply to the next request.
	msgs, err := l.exec(unix.RTM_GETLINK, 0, attrs)
	if err != nil {
		return 0, fmt.Errorf("get link %s: %w", name, err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWLINK && len(m.Data) >= unix.SizeofIfInfomsg {
			return binary.NativeEndian.Uint32(m.Data[4:8]), nil
		}
	}
	return 0, fmt.Errorf("get link %s: no answer", name)
}

func (l *probeLink) exec(typ netlink.HeaderType, flags netlink.HeaderFlags, attrs []byte) ([]netlink.Message, error) {
	if dl, ok := l.ctx.Deadline(); ok {
		if err := l.c.SetDeadline(dl); err != nil {
			return nil, err
		}
	}
	body := append(make([]byte, unix.SizeofIfInfomsg), attrs...)
	return l.c.Execute(netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | flags},
		Data:   body,
	})
}

// inThrowawayNetNS opens a route netlink socket in a new, unnamed network
// namespace (netns.DoNew, the careful way in and back) and runs fn with it.
// The namespace lives only as long as the socket: closing it at the end
// removes the namespace and every link the probe made, whatever happened.
func inThrowawayNetNS(fn func(*netlink.Conn) error) error {
	var c *netlink.Conn
	err := netns.DoNew(func() error {
		var err error
		if c, err = netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Strict: true}); err != nil {
			return fmt.Errorf("dial rtnetlink in the probe netns: %w", err)
		}
		return nil
	})
	if err != nil {
		if c != nil {
			c.Close()
		}
		return err
	}
	defer c.Close()
	return fn(c)
}
