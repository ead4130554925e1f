package rtnl

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func u32p(v uint32) *uint32 { return &v }

func TestLinkHintContext(t *testing.T) {
	mac := []byte{2, 0, 0, 0, 0, 1}
	tests := []struct {
		name string
		typ  netlink.HeaderType
		m    LinkMessage
		want HintContext
	}{
		{
			name: "macvlan passthru up with MAC and MTU",
			typ:  unix.RTM_NEWLINK,
			m: LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP, Attrs: LinkAttrs{
				Name: "pt0", Address: mac, MTU: u32p(1400),
				Info: &LinkInfo{Kind: "macvlan", Data: &Macvlan{Mode: new(MacvlanModePassthru)}},
			}},
			want: HintContext{Type: unix.RTM_NEWLINK, Name: "pt0", Kind: "macvlan", Mode: "passthru", SetsAddress: true, SetsUp: true, SetsMTU: true},
		},
		{
			name: "macvtap bridge",
			typ:  unix.RTM_NEWLINK,
			m:    LinkMessage{Attrs: LinkAttrs{Name: "t0", Info: &LinkInfo{Kind: "macvtap", Data: &Macvtap{Macvlan{Mode: new(MacvlanModeBridge)}}}}},
			want: HintContext{Type: unix.RTM_NEWLINK, Name: "t0", Kind: "macvtap", Mode: "bridge"},
		},
		{
			name: "ipvlan l3s",
			typ:  unix.RTM_NEWLINK,
			m:    LinkMessage{Attrs: LinkAttrs{Name: "i0", Info: &LinkInfo{Kind: "ipvlan", Data: &IPVlan{Mode: new(IPVlanModeL3S)}}}},
			want: HintContext{Type: unix.RTM_NEWLINK, Name: "i0", Kind: "ipvlan", Mode: "l3s"},
		},
		{
			name: "macvlan without mode attribute",
			typ:  unix.RTM_NEWLINK,
			m:    LinkMessage{Attrs: LinkAttrs{Name: "m0", Info: &LinkInfo{Kind: "macvlan", Data: &Macvlan{}}}},
			want: HintContext{Type: unix.RTM_NEWLINK, Name: "m0", Kind: "macvlan"},
		},
		{
			name: "down is not up",
			typ:  unix.RTM_SETLINK,
			m:    LinkMessage{Change: unix.IFF_UP, Attrs: LinkAttrs{Name: "m0"}},
			want: HintContext{Type: unix.RTM_SETLINK, Name: "m0"},
		},
		{
			name: "delete by group",
			typ:  unix.RTM_DELLINK,
			m:    LinkMessage{Attrs: LinkAttrs{Group: u32p(7)}},
			want: HintContext{Type: unix.RTM_DELLINK, ByGroup: true},
		},
		{
			name: "delete by name is not by group",
			typ:  unix.RTM_DELLINK,
			m:    LinkMessage{Attrs: LinkAttrs{Name: "m0", Group: u32p(7)}},
			want: HintContext{Type: unix.RTM_DELLINK, Name: "m0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := *linkHint(tt.typ, &tt.m); got != tt.want {
				t.Errorf("linkHint = %+v\nwant       %+v", got, tt.want)
			}
		})
	}
}

func TestNewLinkRefusalCarriesHint(t *testing.T) {
	m := &LinkMessage{Attrs: LinkAttrs{
		Name: "pt1", Link: u32p(2),
		Info: &LinkInfo{Kind: "macvlan", Data: &Macvlan{Mode: new(MacvlanModePassthru)}},
	}}
	want, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		return []netlink.Message{ackFor(reqs[0], unix.EINVAL, "")}, nil
	})
	err = c.NewLink(context.Background(), m, netlink.Create|netlink.Excl)
	var oe *OpError
	if !errors.Is(err, unix.EINVAL) || !errors.As(err, &oe) {
		t.Fatalf("err = %v, want EINVAL as *OpError", err)
	}
	if !strings.Contains(oe.Hint, "passthru needs the parent to itself") {
		t.Errorf("hint %q", oe.Hint)
	}
	h := k.sends[0][0].Header
	if h.Type != unix.RTM_NEWLINK || h.Flags != netlink.Request|netlink.Acknowledge|netlink.Create|netlink.Excl {
		t.Errorf("header %+v", h)
	}
	if !slices.Equal(k.sends[0][0].Data, want) {
		t.Errorf("body %x, want the message's encoding %x", k.sends[0][0].Data, want)
	}
}

func TestSetLinkIsNewLinkWithoutCreate(t *testing.T) {
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		return []netlink.Message{ackFor(reqs[0], unix.EADDRINUSE, "")}, nil
	})
	err := c.SetLink(context.Background(), &LinkMessage{Index: 5, Flags: unix.IFF_UP, Change: unix.IFF_UP})
	var oe *OpError
	if !errors.As(err, &oe) || !strings.Contains(oe.Hint, "MAC address is already used") {
		t.Fatalf("err = %v, want EADDRINUSE with the busy-MAC hint", err)
	}
	if h := k.sends[0][0].Header; h.Type != unix.RTM_NEWLINK || h.Flags != netlink.Request|netlink.Acknowledge {
		t.Errorf("header %+v, want RTM_NEWLINK Request|Ack (as `ip link set`)", h)
	}
}

func TestGetLinkSendsOnlyIndexAndName(t *testing.T) {
	reply := &LinkMessage{Index: 5, Attrs: LinkAttrs{Name: "mv0", MTU: u32p(1500)}}
	replyBody, err := reply.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		return []netlink.Message{
			{Header: netlink.Header{Type: unix.RTM_NEWLINK, Sequence: reqs[0].Header.Sequence}, Data: replyBody},
			ackFor(reqs[0], 0, ""),
		}, nil
	})
	got, err := c.GetLink(context.Background(), &LinkMessage{Attrs: LinkAttrs{Name: "mv0", MTU: u32p(9000), Group: u32p(3)}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Index != 5 || got.Attrs.Name != "mv0" || got.Attrs.MTU == nil || *got.Attrs.MTU != 1500 {
		t.Errorf("GetLink = %+v", got)
	}
	want, _ := (&LinkMessage{Attrs: LinkAttrs{Name: "mv0"}}).MarshalBinary()
	if !slices.Equal(k.sends[0][0].Data, want) {
		t.Errorf("GET body %x, want only the name %x", k.sends[0][0].Data, want)
	}
	if _, err := c.GetLink(context.Background(), &LinkMessage{}); err == nil {
		t.Error("GetLink without index or name accepted")
	}
}

func TestLinksFailsOnUndecodableLink(t *testing.T) {
	good, _ := (&LinkMessage{Index: 1, Attrs: LinkAttrs{Name: "lo"}}).MarshalBinary()
	bad := append([]byte(nil), good...)
	bad = append(bad, 0xff, 0xff, 0x03) // a truncated attribute header
	bad[4] = 9                          // ifindex 9
	c, _ := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		return dumpMsgs(reqs[0], good, bad), nil
	})
	_, err := c.Links(context.Background())
	if err == nil || !strings.Contains(err.Error(), "link 9") {
		t.Fatalf("Links = %v, want a decode error naming link 9", err)
	}
}

func TestLinksDecodesDump(t *testing.T) {
	a, _ := (&LinkMessage{Index: 1, Attrs: LinkAttrs{Name: "lo"}}).MarshalBinary()
	b, _ := (&LinkMessage{Index: 2, Attrs: LinkAttrs{Name: "p0", Group: u32p(7)}}).MarshalBinary()
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		return dumpMsgs(reqs[0], a, b), nil
	})
	links, err := c.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 2 || links[0].Attrs.Name != "lo" || links[1].Attrs.Name != "p0" || *links[1].Attrs.Group != 7 {
		t.Fatalf("Links = %+v", links)
	}
	if h := k.sends[0][0].Header; h.Flags != netlink.Request|netlink.Dump || len(k.sends[0][0].Data) < unix.SizeofIfInfomsg {
		t.Errorf("dump request %+v with %d bytes: want Request|Dump and a full ifinfomsg (strict checking)", h, len(k.sends[0][0].Data))
	}
}

// dumpMsgs is a multi-part answer carrying bodies.
func dumpMsgs(req netlink.Message, bodies ...[]byte) []netlink.Message {
	var out []netlink.Message
	for _, b := range bodies {
		out = append(out, netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: netlink.Multi, Sequence: req.Header.Sequence}, Data: b})
	}
	return append(out, netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: req.Header.Sequence}, Data: make([]byte, 4)})
}

func TestDriverModeWithRealDrivers(t *testing.T) {
	for _, tt := range []struct {
		kind string
		d    rtnetlink.LinkDriver
		want string
	}{
		{"macvlan", &Macvlan{Mode: func() *MacvlanMode { m := MacvlanModePassthru; return &m }()}, "passthru"},
		{"macvtap", &Macvtap{Macvlan{Mode: func() *MacvlanMode { m := MacvlanModeVEPA; return &m }()}}, "vepa"},
		{"ipvlan", &IPVlan{Mode: new(IPVlanModeL2)}, "l2"},
		{"ipvlan", &IPVlan{Mode: new(IPVlanModeL3S)}, "l3s"},
		{"macvlan", &Macvlan{}, ""},
		{"veth", &Veth{}, ""},
	} {
		if got := driverMode(tt.d); got != tt.want {
			t.Errorf("driverMode(%s, %#v) = %q, want %q", tt.kind, tt.d, got, tt.want)
		}
	}
}
