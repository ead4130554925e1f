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

// IPVlanMode is IFLA_IPVLAN_MODE (u16, enum ipvlan_mode). The values are
// the kernel's, and there L2 is 0, so the zero value is valid here (unlike
// our other enums): the field is a pointer in IPVlan, and "not given"
// is nil. The kernel's default without the attribute is L3.
type IPVlanMode uint16

// ipvlan modes as the kernel numbers them.
const (
	IPVlanModeL2  IPVlanMode = 0
	IPVlanModeL3  IPVlanMode = 1
	IPVlanModeL3S IPVlanMode = 2
)

// String returns iproute2's name for the mode.
func (m IPVlanMode) String() string {
	switch m {
	case IPVlanModeL2:
		return "l2"
	case IPVlanModeL3:
		return "l3"
	case IPVlanModeL3S:
		return "l3s"
	}
	return fmt.Sprintf("IPVlanMode(%d)", uint16(m))
}

// IPVlanFlags is IFLA_IPVLAN_FLAGS (u16): how the ipvlan links of one
// parent reach each other. No bit set is bridge mode.
type IPVlanFlags uint16

// ipvlan flag bits.
const (
	IPVlanFlagBridge  IPVlanFlags = 0    // siblings talk directly (default)
	IPVlanFlagPrivate IPVlanFlags = 0x01 // siblings cannot talk at all
	IPVlanFlagVEPA    IPVlanFlags = 0x02 // sibling traffic goes out to the switch
)

// String returns iproute2's name: bridge, private or vepa.
func (f IPVlanFlags) String() string {
	switch f {
	case IPVlanFlagBridge:
		return "bridge"
	case IPVlanFlagPrivate:
		return "private"
	case IPVlanFlagVEPA:
		return "vepa"
	}
	return fmt.Sprintf("IPVlanFlags(0x%x)", uint16(f))
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
		ae.Uint16(iflaIPVlanMode, uint16(*v.Mode))
	}
	if v.Flags != nil {
		ae.Uint16(iflaIPVlanFlags, uint16(*v.Flags))
	}
	return nil
}

// Decode implements rtnetlink.LinkDriver.
func (v *IPVlan) Decode(ad *netlink.AttributeDecoder) error {
	for ad.Next() {
		switch ad.Type() {
		case iflaIPVlanMode:
			m := IPVlanMode(ad.Uint16())
			v.Mode = &m
		case iflaIPVlanFlags:
			f := IPVlanFlags(ad.Uint16())
			v.Flags = &f
		}
	}
	return ad.Err()
}
