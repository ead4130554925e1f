package rtnl

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
)

func TestVLANEnumStrings(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{VLANProtocol8021Q.String(), "802.1Q"},
		{VLANProtocol8021AD.String(), "802.1ad"},
		{VLANProtocol(0).String(), "unset"},
		{VLANProtocol(0x0081).String(), "VLANProtocol(0x0081)"},
		{IPVlanModeL2.String(), "l2"},
		{IPVlanModeL3.String(), "l3"},
		{IPVlanModeL3S.String(), "l3s"},
		{IPVlanMode(0).String(), "unset"},
		{IPVlanMode(4).String(), "IPVlanMode(4)"},
		{IPVlanFlagBridge.String(), "bridge"},
		{IPVlanFlagPrivate.String(), "private"},
		{IPVlanFlagVEPA.String(), "vepa"},
		{IPVlanFlags(0).String(), "unset"},
		{IPVlanFlags(4).String(), "IPVlanFlags(4)"},
	} {
		if tc.got != tc.want {
			t.Errorf("String() = %q, want %q", tc.got, tc.want)
		}
	}
}

// TestVLANProtocolIsBigEndian pins the one big-endian integer of the VLAN
// data: 802.1ad goes out as 88 a8.
func TestVLANProtocolIsBigEndian(t *testing.T) {
	p := VLANProtocol8021AD
	ae := netlink.NewAttributeEncoder()
	if err := (&VLAN{Protocol: &p}).Encode(ae); err != nil {
		t.Fatal(err)
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{6, 0, 5, 0, 0x88, 0xa8}; string(b[:6]) != string(want) {
		t.Errorf("IFLA_VLAN_PROTOCOL encodes as % x, want % x", b[:6], want)
	}
}

// TestDriverDecodeErrors: a malformed attribute is an error, from the
// driver and through LinkMessage, never a shorter value.
func TestDriverDecodeErrors(t *testing.T) {
	attr := func(typ uint16, data []byte) []byte {
		b, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: typ, Data: data}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	nest := func(typ uint16, inner []byte) []byte { return attr(typ|netlinkNested, inner) }
	tests := []struct {
		name string
		d    interface {
			Decode(*netlink.AttributeDecoder) error
		}
		data []byte
		want string
	}{
		{"vlan id of one byte", &VLAN{}, attr(iflaVLANID, []byte{1}), "uint16"},
		{"vlan protocol of one byte", &VLAN{}, attr(iflaVLANProtocol, []byte{0x81}), "IFLA_VLAN_PROTOCOL"},
		{"vlan flags of four bytes", &VLAN{}, attr(iflaVLANFlags, []byte{1, 0, 0, 0}), "IFLA_VLAN_FLAGS"},
		{"short ingress mapping", &VLAN{}, nest(iflaVLANIngressQoS, attr(iflaVLANQoSMapping, []byte{1, 0, 0, 0})), "IFLA_VLAN_INGRESS_QOS"},
		{"short egress mapping", &VLAN{}, nest(iflaVLANEgressQoS, attr(iflaVLANQoSMapping, make([]byte, 12))), "IFLA_VLAN_EGRESS_QOS"},
		{"ipvlan mode of four bytes", &IPVlan{}, attr(iflaIPVlanMode, []byte{1, 0, 0, 0}), "uint16"},
		{"ipvlan flags of one byte", &IPVlan{}, attr(iflaIPVlanFlags, []byte{1}), "uint16"},
		{"bridge protocol of four bytes", &Bridge{}, attr(3+5, []byte{0x81, 0, 0, 0}), "IFLA_BR_VLAN_PROTOCOL"},
		{"port hairpin of two bytes", &BridgePort{}, attr(4, []byte{1, 0}), "uint8"},
	}
	for _, tc := range tests {
		ad, err := netlink.NewAttributeDecoder(tc.data)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err = tc.d.Decode(ad)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Decode = %v, want an error mentioning %s", tc.name, err, tc.want)
		}
	}

	// Through LinkMessage: the driver's error is returned, not swallowed.
	body := make([]byte, sizeofIfInfomsg)
	info := append(attr(1, []byte("vlan")), nest(2, attr(iflaVLANProtocol, []byte{0x81}))...)
	body = append(body, attr(3, []byte("v1\x00"))...)
	body = append(body, nest(18, info)...)
	var m LinkMessage
	err := m.UnmarshalBinary(body)
	if err == nil || !strings.Contains(err.Error(), "decode vlan data") || !strings.Contains(err.Error(), "IFLA_VLAN_PROTOCOL") {
		t.Errorf("LinkMessage with a bad VLAN protocol: %v", err)
	}
	if errors.Unwrap(err) == nil {
		t.Errorf("the driver error is not wrapped: %v", err)
	}
}

// The request `ip link add q100 link eth0 type vlan protocol 802.1ad id 100
// reorder_hdr off` makes, built with the VLAN driver (send it with
// Conn.NewLink(ctx, m, netlink.Create|netlink.Excl)).
func ExampleVLAN() {
	parent := uint32(2) // eth0's ifindex
	id := uint16(100)
	proto := VLANProtocol8021AD
	m := &LinkMessage{Attrs: LinkAttrs{
		Name: "q100",
		Link: &parent,
		Info: &LinkInfo{Kind: "vlan", Data: &VLAN{
			ID:       &id,
			Protocol: &proto,
			// Only the bits in Mask change: reorder_hdr off, the rest as
			// the kernel defaults them.
			Flags: &VLANFlags{Flags: 0, Mask: VLANFlagReorderHdr},
		}},
	}}
	b, err := m.MarshalBinary()
	if err != nil {
		panic(err)
	}
	var back LinkMessage
	if err := back.UnmarshalBinary(b); err != nil {
		panic(err)
	}
	v := back.Attrs.Info.Data.(*VLAN)
	fmt.Println(back.Attrs.Name, *v.ID, v.Protocol, v.Flags.Mask)
	// Output: q100 100 802.1ad 1
}
