package rtnl

import (
	"fmt"
	"net"
	"slices"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
)

// IFLA_MACVLAN_* attribute types (include/uapi/linux/if_link.h).
const (
	iflaMacvlanMode           = 1
	iflaMacvlanFlags          = 2
	iflaMacvlanMacaddrMode    = 3
	iflaMacvlanMacaddr        = 4
	iflaMacvlanMacaddrData    = 5
	iflaMacvlanMacaddrCount   = 6
	iflaMacvlanBcQueueLen     = 7
	iflaMacvlanBcQueueLenUsed = 8
	iflaMacvlanBcCutoff       = 9
)

// MacvlanMode is IFLA_MACVLAN_MODE, the mode of a macvlan or macvtap link,
// with the kernel's values. The zero value is invalid: the kernel treats an
// absent mode as vepa, which is rarely what anybody meant, so vmlink always
// sends one; in a spec it means "not given".
//
// String and ParseMacvlanMode are the one place converting a mode to and
// from iproute2's words.
type MacvlanMode uint32

// Macvlan modes as the kernel numbers them.
const (
	MacvlanModePrivate  MacvlanMode = 1
	MacvlanModeVEPA     MacvlanMode = 2
	MacvlanModeBridge   MacvlanMode = 4
	MacvlanModePassthru MacvlanMode = 8
	MacvlanModeSource   MacvlanMode = 16
)

// macvlanModes are the valid modes, in iproute2's order.
var macvlanModes = []MacvlanMode{MacvlanModePrivate, MacvlanModeVEPA, MacvlanModeBridge, MacvlanModePassthru, MacvlanModeSource}

// String returns iproute2's name for the mode, "unset" for the zero value
// and MacvlanMode(N) for a value the kernel does not define.
func (m MacvlanMode) String() string {
	switch m {
	case 0:
		return "unset"
	case MacvlanModePrivate:
		return "private"
	case MacvlanModeVEPA:
		return "vepa"
	case MacvlanModeBridge:
		return "bridge"
	case MacvlanModePassthru:
		return "passthru"
	case MacvlanModeSource:
		return "source"
	}
	return fmt.Sprintf("MacvlanMode(%d)", uint32(m))
}

// Valid reports whether m is one of the kernel's modes.
func (m MacvlanMode) Valid() bool { return slices.Contains(macvlanModes, m) }

// ParseMacvlanMode parses iproute2's mode names. The error says only the
// fix: the caller names the field and the value.
func ParseMacvlanMode(s string) (MacvlanMode, error) {
	return parseWord(s, "macvlan mode", macvlanModes...)
}

// MacvlanFlags is IFLA_MACVLAN_FLAGS (u16), a bit set.
type MacvlanFlags uint16

// Macvlan flags.
const (
	MacvlanFlagNoPromisc MacvlanFlags = 1 // passthru: do not put the parent in promiscuous mode
	MacvlanFlagNoDst     MacvlanFlags = 2 // source: do not also deliver by destination MAC
)

// MacaddrMode is IFLA_MACVLAN_MACADDR_MODE, the operation on a source-mode
// macvlan's list of allowed source MACs (iproute2's `macaddr add|del|flush|
// set`). Like our other enums its zero value is invalid ("no operation" in
// a change), so the constants are the kernel's MACVLAN_MACADDR_* plus one
// (the kernel's ADD is 0): the codec converts.
type MacaddrMode uint32

// Source-MAC list operations.
const (
	MacaddrAdd   MacaddrMode = 1 // MACVLAN_MACADDR_ADD (0 on the wire)
	MacaddrDel   MacaddrMode = 2 // MACVLAN_MACADDR_DEL (1)
	MacaddrFlush MacaddrMode = 3 // MACVLAN_MACADDR_FLUSH (2)
	MacaddrSet   MacaddrMode = 4 // MACVLAN_MACADDR_SET (3)
)

// String returns iproute2's keyword ("none" for the zero value).
func (m MacaddrMode) String() string {
	switch m {
	case 0:
		return "none"
	case MacaddrAdd:
		return "add"
	case MacaddrDel:
		return "del"
	case MacaddrFlush:
		return "flush"
	case MacaddrSet:
		return "set"
	}
	return fmt.Sprintf("MacaddrMode(%d)", uint32(m))
}

// Macvlan is the IFLA_INFO_DATA of kind "macvlan". Optional attributes are
// pointers; output-only ones are filled by Decode.
type Macvlan struct {
	Mode        *MacvlanMode
	Flags       *MacvlanFlags
	MacaddrMode *MacaddrMode
	// Macaddr is the single address of an add/del operation.
	Macaddr net.HardwareAddr
	// MacaddrData is the source-MAC list: sent with MacaddrSet, and
	// reported by the kernel for source-mode links.
	MacaddrData    []net.HardwareAddr
	MacaddrCount   *uint32 // output only
	BcQueueLen     *uint32 // broadcast queue length (5.11+)
	BcQueueLenUsed *uint32 // output only
	BcCutoff       *int32  // bclim: multicast cutoff (6.4+)
}

// Macvtap is the IFLA_INFO_DATA of kind "macvtap": the same attributes as
// macvlan, with a character device on top.
type Macvtap struct{ Macvlan }

var (
	_ rtnetlink.LinkDriver = (*Macvlan)(nil)
	_ rtnetlink.LinkDriver = (*Macvtap)(nil)
)

func init() {
	Register(&Macvlan{})
	Register(&Macvtap{})
}

// New implements rtnetlink.LinkDriver.
func (*Macvlan) New() rtnetlink.LinkDriver { return &Macvlan{} }

// Kind implements rtnetlink.LinkDriver.
func (*Macvlan) Kind() string { return "macvlan" }

// New implements rtnetlink.LinkDriver.
func (*Macvtap) New() rtnetlink.LinkDriver { return &Macvtap{} }

// Kind implements rtnetlink.LinkDriver.
func (*Macvtap) Kind() string { return "macvtap" }

// Encode implements rtnetlink.LinkDriver, in iproute2's attribute order.
func (m *Macvlan) Encode(ae *netlink.AttributeEncoder) error {
	if m.Mode != nil {
		ae.Uint32(iflaMacvlanMode, uint32(*m.Mode))
	}
	if m.Flags != nil {
		ae.Uint16(iflaMacvlanFlags, uint16(*m.Flags))
	}
	if m.MacaddrMode != nil {
		ae.Uint32(iflaMacvlanMacaddrMode, uint32(*m.MacaddrMode)-1)
	}
	if len(m.Macaddr) > 0 {
		ae.Bytes(iflaMacvlanMacaddr, m.Macaddr)
	}
	if len(m.MacaddrData) > 0 {
		ae.Nested(iflaMacvlanMacaddrData, func(nae *netlink.AttributeEncoder) error {
			for _, a := range m.MacaddrData {
				nae.Bytes(iflaMacvlanMacaddr, a)
			}
			return nil
		})
	}
	if m.BcQueueLen != nil {
		ae.Uint32(iflaMacvlanBcQueueLen, *m.BcQueueLen)
	}
	if m.BcCutoff != nil {
		ae.Int32(iflaMacvlanBcCutoff, *m.BcCutoff)
	}
	return nil
}

// Decode implements rtnetlink.LinkDriver.
func (m *Macvlan) Decode(ad *netlink.AttributeDecoder) error {
	for ad.Next() {
		switch ad.Type() {
		case iflaMacvlanMode:
			v := MacvlanMode(ad.Uint32())
			m.Mode = &v
		case iflaMacvlanFlags:
			v := MacvlanFlags(ad.Uint16())
			m.Flags = &v
		case iflaMacvlanMacaddrMode:
			v := MacaddrMode(ad.Uint32() + 1)
			m.MacaddrMode = &v
		case iflaMacvlanMacaddr:
			a, err := decodeMAC(ad.Bytes())
			if err != nil {
				return fmt.Errorf("IFLA_MACVLAN_MACADDR: %w", err)
			}
			m.Macaddr = a
		case iflaMacvlanMacaddrData:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() != iflaMacvlanMacaddr {
						continue
					}
					a, err := decodeMAC(nad.Bytes())
					if err != nil {
						return fmt.Errorf("IFLA_MACVLAN_MACADDR_DATA: %w", err)
					}
					m.MacaddrData = append(m.MacaddrData, a)
				}
				return nad.Err()
			})
		case iflaMacvlanMacaddrCount:
			v := ad.Uint32()
			m.MacaddrCount = &v
		case iflaMacvlanBcQueueLen:
			v := ad.Uint32()
			m.BcQueueLen = &v
		case iflaMacvlanBcQueueLenUsed:
			v := ad.Uint32()
			m.BcQueueLenUsed = &v
		case iflaMacvlanBcCutoff:
			v := ad.Int32()
			m.BcCutoff = &v
		}
	}
	return ad.Err()
}

func decodeMAC(b []byte) (net.HardwareAddr, error) {
	if len(b) != 6 {
		return nil, fmt.Errorf("MAC address is %d bytes, want 6", len(b))
	}
	return net.HardwareAddr(append([]byte(nil), b...)), nil
}
