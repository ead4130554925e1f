package rtnl

import (
	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
)

// Dummy is the IFLA_INFO_DATA of kind "dummy", which has no attributes.
// iproute2 sends the kind alone (no IFLA_INFO_DATA), and so should callers:
// leave LinkInfo.Data nil. The driver exists so that a dump decodes dummy
// links as a known kind rather than RawData.
type Dummy struct{}

var _ rtnetlink.LinkDriver = (*Dummy)(nil)

func init() { Register(&Dummy{}) }

// New implements rtnetlink.LinkDriver.
func (*Dummy) New() rtnetlink.LinkDriver { return &Dummy{} }

// Kind implements rtnetlink.LinkDriver.
func (*Dummy) Kind() string { return "dummy" }

// Encode implements rtnetlink.LinkDriver: there is nothing to encode.
func (*Dummy) Encode(*netlink.AttributeEncoder) error { return nil }

// Decode implements rtnetlink.LinkDriver: any attribute is ignored.
func (*Dummy) Decode(ad *netlink.AttributeDecoder) error {
	for ad.Next() {
	}
	return ad.Err()
}
