package rtnl

import (
	"fmt"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
)

// IFLA_IPVLAN_* attribute types (include/uapi/linux/if_link.h).
const (
	iflaIPVlanMode  = 1
	iflaIPVlanFlags = 2
)

// IPVlanMode is IFLA_IPVLAN_MODE (u16, enum ipvlan_mode). Like our other
// enums its zero value is invalid ("not given" in a spec), so the
// constants are the kernel's numbers plus one (the kernel's l2 is 0): the
// codec converts, and nothing else needs to know. Without the attribute
// the kernel uses l3.
//
// String and ParseIPVlanMode are the one place converting a mode to and
// from iproute2's words.
type IPVlanMode uint16

// ipvlan modes.
const (
	IPVlanModeL2  IPVlanMode = 1 // IPVLAN_MODE_L2 (0 on the wire)
	IPVlanModeL3  IPVlanMode = 2 // IPVLAN_MODE_L3 (1)
	IPVlanModeL3S IPVlanMode = 3 // IPVLAN_MODE_L3S (2)
)

// ipvlanModeFromWire and wire convert between the kernel's number and ours.
func ipvlanModeFromWire(v uint16) IPVlanMode { return IPVlanMode(v + 1) }
func (m IPVlanMode) wire() uint16            { return uint16(m) - 1 }

// String returns iproute2's name for the mode, "unset" for the zero value
// and IPVlanMode(N) for one the kernel does not define.
func (m IPVlanMode) String() string {
	switch m {
	case 0:
		return "unset"
	case IPVlanModeL2:
		return "l2"
	case IPVlanModeL3:
		return "l3"
	case IPVlanModeL3S:
		return "l3s"
	}
	return fmt.Sprintf("IPVlanMode(%d)", uint16(m))
}

// Valid reports whether m is one of the kernel's modes.
func (m IPVlanMode) Valid() bool { return m >= IPVlanModeL2 && m <= IPVlanModeL3S }

// ParseIPVlanMode parses l2, l3 or l3s. The error says only the fix.
func ParseIPVlanMode(s string) (IPVlanMode, error) {
	return parseWord(s, "ipvlan mode", IPVlanModeL2, IPVlanModeL3, IPVlanModeL3S)
}

// IPVlanFlags is IFLA_IPVLAN_FLAGS: how the ipvlan links of one parent
// reach each other. On the wire it is a u16 bit set in which no bit is
// bridge, IPVLAN_F_PRIVATE (0x1) private and IPVLAN_F_VEPA (0x2) vepa (the
// kernel refuses both); here it is one of the three, with an invalid zero
// value ("not given"), and the codec converts.
//
// String and ParseIPVlanFlags are the one place converting it to and from
// iproute2's words.
type IPVlanFlags uint16

// ipvlan port flags.
const (
	IPVlanFlagBridge  IPVlanFlags = 1 // siblings talk directly (the default; no bit)
	IPVlanFlagPrivate IPVlanFlags = 2 // siblings cannot talk at all (IPVLAN_F_PRIVATE)
	IPVlanFlagVEPA    IPVlanFlags = 3 // sibling traffic goes out to the switch (IPVLAN_F_VEPA)
)

// IPVLAN_F_* bits.
const (
	ipvlanFPrivate = 0x01
	ipvlanFVEPA    = 0x02
)

// ipvlanFlagsFromWire reads the bit set as iproute2 prints it: private
// wins over vepa, no bit is bridge.
func ipvlanFlagsFromWire(v uint16) IPVlanFlags {
	switch {
	case v&ipvlanFPrivate != 0:
		return IPVlanFlagPrivate
	case v&ipvlanFVEPA != 0:
		return IPVlanFlagVEPA
	}
	return IPVlanFlagBridge
}

func (f IPVlanFlags) wire() uint16 {
	switch f {
	case IPVlanFlagPrivate:
		return ipvlanFPrivate
	case IPVlanFlagVEPA:
		return ipvlanFVEPA
	}
	return 0
}

// String returns iproute2's name: bridge, private or vepa ("unset" for the
// zero value).
func (f IPVlanFlags) String() string {
	switch f {
	case 0:
		return "unset"
	case IPVlanFlagBridge:
		return "bridge"
	case IPVlanFlagPrivate:
		return "private"
	case IPVlanFlagVEPA:
		return "vepa"
	}
	return fmt.Sprintf("IPVlanFlags(%d)", uint16(f))
}

// Valid reports whether f is bridge, private or vepa.
func (f IPVlanFlags) Valid() bool { return f >= IPVlanFlagBridge && f <= IPVlanFlagVEPA }

// ParseIPVlanFlags parses bridge, private or vepa. The error says only the
// fix.
func ParseIPVlanFlags(s string) (IPVlanFlags, error) {
	return parseWord(s, "ipvlan flag", IPVlanFlagBridge, IPVlanFlagPrivate, IPVlanFlagVEPA)
}

// IPVlan is the IFLA_INFO_DATA of kind "ipvlan". iproute2 sends
// IFLA_IPVLAN_FLAGS on every request (0 for bridge), and the mode only when
// given.
type IPVlan struct {
	Mode  *IPVlanMode
	Flags *IPVlanFlags
}

var _ rtnetlink.LinkDriver = (*IPVlan)(nil)

func init() { Register(&IPVlan{}) }

// New implements rtnetlink.LinkDriver.
func (*IPVlan) New() rtnetlink.LinkDriver { return &IPVlan{} }

// Kind implements rtnetlink.LinkDriver.
func (*IPVlan) Kind() string { return "ipvlan" }

// Encode implements rtnetlink.LinkDriver, in iproute2's attribute order.
func (v *IPVlan) Encode(ae *netlink.AttributeEncoder) error {
	if v.Mode != nil {
		ae.Uint16(iflaIPVlanMode, v.Mode.wire())
	}
	if v.Flags != nil {
		ae.Uint16(iflaIPVlanFlags, v.Flags.wire())
	}
	return nil
}

// Decode implements rtnetlink.LinkDriver.
func (v *IPVlan) Decode(ad *netlink.AttributeDecoder) error {
	for ad.Next() {
		switch ad.Type() {
		case iflaIPVlanMode:
			m := ipvlanModeFromWire(ad.Uint16())
			v.Mode = &m
		case iflaIPVlanFlags:
			f := ipvlanFlagsFromWire(ad.Uint16())
			v.Flags = &f
		}
	}
	return ad.Err()
}
