package rtnl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// We write our own ifaddrmsg codec instead of using jsimonetti's
// AddressMessage: that one always emits an IFA_UNSPEC attribute and fails on
// a message without IFA_ADDRESS; ours sends exactly what iproute2 sends.

// AddrMessage is an RTM_{NEW,DEL,GET}ADDR body: struct ifaddrmsg and its
// attributes.
type AddrMessage struct {
	Family    uint8 // unix.AF_INET or unix.AF_INET6
	PrefixLen uint8
	Flags     uint8 // low 8 bits of the IFA_F_* flags; IFA_FLAGS has them all
	Scope     uint8 // unix.RT_SCOPE_*
	Index     uint32
	Attrs     AddrAttrs
}

// AddrAttrs are an address's attributes. An invalid (zero) netip.Addr is an
// absent attribute.
type AddrAttrs struct {
	// Address is IFA_ADDRESS: the peer on point-to-point links, otherwise
	// the same as Local (iproute2 always sends both).
	Address netip.Addr
	// Local is IFA_LOCAL, the address itself.
	Local     netip.Addr
	Broadcast netip.Addr // IFA_BROADCAST (IPv4)
	Label     string     // IFA_LABEL (IPv4)
	Flags     *uint32    // IFA_FLAGS: all IFA_F_* flags
	CacheInfo *AddrCacheInfo
}

// AddrCacheInfo is IFA_CACHEINFO (output only): lifetimes in seconds,
// timestamps in hundredths of a second since boot.
type AddrCacheInfo struct {
	Preferred, Valid, Created, Updated uint32
}

const sizeofIfAddrmsg = 8

// MarshalBinary encodes the message in iproute2's attribute order.
func (m *AddrMessage) MarshalBinary() ([]byte, error) {
	b := make([]byte, sizeofIfAddrmsg)
	b[0], b[1], b[2], b[3] = m.Family, m.PrefixLen, m.Flags, m.Scope
	binary.NativeEndian.PutUint32(b[4:], m.Index)
	ae := netlink.NewAttributeEncoder()
	a := &m.Attrs
	if a.Local.IsValid() {
		ae.Bytes(unix.IFA_LOCAL, a.Local.AsSlice())
	}
	if a.Address.IsValid() {
		ae.Bytes(unix.IFA_ADDRESS, a.Address.AsSlice())
	}
	if a.Broadcast.IsValid() {
		ae.Bytes(unix.IFA_BROADCAST, a.Broadcast.AsSlice())
	}
	if a.Label != "" {
		ae.String(unix.IFA_LABEL, a.Label)
	}
	if a.Flags != nil {
		ae.Uint32(unix.IFA_FLAGS, *a.Flags)
	}
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode address attributes: %w", err)
	}
	return append(b, attrs...), nil
}

// UnmarshalBinary decodes an ifaddrmsg and its attributes; unknown
// attributes are skipped.
func (m *AddrMessage) UnmarshalBinary(b []byte) error {
	if len(b) < sizeofIfAddrmsg {
		return fmt.Errorf("ifaddrmsg: %d bytes, want at least %d", len(b), sizeofIfAddrmsg)
	}
	*m = AddrMessage{
		Family: b[0], PrefixLen: b[1], Flags: b[2], Scope: b[3],
		Index: binary.NativeEndian.Uint32(b[4:8]),
	}
	ad, err := netlink.NewAttributeDecoder(b[sizeofIfAddrmsg:])
	if err != nil {
		return fmt.Errorf("ifaddrmsg attributes: %w", err)
	}
	a := &m.Attrs
	for ad.Next() {
		switch ad.Type() {
		case unix.IFA_ADDRESS:
			ad.Do(decodeAddr(&a.Address))
		case unix.IFA_LOCAL:
			ad.Do(decodeAddr(&a.Local))
		case unix.IFA_BROADCAST:
			ad.Do(decodeAddr(&a.Broadcast))
		case unix.IFA_LABEL:
			a.Label = ad.String()
		case unix.IFA_FLAGS:
			v := ad.Uint32()
			a.Flags = &v
		case unix.IFA_CACHEINFO:
			ad.Do(func(b []byte) error {
				if len(b) != 16 {
					return fmt.Errorf("IFA_CACHEINFO: %d bytes, want 16", len(b))
				}
				a.CacheInfo = &AddrCacheInfo{
					Preferred: binary.NativeEndian.Uint32(b[0:]),
					Valid:     binary.NativeEndian.Uint32(b[4:]),
					Created:   binary.NativeEndian.Uint32(b[8:]),
					Updated:   binary.NativeEndian.Uint32(b[12:]),
				}
				return nil
			})
		}
	}
	return ad.Err()
}

// Prefix returns the address with its prefix length (IFA_LOCAL, else
// IFA_ADDRESS), or an invalid prefix when the message has neither.
func (m *AddrMessage) Prefix() netip.Prefix {
	a := m.Attrs.Local
	if !a.IsValid() {
		a = m.Attrs.Address
	}
	if !a.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, int(m.PrefixLen))
}

// decodeAddr decodes a 4- or 16-byte address attribute.
func decodeAddr(dst *netip.Addr) func([]byte) error {
	return func(b []byte) error {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return fmt.Errorf("address attribute of %d bytes, want 4 or 16", len(b))
		}
		*dst = a
		return nil
	}
}

// family returns the AF_* of an address.
func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// addrMessage builds the request iproute2 sends for `ip addr add|del P dev I`
// (IFA_LOCAL and IFA_ADDRESS both the address); IPv6 addresses get
// IFA_F_NODAD so they are usable at once, without duplicate detection.
func addrMessage(index uint32, p netip.Prefix) (*AddrMessage, error) {
	if !p.IsValid() {
		return nil, errors.New("invalid address prefix")
	}
	if index == 0 {
		return nil, errors.New("address needs a link index")
	}
	a := p.Addr().Unmap()
	m := &AddrMessage{
		Family:    family(a),
		PrefixLen: uint8(p.Bits()),
		Index:     index,
		Attrs:     AddrAttrs{Local: a, Address: a},
	}
	if a.Is6() {
		m.Flags = unix.IFA_F_NODAD
	}
	return m, nil
}

// AddAddr adds address p (e.g. 10.0.0.2/24, 2001:db8::2/64) to link index,
// as `ip addr add P dev LINK` (plus `nodad` for IPv6). Adding an address the
// link already has fails with EEXIST.
func (c *Conn) AddAddr(ctx context.Context, index uint32, p netip.Prefix) error {
	m, err := addrMessage(index, p)
	if err != nil {
		return &OpError{Op: "RTM_NEWADDR", Err: fmt.Errorf("add %s: %w", p, err)}
	}
	_, err = c.execute(ctx, unix.RTM_NEWADDR, netlink.Create|netlink.Excl, m, nil)
	return err
}

// AddAddrBroadcast is AddAddr with the IPv4 broadcast address of p's
// subnet (IFA_BROADCAST), as `ip addr add P brd + dev LINK`; for IPv6 and
// for /31 and /32 it is AddAddr.
func (c *Conn) AddAddrBroadcast(ctx context.Context, index uint32, p netip.Prefix) error {
	m, err := addrMessage(index, p)
	if err != nil {
		return &OpError{Op: "RTM_NEWADDR", Err: fmt.Errorf("add %s: %w", p, err)}
	}
	m.Attrs.Broadcast = BroadcastOf(p)
	_, err = c.execute(ctx, unix.RTM_NEWADDR, netlink.Create|netlink.Excl, m, nil)
	return err
}

// BroadcastOf is the broadcast address of p's IPv4 subnet (`brd +`), or
// the zero Addr for IPv6, /31 and /32.
func BroadcastOf(p netip.Prefix) netip.Addr {
	a := p.Addr().Unmap()
	if !a.Is4() || p.Bits() >= 31 {
		return netip.Addr{}
	}
	b := a.As4()
	v := binary.BigEndian.Uint32(b[:]) | ^uint32(0)>>p.Bits()
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// DelAddr removes address p from link index.
func (c *Conn) DelAddr(ctx context.Context, index uint32, p netip.Prefix) error {
	m, err := addrMessage(index, p)
	if err != nil {
		return &OpError{Op: "RTM_DELADDR", Err: fmt.Errorf("delete %s: %w", p, err)}
	}
	m.Flags = 0
	_, err = c.execute(ctx, unix.RTM_DELADDR, 0, m, nil)
	return err
}

// Addrs lists the addresses of family (unix.AF_INET, unix.AF_INET6, or 0 for
// both) on link index (0 for every link).
func (c *Conn) Addrs(ctx context.Context, fam uint8, index uint32) ([]AddrMessage, error) {
	// Strict dump checking lets the kernel filter by ifa_index itself.
	msgs, err := c.Dump(ctx, unix.RTM_GETADDR, &AddrMessage{Family: fam, Index: index})
	if err != nil {
		return nil, err
	}
	out := make([]AddrMessage, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWADDR {
			continue
		}
		var am AddrMessage
		if err := am.UnmarshalBinary(m.Data); err != nil {
			return nil, fmt.Errorf("decode RTM_NEWADDR: %w", err)
		}
		if index != 0 && am.Index != index {
			continue
		}
		out = append(out, am)
	}
	return out, nil
}
