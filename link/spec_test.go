package link

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ptr[T any](v T) *T { return &v }

func TestValidateOK(t *testing.T) {
	mt := Macvtap{Common: Common{Name: "tap0", Parent: "eth0"}, Mode: MacvlanModeVEPA}
	for _, s := range []Spec{
		&VLAN{Common: Common{Name: "eth0.10", Parent: "eth0"}, ID: 10},
		&VLAN{Common: Common{Name: "v0", Parent: "eth0"}, ID: 0},
		&VLAN{Common: Common{Name: "v4094", Parent: "eth0", MTU: 1496}, ID: 4094, Protocol: VLAN8021AD,
			IngressQoS: []QoSMapping{{From: 7, To: 100}}, EgressQoS: []QoSMapping{{From: 100, To: 7}}},
		&Macvlan{Common: Common{Name: "mv1", Parent: "eth0"}},
		&Macvlan{Common: Common{Name: "pt0", Parent: "eth0"}, Mode: MacvlanModePassthru, NoPromisc: true},
		&Macvlan{Common: Common{Name: "src0", Parent: "eth0"}, Mode: MacvlanModeSource, NoDst: true,
			SourceMACs: []net.HardwareAddr{mustMAC(t, "02:00:00:00:00:01")}},
		&Macvlan{Common: Common{Name: "mv2", Parent: "eth0", Address: mustMAC(t, "02:00:00:00:00:02"), NetNS: &Target{Name: "ns1"}},
			Mode: MacvlanModePrivate, BCQueueLen: ptr(uint32(0)), BCCutoff: ptr(int32(-1))},
		&mt,
		&IPVlan{Common: Common{Name: "ipv0", Parent: "eth0"}, Mode: IPVlanModeL3S, Flag: IPVlanFlagPrivate},
		&Veth{Common: Common{Name: "p0"}, Peer: "p1"},
		&Dummy{Common: Common{Name: "d0"}},
		&Macvlan{Common: Common{Name: "fifteen-bytes-x", Parent: "eth0"}},
		// A container's eth0 on the host's eth0 (docker's macvlan driver):
		// the names only clash when both live in one namespace.
		&Macvlan{Common: Common{Name: "eth0", Parent: "eth0", NetNS: &Target{Name: "ns1"}}},
		&VLAN{Common: Common{Name: "eth0", Parent: "eth0", NetNS: &Target{PID: 1}}, ID: 10},
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("%s %s: %v", s.Kind(), s.Base().Name, err)
		}
	}
}

// TestValidateErrors checks every rule, that the error is a *FieldError
// naming the right field, and that it says what to do.
func TestValidateErrors(t *testing.T) {
	base := func(name string) Common { return Common{Name: name, Parent: "eth0"} }
	tests := []struct {
		spec  Spec
		field string
		want  string
	}{
		{&Macvlan{Common: Common{Name: "", Parent: "eth0"}}, "name", "empty"},
		{&Macvlan{Common: base("sixteen-bytes-xx")}, "name", "at most 15 bytes"},
		{&Macvlan{Common: base("a/b")}, "name", "'/'"},
		{&Macvlan{Common: base("a:b")}, "name", "':'"},
		{&Macvlan{Common: base("a b")}, "name", "whitespace"},
		{&Macvlan{Common: base("a\tb")}, "name", "whitespace"},
		{&Macvlan{Common: base("..")}, "name", "reserved"},
		{&Macvlan{Common: base("mv%d")}, "name", "template"},
		{&Macvlan{Common: Common{Name: "mv1"}}, "link", "needs a parent"},
		{&Macvlan{Common: Common{Name: "mv1", Parent: "mv1"}}, "link", "its own parent"},
		{&Macvlan{Common: Common{Name: "mv1", Parent: "bad name"}}, "link", "whitespace"},
		{&Veth{Common: Common{Name: "p0", Parent: "eth0"}, Peer: "p1"}, "link", "has no parent"},
		{&Veth{Common: Common{Name: "p0"}}, "peer name", "empty"},
		{&Veth{Common: Common{Name: "p0"}, Peer: "p0"}, "peer name", "own"},
		{&VLAN{Common: base("v1"), ID: 4095}, "id", "0 to 4094"},
		{&VLAN{Common: base("v1"), ID: 65535}, "id", "0 to 4094"},
		{&VLAN{Common: base("v1"), ID: 1, Protocol: 0x0800}, "protocol", "802.1Q or 802.1ad"},
		{&VLAN{Common: base("v1"), ID: 1, IngressQoS: []QoSMapping{{From: 8, To: 1}}}, "ingress-qos-map", "0 to 7"},
		{&VLAN{Common: base("v1"), ID: 1, EgressQoS: []QoSMapping{{From: 1, To: 8}}}, "egress-qos-map", "0 to 7"},
		{&Macvlan{Common: base("mv1"), Mode: 3}, "mode", "unknown macvlan mode"},
		{&Macvlan{Common: base("mv1"), Mode: 32}, "mode", "unknown macvlan mode"},
		{&Macvlan{Common: base("mv1"), NoPromisc: true}, "nopromisc", "passthru"},
		{&Macvlan{Common: base("mv1"), Mode: MacvlanModeSource, NoPromisc: true}, "nopromisc", "passthru"},
		{&Macvlan{Common: base("mv1"), Mode: MacvlanModePassthru, NoDst: true}, "nodst", "source"},
		{&Macvlan{Common: base("mv1"), SourceMACs: []net.HardwareAddr{mustMAC(t, "02:00:00:00:00:01")}}, "macaddr", "source mode"},
		{&Macvlan{Common: base("mv1"), Mode: MacvlanModeSource, SourceMACs: []net.HardwareAddr{mustMAC(t, "01:00:5e:00:00:01")}}, "macaddr", "multicast"},
		{&Macvlan{Common: base("mv1"), Mode: MacvlanModeSource, SourceMACs: []net.HardwareAddr{mustMAC(t, "02:00:00:00:00:01"), mustMAC(t, "02:00:00:00:00:01")}}, "macaddr", "twice"},
		{&Macvlan{Common: Common{Name: "mv1", Parent: "eth0", Address: mustMAC(t, "ff:ff:ff:ff:ff:ff")}}, "address", "multicast"},
		{&Macvlan{Common: Common{Name: "mv1", Parent: "eth0", Address: mustMAC(t, "00:00:00:00:00:00")}}, "address", "zeros"},
		{&Macvlan{Common: Common{Name: "mv1", Parent: "eth0", Address: net.HardwareAddr{2, 0, 0}}}, "address", "6"},
		{&Macvlan{Common: Common{Name: "mv1", Parent: "eth0", MTU: 67}}, "mtu", "68"},
		{&Macvlan{Common: Common{Name: "mv1", Parent: "eth0", Alias: strings.Repeat("a", 256)}}, "alias", "255"},
		{&Macvlan{Common: Common{Name: "mv1", Parent: "eth0", NetNS: &Target{}}}, "netns", "exactly one"},
		{&Macvlan{Common: Common{Name: "mv1", Parent: "eth0", NetNS: &Target{Name: "a", PID: 1}}}, "netns", "exactly one"},
		{&Macvlan{Common: Common{Name: "mv1", Parent: "eth0", NetNS: &Target{Name: "../x"}}}, "netns", "'/'"},
		{&Macvtap{Common: base("tap0"), Mode: MacvlanModeBridge, NoDst: true}, "nodst", "source"},
		{&IPVlan{Common: base("ipv0"), Mode: 9}, "mode", "l2, l3 or l3s"},
		{&IPVlan{Common: base("ipv0"), Flag: 9}, "flag", "bridge, private or vepa"},
		{&IPVlan{Common: Common{Name: "ipv0", Parent: "eth0", Address: mustMAC(t, "02:00:00:00:00:01")}}, "address", "parent's MAC"},
	}
	for _, tt := range tests {
		err := tt.spec.Validate()
		if err == nil {
			t.Errorf("%s %q: no error, want one about %s", tt.spec.Kind(), tt.spec.Base().Name, tt.field)
			continue
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s %q: %T is not a *FieldError", tt.spec.Kind(), tt.spec.Base().Name, err)
			continue
		}
		if fe.Field != tt.field || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %q: field %q, message %q; want field %q and %q", tt.spec.Kind(), tt.spec.Base().Name, fe.Field, err, tt.field, tt.want)
		}
		if fe.Kind != tt.spec.Kind() {
			t.Errorf("%q: error kind %q, want %q", err, fe.Kind, tt.spec.Kind())
		}
	}
}

func TestChangeValidate(t *testing.T) {
	ok := []Change{
		{Up: ptr(true)},
		{MTU: ptr(uint32(1400)), Address: mustMAC(t, "02:00:00:00:00:01"), Alias: ptr(""), Group: ptr(uint32(3))},
		{Kind: "macvlan", Macvlan: &MacvlanChange{MACAddrOp: MACAddrFlush}},
		{Macvlan: &MacvlanChange{MACAddrOp: MACAddrSet}},
		{Kind: "macvtap", Macvlan: &MacvlanChange{MACAddrOp: MACAddrAdd, MACAddrs: []net.HardwareAddr{mustMAC(t, "02:00:00:00:00:01")}}},
		{Kind: "vlan", VLAN: &VLANChange{VLANFlags: VLANFlags{GVRP: ptr(true)}}},
		{IPVlan: &IPVlanChange{Mode: IPVlanModeL2}},
	}
	for i, c := range ok {
		if err := c.Validate("x0"); err != nil {
			t.Errorf("ok[%d]: %v", i, err)
		}
	}
	bad := []struct {
		c     Change
		field string
	}{
		{Change{}, "set"},
		{Change{MTU: ptr(uint32(10))}, "mtu"},
		{Change{Name: "bad/name"}, "name"},
		{Change{Address: mustMAC(t, "01:00:00:00:00:00")}, "address"},
		{Change{Macvlan: &MacvlanChange{MACAddrOp: MACAddrAdd}}, "macaddr"},
		{Change{Macvlan: &MacvlanChange{MACAddrOp: MACAddrFlush, MACAddrs: []net.HardwareAddr{mustMAC(t, "02:00:00:00:00:01")}}}, "macaddr"},
		{Change{Macvlan: &MacvlanChange{MACAddrs: []net.HardwareAddr{mustMAC(t, "02:00:00:00:00:01")}}}, "macaddr"},
		{Change{Macvlan: &MacvlanChange{MACAddrOp: MACAddrSet, MACAddrs: []net.HardwareAddr{mustMAC(t, "00:00:00:00:00:00")}}}, "macaddr"},
		{Change{Macvlan: &MacvlanChange{Mode: 5}}, "mode"},
		{Change{Macvlan: &MacvlanChange{Flags: ptr(MacvlanFlags(4))}}, "flag"},
		{Change{Kind: "vlan", Macvlan: &MacvlanChange{Mode: MacvlanModeBridge}}, "type"},
		{Change{VLAN: &VLANChange{}, IPVlan: &IPVlanChange{}}, "type"},
		{Change{VLAN: &VLANChange{EgressQoS: []QoSMapping{{From: 1, To: 9}}}}, "egress-qos-map"},
		{Change{IPVlan: &IPVlanChange{Flag: 7}}, "flag"},
	}
	for i, b := range bad {
		err := b.c.Validate("x0")
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != b.field {
			t.Errorf("bad[%d]: err = %v, want a *FieldError on %q", i, err, b.field)
		}
	}
	if err := (&Change{Up: ptr(true)}).Validate("no/slash"); err == nil {
		t.Error("bad device name: no error")
	}
}

func TestEnums(t *testing.T) {
	for _, m := range []MacvlanMode{MacvlanModePrivate, MacvlanModeVEPA, MacvlanModeBridge, MacvlanModePassthru, MacvlanModeSource} {
		got, err := ParseMacvlanMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMacvlanMode(%q) = %v, %v", m, got, err)
		}
	}
	if MacvlanModeUnset.String() != "unset" || MacvlanMode(3).String() != "MacvlanMode(3)" {
		t.Error("invalid macvlan modes must not print as a valid one")
	}
	if _, err := ParseMacvlanMode("bridged"); err == nil {
		t.Error(`ParseMacvlanMode("bridged"): no error`)
	}
	for in, want := range map[string]VLANProtocol{"802.1Q": VLAN8021Q, "802.1q": VLAN8021Q, "802.1AD": VLAN8021AD, "0x88a8": VLAN8021AD, "33024": VLAN8021Q} {
		if got, err := ParseVLANProtocol(in); err != nil || got != want {
			t.Errorf("ParseVLANProtocol(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ip", "0x0800", "802.1x"} {
		if _, err := ParseVLANProtocol(in); err == nil {
			t.Errorf("ParseVLANProtocol(%q): no error", in)
		}
	}
	for _, m := range []IPVlanMode{IPVlanModeL2, IPVlanModeL3, IPVlanModeL3S} {
		if got, err := ParseIPVlanMode(m.String()); err != nil || got != m {
			t.Errorf("ParseIPVlanMode(%q) = %v, %v", m, got, err)
		}
	}
	for op, want := range map[MACAddrOp]string{MACAddrNone: "none", MACAddrAdd: "add", MACAddrDel: "del", MACAddrFlush: "flush", MACAddrSet: "set"} {
		if got := op.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", op, got, want)
		}
	}
	f, m := VLANFlags{ReorderHdr: ptr(false), GVRP: ptr(true), BridgeBinding: ptr(true)}.FlagsMask()
	if f != VLANFlagGVRP|VLANFlagBridgeBinding || m != VLANFlagReorderHdr|VLANFlagGVRP|VLANFlagBridgeBinding {
		t.Errorf("FlagsMask = %#x/%#x", f, m)
	}
}

func TestFieldErrorMessage(t *testing.T) {
	err := (&Macvlan{Common: Common{Name: "mv1", Parent: "eth0"}, Mode: MacvlanModeBridge, NoPromisc: true}).Validate()
	want := "macvlan mv1: nopromisc: only valid in passthru mode, not bridge: drop nopromisc or use mode passthru"
	if err == nil || err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
}

func TestIgnoredByKernel(t *testing.T) {
	eight, qlen := int32(8), uint32(2000)
	spec := &Macvlan{Common: Common{Name: "mv0", Parent: "p0"}, BCCutoff: &eight, BCQueueLen: &qlen}
	for _, tc := range []struct {
		name              string
		s                 Spec
		cutoff, queue     bool // what the read-back link reports
		report, wantField string
	}{
		{"both applied", spec, true, true, "macvlan", ""},
		{"bclim dropped (6.1)", spec, false, true, "macvlan", "bclim"},
		{"bcqueuelen dropped (5.10)", spec, true, false, "macvlan", "bcqueuelen"},
		{"macvtap too", (*Macvtap)(spec), false, true, "macvtap", "bclim"},
		{"not asked for", &Macvlan{Common: Common{Name: "mv0", Parent: "p0"}}, false, false, "macvlan", ""},
		{"bclim 1 is the default, which 6.4+ does not report", &Macvlan{Common: Common{Name: "mv0", Parent: "p0"}, BCCutoff: ptr(int32(1))}, false, true, "macvlan", ""},
		{"bclim 0 dropped", &Macvlan{Common: Common{Name: "mv0", Parent: "p0"}, BCCutoff: ptr(int32(0))}, false, true, "macvlan", "bclim"},
		{"other kinds", &VLAN{Common: Common{Name: "v", Parent: "p0"}, ID: 10}, false, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &Link{}
			if tc.report != "" {
				l.Macvlan = &MacvlanInfo{}
				if tc.cutoff {
					l.Macvlan.BCCutoff = &eight
				}
				if tc.queue {
					l.Macvlan.BCQueueLen = &qlen
				}
			}
			err := ignoredByKernel(tc.s, l)
			var fe *FieldError
			switch {
			case tc.wantField == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.wantField != "" && (!errors.As(err, &fe) || fe.Field != tc.wantField || fe.Kind != tc.report || !strings.Contains(err.Error(), "leave "+tc.wantField+" out")):
				t.Fatalf("error %v, want a %s FieldError on %s saying to leave it out", err, tc.report, tc.wantField)
			}
		})
	}
}

// TestParseMAC checks ParseMAC against what `ip link set dev X address A`
// accepted and refused (iproute2 6.1, measured in a throwaway namespace).
func TestParseMAC(t *testing.T) {
	ok := map[string]string{
		"2:0:0:0:0:1":       "02:00:00:00:00:01",
		"02:00:00:00:00:03": "02:00:00:00:00:03",
		"002:0:0:0:0:8":     "02:00:00:00:00:08",
		"02:00:00:00:00:0B": "02:00:00:00:00:0b",
		"2:0:0:0:0: d":      "02:00:00:00:00:0d",
		"0x2:0:0:0:0:e":     "02:00:00:00:00:0e",
	}
	for in, want := range ok {
		if got, err := ParseMAC(in); err != nil || got.String() != want {
			t.Errorf("ParseMAC(%q) = %v, %v; ip sets %s", in, got, err, want)
		}
	}
	for _, in := range []string{
		"02-00-00-00-00-04", "0200.0000.0005", "02:00:00:00:00", "02:00:00:00:00:06:07",
		"2:0:0:0:0:9:", ":2:0:0:0:0:a", "2:0:0:0::c", "020000000011", // ip refuses these
		"100:0:0:0:0:1", "2g:0:0:0:0:1", "", // above a byte; trailing garbage ip's sscanf would skip
	} {
		if m, err := ParseMAC(in); err == nil || !strings.Contains(err.Error(), "six hex bytes") {
			t.Errorf("ParseMAC(%q) = %v, %v; want refused", in, m, err)
		}
	}
}
