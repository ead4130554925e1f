package rtnl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// RouteMessage is an RTM_{NEW,DEL,GET}ROUTE body: struct rtmsg and the
// attributes the data plane uses. Our own codec, for netip types and
// iproute2's attribute order.
type RouteMessage struct {
	Family   uint8
	DstLen   uint8
	SrcLen   uint8
	TOS      uint8
	Table    uint8 // unix.RT_TABLE_MAIN etc.; tables > 255 go in Attrs.Table
	Protocol uint8 // unix.RTPROT_*
	Scope    uint8 // unix.RT_SCOPE_*
	Type     uint8 // unix.RTN_*
	Flags    uint32
	Attrs    RouteAttrs
}

// RouteAttrs are a route's attributes; invalid addresses and nil pointers
// are absent attributes.
type RouteAttrs struct {
	Dst      netip.Addr // RTA_DST
	Gateway  netip.Addr // RTA_GATEWAY
	PrefSrc  netip.Addr // RTA_PREFSRC
	OIF      *uint32    // RTA_OIF
	Priority *uint32    // RTA_PRIORITY (the metric)
	Table    *uint32    // RTA_TABLE
}

const sizeofRtmsg = 12

// MarshalBinary encodes the message.
func (m *RouteMessage) MarshalBinary() ([]byte, error) {
	b := make([]byte, sizeofRtmsg)
	b[0], b[1], b[2], b[3] = m.Family, m.DstLen, m.SrcLen, m.TOS
	b[4], b[5], b[6], b[7] = m.Table, m.Protocol, m.Scope, m.Type
	binary.NativeEndian.PutUint32(b[8:], m.Flags)
	ae := netlink.NewAttributeEncoder()
	a := &m.Attrs
	if a.Table != nil {
		ae.Uint32(unix.RTA_TABLE, *a.Table)
	}
	if a.Dst.IsValid() {
		ae.Bytes(unix.RTA_DST, a.Dst.AsSlice())
	}
	if a.PrefSrc.IsValid() {
		ae.Bytes(unix.RTA_PREFSRC, a.PrefSrc.AsSlice())
	}
	if a.Gateway.IsValid() {
		ae.Bytes(unix.RTA_GATEWAY, a.Gateway.AsSlice())
	}
	if a.Priority != nil {
		ae.Uint32(unix.RTA_PRIORITY, *a.Priority)
	}
	if a.OIF != nil {
		ae.Uint32(unix.RTA_OIF, *a.OIF)
	}
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode route attributes: %w", err)
	}
	return append(b, attrs...), nil
}

// UnmarshalBinary decodes an rtmsg and the attributes above; others are
// skipped.
func (m *RouteMessage) UnmarshalBinary(b []byte) error {
	if len(b) < sizeofRtmsg {
		return fmt.Errorf("rtmsg: %d bytes, want at least %d", len(b), sizeofRtmsg)
	}
	*m = RouteMessage{
		Family: b[0], DstLen: b[1], SrcLen: b[2], TOS: b[3],
		Table: b[4], Protocol: b[5], Scope: b[6], Type: b[7],
		Flags: binary.NativeEndian.Uint32(b[8:12]),
	}
	ad, err := netlink.NewAttributeDecoder(b[sizeofRtmsg:])
	if err != nil {
		return fmt.Errorf("rtmsg attributes: %w", err)
	}
	a := &m.Attrs
	u32 := func() *uint32 { v := ad.Uint32(); return &v }
	for ad.Next() {
		switch ad.Type() {
		case unix.RTA_DST:
			ad.Do(decodeAddr(&a.Dst))
		case unix.RTA_GATEWAY:
			ad.Do(decodeAddr(&a.Gateway))
		case unix.RTA_PREFSRC:
			ad.Do(decodeAddr(&a.PrefSrc))
		case unix.RTA_OIF:
			a.OIF = u32()
		case unix.RTA_PRIORITY:
			a.Priority = u32()
		case unix.RTA_TABLE:
			a.Table = u32()
		}
	}
	return ad.Err()
}

// DstPrefix returns the destination prefix; 0.0.0.0/0 or ::/0 for a default route.
func (m *RouteMessage) DstPrefix() netip.Prefix {
	if m.Attrs.Dst.IsValid() {
		return netip.PrefixFrom(m.Attrs.Dst, int(m.DstLen))
	}
	if m.Family == unix.AF_INET {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
}

// Route is a unicast route in the main table (or Table), the kind the data
// plane installs in endpoint namespaces.
type Route struct {
	// Dst is the destination; an invalid prefix means the default route
	// of Gateway's family.
	Dst netip.Prefix
	// Gateway is the next hop; invalid for a route straight out of OIF.
	Gateway netip.Addr
	// OIF is the output link index; 0 lets the kernel pick it from Gateway.
	OIF uint32
	// Table is the routing table; 0 = main.
	Table uint32
	// Metric is RTA_PRIORITY; 0 = none.
	Metric uint32
	// Scope overrides the scope (unix.RT_SCOPE_*); nil = universe with a
	// gateway, link without.
	Scope *uint8
}

// message builds the rtmsg iproute2 sends for `ip route add DST via GW
// [dev LINK]`: protocol boot, scope universe (link when there is no
// gateway), type unicast.
func (r Route) message() (*RouteMessage, error) {
	m := &RouteMessage{
		Table:    unix.RT_TABLE_MAIN,
		Protocol: unix.RTPROT_BOOT,
		Scope:    unix.RT_SCOPE_UNIVERSE,
		Type:     unix.RTN_UNICAST,
	}
	switch {
	case r.Dst.IsValid():
		m.Family = family(r.Dst.Addr())
		m.DstLen = uint8(r.Dst.Bits())
		if r.Dst.Bits() > 0 {
			m.Attrs.Dst = r.Dst.Masked().Addr()
		}
	case r.Gateway.IsValid():
		m.Family = family(r.Gateway.Unmap())
	default:
		return nil, errors.New("a route needs a destination or a gateway")
	}
	if r.Gateway.IsValid() {
		gw := r.Gateway.Unmap()
		if family(gw) != m.Family {
			return nil, fmt.Errorf("gateway %s is not of the destination's address family", gw)
		}
		m.Attrs.Gateway = gw
	} else {
		if r.OIF == 0 {
			return nil, errors.New("a route without a gateway needs an output link")
		}
		m.Scope = unix.RT_SCOPE_LINK
	}
	if r.Scope != nil {
		m.Scope = *r.Scope
	}
	if r.OIF != 0 {
		oif := r.OIF
		m.Attrs.OIF = &oif
	}
	if r.Metric != 0 {
		p := r.Metric
		m.Attrs.Priority = &p
	}
	if r.Table != 0 {
		if r.Table < 256 {
			m.Table = uint8(r.Table)
		} else {
			t := r.Table
			m.Table = unix.RT_TABLE_UNSPEC
			m.Attrs.Table = &t
		}
	}
	return m, nil
}

// AddRoute installs r (EEXIST if an identical route is there).
func (c *Conn) AddRoute(ctx context.Context, r Route) error {
	m, err := r.message()
	if err != nil {
		return &OpError{Op: "RTM_NEWROUTE", Err: err}
	}
	_, err = c.execute(ctx, unix.RTM_NEWROUTE, netlink.Create|netlink.Excl, m, nil)
	return err
}

// AddDefaultRoute installs a default route via gw (IPv4 or IPv6), as
// `ip route add default via GW [dev LINK]`; oif may be 0.
func (c *Conn) AddDefaultRoute(ctx context.Context, gw netip.Addr, oif uint32) error {
	return c.AddRoute(ctx, Route{Gateway: gw, OIF: oif})
}

// DelRoute removes r.
func (c *Conn) DelRoute(ctx context.Context, r Route) error {
	m, err := r.message()
	if err != nil {
		return &OpError{Op: "RTM_DELROUTE", Err: err}
	}
	// iproute2 sends scope NOWHERE on delete so any scope matches.
	m.Scope = unix.RT_SCOPE_NOWHERE
	m.Protocol = 0
	_, err = c.execute(ctx, unix.RTM_DELROUTE, 0, m, nil)
	return err
}

// Routes lists the routes of family (unix.AF_INET or unix.AF_INET6) in every
// table, cache entries excluded.
func (c *Conn) Routes(ctx context.Context, fam uint8) ([]RouteMessage, error) {
	msgs, err := c.Dump(ctx, unix.RTM_GETROUTE, &RouteMessage{Family: fam})
	if err != nil {
		return nil, err
	}
	out := make([]RouteMessage, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE {
			continue
		}
		var rm RouteMessage
		if err := rm.UnmarshalBinary(m.Data); err != nil {
			return nil, fmt.Errorf("decode RTM_NEWROUTE: %w", err)
		}
		out = append(out, rm)
	}
	return out, nil
}

// NeighMessage is an RTM_{NEW,DEL,GET}NEIGH body: struct ndmsg with NDA_DST
// and NDA_LLADDR, enough for static ARP/NDP entries.
type NeighMessage struct {
	Family uint8
	Index  uint32
	State  uint16 // unix.NUD_*
	Flags  uint8  // unix.NTF_*
	Type   uint8
	Dst    netip.Addr       // NDA_DST
	LLAddr net.HardwareAddr // NDA_LLADDR
}

const sizeofNdmsg = 12

// MarshalBinary encodes the message in iproute2's layout.
func (m *NeighMessage) MarshalBinary() ([]byte, error) {
	b := make([]byte, sizeofNdmsg)
	b[0] = m.Family
	binary.NativeEndian.PutUint32(b[4:], m.Index)
	binary.NativeEndian.PutUint16(b[8:], m.State)
	b[10], b[11] = m.Flags, m.Type
	ae := netlink.NewAttributeEncoder()
	if m.Dst.IsValid() {
		ae.Bytes(unix.NDA_DST, m.Dst.AsSlice())
	}
	if m.LLAddr != nil {
		ae.Bytes(unix.NDA_LLADDR, m.LLAddr)
	}
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode neighbour attributes: %w", err)
	}
	return append(b, attrs...), nil
}

// UnmarshalBinary decodes an ndmsg with NDA_DST and NDA_LLADDR.
func (m *NeighMessage) UnmarshalBinary(b []byte) error {
	if len(b) < sizeofNdmsg {
		return fmt.Errorf("ndmsg: %d bytes, want at least %d", len(b), sizeofNdmsg)
	}
	*m = NeighMessage{
		Family: b[0],
		Index:  binary.NativeEndian.Uint32(b[4:]),
		State:  binary.NativeEndian.Uint16(b[8:]),
		Flags:  b[10], Type: b[11],
	}
	ad, err := netlink.NewAttributeDecoder(b[sizeofNdmsg:])
	if err != nil {
		return fmt.Errorf("ndmsg attributes: %w", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.NDA_DST:
			ad.Do(decodeAddr(&m.Dst))
		case unix.NDA_LLADDR:
			m.LLAddr = net.HardwareAddr(append([]byte(nil), ad.Bytes()...))
		}
	}
	return ad.Err()
}

// AddNeigh adds a permanent neighbour entry ip -> mac on link index, as
// `ip neigh add IP lladdr MAC dev LINK`.
func (c *Conn) AddNeigh(ctx context.Context, index uint32, ip netip.Addr, mac net.HardwareAddr) error {
	ip = ip.Unmap()
	if !ip.IsValid() || len(mac) == 0 || index == 0 {
		return &OpError{Op: "RTM_NEWNEIGH", Err: errors.New("a neighbour needs a link index, an IP and a MAC address")}
	}
	m := &NeighMessage{Family: family(ip), Index: index, State: unix.NUD_PERMANENT, Dst: ip, LLAddr: mac}
	_, err := c.execute(ctx, unix.RTM_NEWNEIGH, netlink.Create|netlink.Excl, m, nil)
	return err
}

// DelNeigh removes the neighbour entry for ip on link index.
func (c *Conn) DelNeigh(ctx context.Context, index uint32, ip netip.Addr) error {
	ip = ip.Unmap()
	m := &NeighMessage{Family: family(ip), Index: index, Dst: ip}
	_, err := c.execute(ctx, unix.RTM_DELNEIGH, 0, m, nil)
	return err
}
