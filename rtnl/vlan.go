package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
)

// IFLA_VLAN_* attribute types (include/uapi/linux/if_link.h).
const (
	iflaVLANID         = 1
	iflaVLANFlags      = 2
	iflaVLANEgressQoS  = 3
	iflaVLANIngressQoS = 4
	iflaVLANProtocol   = 5

	iflaVLANQoSMapping = 1 // IFLA_VLAN_QOS_MAPPING, inside both QoS nests
)

// VLANProtocol is IFLA_VLAN_PROTOCOL, the tag's TPID. On the wire it is
// big-endian (__be16), unlike every other integer of the message: a
// little-endian encoder sends 0x0081 and the kernel refuses it with
// EPROTONOSUPPORT. The zero value is invalid.
type VLANProtocol uint16

// VLAN protocols the kernel accepts.
const (
	VLANProtocol8021Q  VLANProtocol = 0x8100 // customer tag (802.1Q)
	VLANProtocol8021AD VLANProtocol = 0x88a8 // service tag (802.1ad, QinQ)
)

// String returns iproute2's name for the protocol, "unset" for the zero
// value and VLANProtocol(0xNNNN) for one the kernel refuses.
func (p VLANProtocol) String() string {
	switch p {
	case 0:
		return "unset"
	case VLANProtocol8021Q:
		return "802.1Q"
	case VLANProtocol8021AD:
		return "802.1ad"
	}
	return fmt.Sprintf("VLANProtocol(0x%04x)", uint16(p))
}

// Valid reports whether the kernel accepts p for a VLAN link.
func (p VLANProtocol) Valid() bool { return p == VLANProtocol8021Q || p == VLANProtocol8021AD }

// ParseVLANProtocol accepts what `ip link … protocol` accepts for a VLAN:
// the names 802.1Q and 802.1ad (any case) or the ethertype as a number
// (0x8100, 0x88a8, or decimal). With String it is the one place converting
// a protocol to and from text. The error says only the fix.
func ParseVLANProtocol(s string) (VLANProtocol, error) {
	switch strings.ToLower(s) {
	case "802.1q":
		return VLANProtocol8021Q, nil
	case "802.1ad":
		return VLANProtocol8021AD, nil
	}
	if n, err := strconv.ParseUint(s, 0, 16); err == nil {
		if p := VLANProtocol(n); p.Valid() {
			return p, nil
		}
	}
	return 0, errors.New("unknown VLAN protocol: use 802.1Q or 802.1ad")
}

// VLAN flag bits of IFLA_VLAN_FLAGS (enum vlan_flags).
const (
	VLANFlagReorderHdr    uint32 = 0x1 // kernel default on
	VLANFlagGVRP          uint32 = 0x2
	VLANFlagLooseBinding  uint32 = 0x4
	VLANFlagMVRP          uint32 = 0x8
	VLANFlagBridgeBinding uint32 = 0x10
)

// VLANFlags is struct ifla_vlan_flags: the bits in Mask are set to their
// value in Flags, the others left alone. The kernel reports Mask as all
// ones.
type VLANFlags struct {
	Flags uint32
	Mask  uint32
}

// VLANQoSMapping is struct ifla_vlan_qos_mapping. For the ingress map From
// is the tag's priority (0–7) and To the skb priority; for the egress map
// the other way round.
type VLANQoSMapping struct {
	From uint32
	To   uint32
}

// VLAN is the IFLA_INFO_DATA of kind "vlan". Optional attributes are
// pointers. A nil QoS slice means "no nest"; an empty non-nil one is an
// empty nest (iproute2 sends one for `ingress-qos-map` without pairs).
type VLAN struct {
	ID         *uint16
	Protocol   *VLANProtocol
	Flags      *VLANFlags
	IngressQoS []VLANQoSMapping
	EgressQoS  []VLANQoSMapping
}

var _ rtnetlink.LinkDriver = (*VLAN)(nil)

func init() { Register(&VLAN{}) }

// New implements rtnetlink.LinkDriver.
func (*VLAN) New() rtnetlink.LinkDriver { return &VLAN{} }

// Kind implements rtnetlink.LinkDriver.
func (*VLAN) Kind() string { return "vlan" }

// Encode implements rtnetlink.LinkDriver.
func (v *VLAN) Encode(ae *netlink.AttributeEncoder) error {
	if v.ID != nil {
		ae.Uint16(iflaVLANID, *v.ID)
	}
	if v.Protocol != nil {
		b := make([]byte, 2)
		binary.BigEndian.PutUint16(b, uint16(*v.Protocol))
		ae.Bytes(iflaVLANProtocol, b)
	}
	if v.Flags != nil {
		b := make([]byte, 8)
		binary.NativeEndian.PutUint32(b[0:4], v.Flags.Flags)
		binary.NativeEndian.PutUint32(b[4:8], v.Flags.Mask)
		ae.Bytes(iflaVLANFlags, b)
	}
	qos := func(typ uint16, maps []VLANQoSMapping) {
		if maps == nil {
			return
		}
		ae.Nested(typ, func(nae *netlink.AttributeEncoder) error {
			for _, m := range maps {
				b := make([]byte, 8)
				binary.NativeEndian.PutUint32(b[0:4], m.From)
				binary.NativeEndian.PutUint32(b[4:8], m.To)
				nae.Bytes(iflaVLANQoSMapping, b)
			}
			return nil
		})
	}
	qos(iflaVLANIngressQoS, v.IngressQoS)
	qos(iflaVLANEgressQoS, v.EgressQoS)
	return nil
}

// Decode implements rtnetlink.LinkDriver.
func (v *VLAN) Decode(ad *netlink.AttributeDecoder) error {
	for ad.Next() {
		switch ad.Type() {
		case iflaVLANID:
			id := ad.Uint16()
			v.ID = &id
		case iflaVLANProtocol:
			b := ad.Bytes()
			if len(b) != 2 {
				return fmt.Errorf("IFLA_VLAN_PROTOCOL is %d bytes, want 2", len(b))
			}
			p := VLANProtocol(binary.BigEndian.Uint16(b))
			v.Protocol = &p
		case iflaVLANFlags:
			b := ad.Bytes()
			if len(b) != 8 {
				return fmt.Errorf("IFLA_VLAN_FLAGS is %d bytes, want 8", len(b))
			}
			v.Flags = &VLANFlags{
				Flags: binary.NativeEndian.Uint32(b[0:4]),
				Mask:  binary.NativeEndian.Uint32(b[4:8]),
			}
		case iflaVLANIngressQoS:
			v.IngressQoS = []VLANQoSMapping{}
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				return decodeQoS(nad, "IFLA_VLAN_INGRESS_QOS", &v.IngressQoS)
			})
		case iflaVLANEgressQoS:
			v.EgressQoS = []VLANQoSMapping{}
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				return decodeQoS(nad, "IFLA_VLAN_EGRESS_QOS", &v.EgressQoS)
			})
		}
	}
	return ad.Err()
}

// decodeQoS reads the IFLA_VLAN_QOS_MAPPING entries of one QoS nest.
func decodeQoS(ad *netlink.AttributeDecoder, what string, out *[]VLANQoSMapping) error {
	for ad.Next() {
		if ad.Type() != iflaVLANQoSMapping {
			continue
		}
		b := ad.Bytes()
		if len(b) != 8 {
			return fmt.Errorf("%s: mapping is %d bytes, want 8", what, len(b))
		}
		*out = append(*out, VLANQoSMapping{
			From: binary.NativeEndian.Uint32(b[0:4]),
			To:   binary.NativeEndian.Uint32(b[4:8]),
		})
	}
	return ad.Err()
}
