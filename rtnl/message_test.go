package rtnl

import (
	"errors"
	"net"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// failingDriver always fails to decode, standing in for a driver that meets
// a malformed attribute.
type failingDriver struct{}

var errFailingDriver = errors.New("bad driver data")

func (failingDriver) New() rtnetlink.LinkDriver                 { return failingDriver{} }
func (failingDriver) Kind() string                              { return "vmlt-failing" }
func (failingDriver) Encode(ae *netlink.AttributeEncoder) error { ae.Uint8(1, 1); return nil }
func (failingDriver) Decode(ad *netlink.AttributeDecoder) error { return errFailingDriver }

func init() { Register(failingDriver{}) }

// TestLinkMessageDriverErrorNotSwallowed is the bug this type exists for:
// jsimonetti's decoder returns nil here and loses every later attribute.
func TestLinkMessageDriverErrorNotSwallowed(t *testing.T) {
	m := LinkMessage{Attrs: LinkAttrs{Name: "x0", Info: &LinkInfo{Kind: "vmlt-failing", Data: failingDriver{}}}}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got LinkMessage
	if err := got.UnmarshalBinary(b); !errors.Is(err, errFailingDriver) {
		t.Fatalf("UnmarshalBinary = %v, want the driver's error", err)
	}
}

func TestLinkMessageKeepsAttributesAfterLinkInfo(t *testing.T) {
	mtu, group := uint32(1400), uint32(7)
	alias := "vmlink:test"
	m := LinkMessage{
		Index: 12, Flags: unix.IFF_UP, Change: unix.IFF_UP,
		Attrs: LinkAttrs{
			Name: "raw0", MTU: &mtu, Group: &group, Alias: &alias,
			Address: net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
			Info:    &LinkInfo{Kind: "vmlt-unknown", Data: &RawData{KindName: "vmlt-unknown", Attrs: []netlink.Attribute{{Type: 1, Data: []byte{1, 2, 3, 4}}}}},
		},
	}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Put IFLA_MTU again after IFLA_LINKINFO, as a kernel dump would have
	// attributes after the link info.
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.IFLA_MTU, 1300)
	tail, _ := ae.Encode()
	b = append(b, tail...)

	var got LinkMessage
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got.Index != 12 || got.Flags != unix.IFF_UP || got.Attrs.Name != "raw0" {
		t.Fatalf("header/name lost: %+v", got)
	}
	if got.Attrs.MTU == nil || *got.Attrs.MTU != 1300 {
		t.Fatalf("attribute after IFLA_LINKINFO lost: MTU %v", got.Attrs.MTU)
	}
	if *got.Attrs.Group != 7 || *got.Attrs.Alias != alias || got.Attrs.Address.String() != "02:00:00:00:00:01" {
		t.Fatalf("attributes differ: %+v", got.Attrs)
	}
	raw, ok := got.Attrs.Info.Data.(*RawData)
	if !ok || got.Attrs.Info.Kind != "vmlt-unknown" || len(raw.Attrs) != 1 || string(raw.Attrs[0].Data) != "\x01\x02\x03\x04" {
		t.Fatalf("unknown kind data not kept raw: %#v", got.Attrs.Info)
	}
}

func TestLinkMessageShort(t *testing.T) {
	var m LinkMessage
	if err := m.UnmarshalBinary(make([]byte, 8)); err == nil {
		t.Fatal("8-byte message decoded without error")
	}
}

func FuzzLinkMessage(f *testing.F) {
	mtu := uint32(1500)
	seed := LinkMessage{Attrs: LinkAttrs{Name: "f0", MTU: &mtu, Info: &LinkInfo{Kind: "vmlt-unknown", Data: &RawData{KindName: "vmlt-unknown"}}}}
	if b, err := seed.MarshalBinary(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m LinkMessage
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			return // e.g. a port kind without data cannot be re-encoded
		}
		var again LinkMessage
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-decoding our own encoding failed: %v", err)
		}
		if again.Attrs.Name != m.Attrs.Name || again.Index != m.Index {
			t.Fatalf("round trip changed the message: %+v vs %+v", again, m)
		}
	})
}
