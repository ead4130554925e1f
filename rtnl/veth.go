package rtnl

import (
	"fmt"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
)

const iflaVethInfoPeer = 1 // VETH_INFO_PEER

// Veth is the IFLA_INFO_DATA of kind "veth". The peer is a whole
// ifinfomsg with its own attributes (name, netns) nested inside.
type Veth struct {
	Peer *LinkMessage
}

var _ rtnetlink.LinkDriver = (*Veth)(nil)

func init() { Register(&Veth{}) }

// New implements rtnetlink.LinkDriver.
func (*Veth) New() rtnetlink.LinkDriver { return &Veth{} }

// Kind implements rtnetlink.LinkDriver.
func (*Veth) Kind() string { return "veth" }

// Encode implements rtnetlink.LinkDriver.
func (v *Veth) Encode(ae *netlink.AttributeEncoder) error {
	if v.Peer == nil {
		return nil
	}
	b, err := v.Peer.MarshalBinary()
	if err != nil {
		return fmt.Errorf("veth peer: %w", err)
	}
	ae.Bytes(iflaVethInfoPeer|netlinkNested, b)
	return nil
}

// Decode implements rtnetlink.LinkDriver. Dumps carry no peer; it is only
// present in requests.
func (v *Veth) Decode(ad *netlink.AttributeDecoder) error {
	for ad.Next() {
		if ad.Type() == iflaVethInfoPeer {
			v.Peer = &LinkMessage{}
			if err := v.Peer.UnmarshalBinary(ad.Bytes()); err != nil {
				return fmt.Errorf("veth peer: %w", err)
			}
		}
	}
	return ad.Err()
}

// netlinkNested is NLA_F_NESTED, which iproute2 sets on VETH_INFO_PEER.
const netlinkNested = 0x8000
