package rtnl

import (
	"encoding/binary"
	"fmt"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Bridge is the IFLA_INFO_DATA of kind "bridge", reduced to what vmlink's
// test environments set: a software switch for the VEPA reflective relay.
// The kernel reports some fifty IFLA_BR_* attributes; the others are
// skipped by Decode.
type Bridge struct {
	// VLANFiltering is IFLA_BR_VLAN_FILTERING (u8): the bridge forwards by
	// VLAN membership (`vlan_filtering 1`). Kernels built without
	// CONFIG_BRIDGE_VLAN_FILTERING refuse it with EOPNOTSUPP.
	VLANFiltering *bool
	// VLANProtocol is IFLA_BR_VLAN_PROTOCOL, big-endian like
	// IFLA_VLAN_PROTOCOL.
	VLANProtocol *VLANProtocol
	// VLANDefaultPVID is IFLA_BR_VLAN_DEFAULT_PVID (u16).
	VLANDefaultPVID *uint16
	// STPState is IFLA_BR_STP_STATE (u32): 0 off, 1 on.
	STPState *uint32
}

// BridgePort is the IFLA_INFO_SLAVE_DATA of a bridge port (slave kind
// "bridge", what `ip link set DEV type bridge_slave …` sends).
type BridgePort struct {
	// Hairpin is IFLA_BRPORT_MODE (u8): a frame may leave through the port
	// it came in on. It makes a Linux bridge the reflective relay VEPA
	// needs.
	Hairpin *bool
	// State is IFLA_BRPORT_STATE (u8, BR_STATE_*: 3 forwarding…).
	State *uint8
	// Learning is IFLA_BRPORT_LEARNING (u8).
	Learning *bool
	// UnicastFlood is IFLA_BRPORT_UNICAST_FLOOD (u8).
	UnicastFlood *bool
	// Isolated is IFLA_BRPORT_ISOLATED (u8).
	Isolated *bool
}

var (
	_ rtnetlink.LinkDriver      = (*Bridge)(nil)
	_ rtnetlink.LinkSlaveDriver = (*BridgePort)(nil)
)

func init() {
	Register(&Bridge{})
	Register(&BridgePort{})
}

// New implements rtnetlink.LinkDriver.
func (*Bridge) New() rtnetlink.LinkDriver { return &Bridge{} }

// Kind implements rtnetlink.LinkDriver.
func (*Bridge) Kind() string { return "bridge" }

// Encode implements rtnetlink.LinkDriver.
func (b *Bridge) Encode(ae *netlink.AttributeEncoder) error {
	if b.VLANFiltering != nil {
		ae.Uint8(unix.IFLA_BR_VLAN_FILTERING, boolU8(*b.VLANFiltering))
	}
	if b.VLANProtocol != nil {
		p := make([]byte, 2)
		binary.BigEndian.PutUint16(p, uint16(*b.VLANProtocol))
		ae.Bytes(unix.IFLA_BR_VLAN_PROTOCOL, p)
	}
	if b.VLANDefaultPVID != nil {
		ae.Uint16(unix.IFLA_BR_VLAN_DEFAULT_PVID, *b.VLANDefaultPVID)
	}
	if b.STPState != nil {
		ae.Uint32(unix.IFLA_BR_STP_STATE, *b.STPState)
	}
	return nil
}

// Decode implements rtnetlink.LinkDriver.
func (b *Bridge) Decode(ad *netlink.AttributeDecoder) error {
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_BR_VLAN_FILTERING:
			v := ad.Uint8() != 0
			b.VLANFiltering = &v
		case unix.IFLA_BR_VLAN_PROTOCOL:
			raw := ad.Bytes()
			if len(raw) != 2 {
				return fmt.Errorf("IFLA_BR_VLAN_PROTOCOL is %d bytes, want 2", len(raw))
			}
			p := VLANProtocol(binary.BigEndian.Uint16(raw))
			b.VLANProtocol = &p
		case unix.IFLA_BR_VLAN_DEFAULT_PVID:
			v := ad.Uint16()
			b.VLANDefaultPVID = &v
		case unix.IFLA_BR_STP_STATE:
			v := ad.Uint32()
			b.STPState = &v
		}
	}
	return ad.Err()
}

// New implements rtnetlink.LinkDriver.
func (*BridgePort) New() rtnetlink.LinkDriver { return &BridgePort{} }

// Kind implements rtnetlink.LinkDriver: the port kind the kernel reports
// in IFLA_INFO_SLAVE_KIND (iproute2's `bridge_slave` minus "_slave").
func (*BridgePort) Kind() string { return "bridge" }

// Slave implements rtnetlink.LinkSlaveDriver.
func (*BridgePort) Slave() {}

// Encode implements rtnetlink.LinkDriver.
func (p *BridgePort) Encode(ae *netlink.AttributeEncoder) error {
	if p.State != nil {
		ae.Uint8(unix.IFLA_BRPORT_STATE, *p.State)
	}
	onOff := func(typ uint16, v *bool) {
		if v != nil {
			ae.Uint8(typ, boolU8(*v))
		}
	}
	onOff(unix.IFLA_BRPORT_MODE, p.Hairpin)
	onOff(unix.IFLA_BRPORT_LEARNING, p.Learning)
	onOff(unix.IFLA_BRPORT_UNICAST_FLOOD, p.UnicastFlood)
	onOff(unix.IFLA_BRPORT_ISOLATED, p.Isolated)
	return nil
}

// Decode implements rtnetlink.LinkDriver.
func (p *BridgePort) Decode(ad *netlink.AttributeDecoder) error {
	onOff := func() *bool { v := ad.Uint8() != 0; return &v }
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_BRPORT_STATE:
			v := ad.Uint8()
			p.State = &v
		case unix.IFLA_BRPORT_MODE:
			p.Hairpin = onOff()
		case unix.IFLA_BRPORT_LEARNING:
			p.Learning = onOff()
		case unix.IFLA_BRPORT_UNICAST_FLOOD:
			p.UnicastFlood = onOff()
		case unix.IFLA_BRPORT_ISOLATED:
			p.Isolated = onOff()
		}
	}
	return ad.Err()
}

func boolU8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
