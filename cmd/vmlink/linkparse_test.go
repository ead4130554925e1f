package main

import (
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/link"
)

func u32(v uint32) *uint32                          { return &v }
func flagsp(v link.MacvlanFlags) *link.MacvlanFlags { return &v }
func i32(v int32) *int32                            { return &v }
func bp(v bool) *bool                               { return &v }
func sp(v string) *string                           { return &v }

func mac(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func parse(t *testing.T, line string) *linkRequest {
	t.Helper()
	r, err := parseLinkArgs(strings.Fields(line))
	if err != nil {
		t.Fatalf("parse %q: %v", line, err)
	}
	return r
}

// TestParseAdd covers every option of `link add` for each kind, written as
// the examples and ip-link(8) spell them.
func TestParseAdd(t *testing.T) {
	macvtap := func(m link.Macvlan) link.Spec { v := link.Macvtap(m); return &v }
	tests := []struct {
		line string
		want link.Spec
	}{
		{"add eth0.10 link eth0 type vlan id 10",
			&link.VLAN{Common: link.Common{Name: "eth0.10", Parent: "eth0"}, ID: 10}},
		{"add q100 link eth0 type vlan protocol 802.1ad id 100 reorder_hdr off loose_binding on ingress-qos-map 1:2 egress-qos-map 3:4",
			&link.VLAN{Common: link.Common{Name: "q100", Parent: "eth0"}, ID: 100, Protocol: link.VLAN8021AD,
				VLANFlags:  link.VLANFlags{ReorderHdr: bp(false), LooseBinding: bp(true)},
				IngressQoS: []link.QoSMapping{{From: 1, To: 2}}, EgressQoS: []link.QoSMapping{{From: 3, To: 4}}}},
		{"add v1 link p0 type vlan id 0x10 protocol 802.1Q gvrp on mvrp off bridge_binding on ingress-qos-map 0:1 7:7 egress-qos-map 1:0 2:5",
			&link.VLAN{Common: link.Common{Name: "v1", Parent: "p0"}, ID: 16, Protocol: link.VLAN8021Q,
				VLANFlags:  link.VLANFlags{GVRP: bp(true), MVRP: bp(false), BridgeBinding: bp(true)},
				IngressQoS: []link.QoSMapping{{From: 0, To: 1}, {From: 7, To: 7}}, EgressQoS: []link.QoSMapping{{From: 1, To: 0}, {From: 2, To: 5}}}},
		{"add v2 link p0 type vlan proto 0x88a8 id 4094",
			&link.VLAN{Common: link.Common{Name: "v2", Parent: "p0"}, ID: 4094, Protocol: link.VLAN8021AD}},
		{"add mv1 link eth0 type macvlan mode bridge",
			&link.Macvlan{Common: link.Common{Name: "mv1", Parent: "eth0"}, Mode: link.MacvlanModeBridge}},
		{"add mv1 link eth0 type macvlan",
			&link.Macvlan{Common: link.Common{Name: "mv1", Parent: "eth0"}}},
		{"add pt0 link eth1 type macvlan mode passthru nopromisc",
			&link.Macvlan{Common: link.Common{Name: "pt0", Parent: "eth1"}, Mode: link.MacvlanModePassthru, NoPromisc: true}},
		{"add pt0 link eth1 type macvlan mode passthru flag nopromisc",
			&link.Macvlan{Common: link.Common{Name: "pt0", Parent: "eth1"}, Mode: link.MacvlanModePassthru, NoPromisc: true}},
		{"add src0 link eth0 type macvlan mode source macaddr set 02:00:00:00:00:01 02:00:00:00:00:02",
			&link.Macvlan{Common: link.Common{Name: "src0", Parent: "eth0"}, Mode: link.MacvlanModeSource,
				SourceMACs: []net.HardwareAddr{mac(t, "02:00:00:00:00:01"), mac(t, "02:00:00:00:00:02")}}},
		{"add src1 link eth0 type macvlan mode source nodst macaddr add 2:0:0:0:0:9",
			&link.Macvlan{Common: link.Common{Name: "src1", Parent: "eth0"}, Mode: link.MacvlanModeSource, NoDst: true,
				SourceMACs: []net.HardwareAddr{mac(t, "02:00:00:00:00:09")}}},
		{"add src2 link eth0 type macvlan mode source macaddr set 02:00:00:00:00:01 bcqueuelen 10",
			&link.Macvlan{Common: link.Common{Name: "src2", Parent: "eth0"}, Mode: link.MacvlanModeSource,
				SourceMACs: []net.HardwareAddr{mac(t, "02:00:00:00:00:01")}, BCQueueLen: u32(10)}},
		{"add mv2 link eth0 type macvlan mode private bcqueuelen 2000 bclim 8",
			&link.Macvlan{Common: link.Common{Name: "mv2", Parent: "eth0"}, Mode: link.MacvlanModePrivate, BCQueueLen: u32(2000), BCCutoff: i32(8)}},
		{"add mv3 link eth0 type macvlan mode vepa bclim -1",
			&link.Macvlan{Common: link.Common{Name: "mv3", Parent: "eth0"}, Mode: link.MacvlanModeVEPA, BCCutoff: i32(-1)}},
		{"add tap0 link eth0 type macvtap mode vepa",
			macvtap(link.Macvlan{Common: link.Common{Name: "tap0", Parent: "eth0"}, Mode: link.MacvlanModeVEPA})},
		{"add ipv0 link eth0 type ipvlan mode l3 private",
			&link.IPVlan{Common: link.Common{Name: "ipv0", Parent: "eth0"}, Mode: link.IPVlanModeL3, Flag: link.IPVlanFlagPrivate}},
		{"add ipv1 link eth0 type ipvlan mode l2 vepa",
			&link.IPVlan{Common: link.Common{Name: "ipv1", Parent: "eth0"}, Mode: link.IPVlanModeL2, Flag: link.IPVlanFlagVEPA}},
		{"add ipv2 link eth0 type ipvlan mode l3s bridge",
			&link.IPVlan{Common: link.Common{Name: "ipv2", Parent: "eth0"}, Mode: link.IPVlanModeL3S, Flag: link.IPVlanFlagBridge}},
		{"add ipv3 link eth0 type ipvlan",
			&link.IPVlan{Common: link.Common{Name: "ipv3", Parent: "eth0"}}},
		// Common options, and iproute2's abbreviations (matches()).
		{"add mv3 link eth0 netns 4242 type macvlan mode bridge",
			&link.Macvlan{Common: link.Common{Name: "mv3", Parent: "eth0", NetNS: &link.Target{PID: 4242}}, Mode: link.MacvlanModeBridge}},
		{"add name mv4 link eth0 mtu 1400 address 02:00:00:00:00:04 txqueuelen 77 group 7 alias hello up type macvlan mode bridge",
			&link.Macvlan{Common: link.Common{Name: "mv4", Parent: "eth0", MTU: 1400, Address: mac(t, "02:00:00:00:00:04"),
				TxQLen: u32(77), Group: 7, Alias: "hello", Up: true}, Mode: link.MacvlanModeBridge}},
		{"add dev mv5 l eth0 addr 02:00:00:00:00:05 qlen 0 group default ty macvlan mod source",
			&link.Macvlan{Common: link.Common{Name: "mv5", Parent: "eth0", Address: mac(t, "02:00:00:00:00:05"), TxQLen: u32(0)}, Mode: link.MacvlanModeSource}},
		{"add mv6 li eth0 txqlen 5 down type macvlan",
			&link.Macvlan{Common: link.Common{Name: "mv6", Parent: "eth0", TxQLen: u32(5)}}},
		{"add p0 type veth peer name p1",
			&link.Veth{Common: link.Common{Name: "p0"}, Peer: "p1"}},
		{"add d0 type dummy",
			&link.Dummy{Common: link.Common{Name: "d0"}}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			r := parse(t, tt.line)
			if r.op != opAdd {
				t.Fatalf("op = %v, want add", r.op)
			}
			if !reflect.DeepEqual(r.spec, tt.want) {
				t.Errorf("spec =\n%#v\nwant\n%#v", r.spec, tt.want)
			}
		})
	}
}

func TestParseSet(t *testing.T) {
	tests := []struct {
		line string
		dev  string
		want link.Change
	}{
		{"set mv1 up", "mv1", link.Change{Up: bp(true)}},
		{"set dev mv1 down", "mv1", link.Change{Up: bp(false)}},
		{"set mv1 mtu 1400", "mv1", link.Change{MTU: u32(1400)}},
		{"set mv1 address 02:00:00:00:00:07", "mv1", link.Change{Address: mac(t, "02:00:00:00:00:07")}},
		{"set mv1 netns 77", "mv1", link.Change{NetNS: &link.Target{PID: 77}}},
		{"set mv1 alias x group 3 txqueuelen 9", "mv1", link.Change{Alias: sp("x"), Group: u32(3), TxQLen: u32(9)}},
		{"set mv1 name mv9", "mv1", link.Change{Name: "mv9"}},
		{"change mv1 up", "mv1", link.Change{Up: bp(true)}},
		{"set src0 type macvlan macaddr add 02:00:00:00:00:03", "src0", link.Change{Kind: "macvlan",
			Macvlan: &link.MacvlanChange{MACAddrOp: link.MACAddrAdd, MACAddrs: []net.HardwareAddr{mac(t, "02:00:00:00:00:03")}}}},
		{"set src0 type macvlan macaddr del 02:00:00:00:00:03", "src0", link.Change{Kind: "macvlan",
			Macvlan: &link.MacvlanChange{MACAddrOp: link.MACAddrDel, MACAddrs: []net.HardwareAddr{mac(t, "02:00:00:00:00:03")}}}},
		{"set src0 type macvlan macaddr flush", "src0", link.Change{Kind: "macvlan",
			Macvlan: &link.MacvlanChange{MACAddrOp: link.MACAddrFlush}}},
		{"set src0 type macvtap macaddr set 02:00:00:00:00:01 02:00:00:00:00:02", "src0", link.Change{Kind: "macvtap",
			Macvlan: &link.MacvlanChange{MACAddrOp: link.MACAddrSet, MACAddrs: []net.HardwareAddr{mac(t, "02:00:00:00:00:01"), mac(t, "02:00:00:00:00:02")}}}},
		{"set mv1 type macvlan mode vepa", "mv1", link.Change{Kind: "macvlan", Macvlan: &link.MacvlanChange{Mode: link.MacvlanModeVEPA}}},
		{"set pt0 type macvlan flag null", "pt0", link.Change{Kind: "macvlan", Macvlan: &link.MacvlanChange{Flags: flagsp(0)}}},
		{"set pt0 type macvlan nopromisc", "pt0", link.Change{Kind: "macvlan", Macvlan: &link.MacvlanChange{Flags: flagsp(link.MacvlanFlagNoPromisc)}}},
		{"set mv1 type macvlan bcqueuelen 5 bclim 3", "mv1", link.Change{Kind: "macvlan", Macvlan: &link.MacvlanChange{BCQueueLen: u32(5), BCCutoff: i32(3)}}},
		{"set v10 type vlan reorder_hdr off egress-qos-map 1:2", "v10", link.Change{Kind: "vlan",
			VLAN: &link.VLANChange{VLANFlags: link.VLANFlags{ReorderHdr: bp(false)}, EgressQoS: []link.QoSMapping{{From: 1, To: 2}}}}},
		{"set ipv0 type ipvlan mode l2", "ipv0", link.Change{Kind: "ipvlan", IPVlan: &link.IPVlanChange{Mode: link.IPVlanModeL2}}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			r := parse(t, tt.line)
			if r.op != opSet || r.dev != tt.dev {
				t.Fatalf("op, dev = %v, %q; want set, %q", r.op, r.dev, tt.dev)
			}
			if !reflect.DeepEqual(r.change, tt.want) {
				t.Errorf("change =\n%#v\nwant\n%#v", r.change, tt.want)
			}
		})
	}
}

func TestParseDelShow(t *testing.T) {
	tests := []struct {
		line string
		want linkRequest
	}{
		{"del mv1", linkRequest{op: opDel, dev: "mv1"}},
		{"delete dev mv1", linkRequest{op: opDel, dev: "mv1"}},
		{"d mv1 type macvlan", linkRequest{op: opDel, dev: "mv1", kind: "macvlan"}},
		{"del group 7", linkRequest{op: opDel, group: u32(7)}},
		{"show", linkRequest{op: opShow}},
		{"", linkRequest{op: opShow}},
		{"show mv1", linkRequest{op: opShow, dev: "mv1"}},
		{"list dev mv1 type macvlan", linkRequest{op: opShow, dev: "mv1", kind: "macvlan"}},
		{"lst type vlan up", linkRequest{op: opShow, kind: "vlan", upOnly: true}},
		{"show group 3", linkRequest{op: opShow, group: u32(3)}},
		{"batch -", linkRequest{op: opBatch, file: "-"}},
		{"help macvlan", linkRequest{op: opHelp, kind: "macvlan"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			r := parse(t, tt.line)
			if !reflect.DeepEqual(*r, tt.want) {
				t.Errorf("got %+v, want %+v", *r, tt.want)
			}
		})
	}
}

// TestParseErrors checks that every bad command line is a usage error whose
// one line names the option and says what to do.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		line string
		want []string // substrings of the message
	}{
		{"add mv1 link eth0", []string{"type is required"}},
		{"add link eth0 type macvlan", []string{"needs a name"}},
		{"add averyveryverylongname link eth0 type macvlan", []string{"averyveryverylongname", "at most 15 bytes"}},
		{"add a/b link eth0 type macvlan", []string{"'/'"}},
		{"add a:b link eth0 type macvlan", []string{"':'"}},
		{"add mv%d link eth0 type macvlan", []string{"template"}},
		{"add mv1 type macvlan", []string{"link", "needs a parent"}},
		{"add mv1 link lo0/x type macvlan", []string{"link", "'/'"}},
		{"add v1 link eth0 type vlan", []string{"vlan id is required"}},
		{"add v1 link eth0 type vlan id 4095", []string{"id \"4095\"", "0 to 4094"}},
		{"add v1 link eth0 type vlan id 70000", []string{"id \"70000\""}},
		{"add v1 link eth0 type vlan id ten", []string{"id \"ten\""}},
		{"add v1 link eth0 type vlan id 1 protocol 802.1x", []string{"protocol \"802.1x\"", "802.1Q or 802.1ad"}},
		{"add v1 link eth0 type vlan id 1 protocol 0x0800", []string{"protocol"}},
		{"add v1 link eth0 type vlan id 1 reorder_hdr maybe", []string{"reorder_hdr \"maybe\"", "on or off"}},
		{"add v1 link eth0 type vlan id 1 gvrp", []string{"gvrp needs on or off"}},
		{"add v1 link eth0 type vlan id 1 ingress-qos-map", []string{"ingress-qos-map needs FROM:TO"}},
		{"add v1 link eth0 type vlan id 1 ingress-qos-map 9:1", []string{"ingress-qos-map", "0 to 7"}},
		{"add v1 link eth0 type vlan id 1 egress-qos-map 1:9", []string{"egress-qos-map", "0 to 7"}},
		{"add v1 link eth0 type vlan id 1 egress-qos-map 1:x", []string{"egress-qos-map \"1:x\"", "TO is not a number"}},
		{"add v1 link eth0 type vlan id 1 bogus", []string{"unknown option \"bogus\""}},
		{"add mv1 link eth0 type macvlan mode bridged", []string{"mode \"bridged\"", "private, vepa, bridge, passthru or source"}},
		{"add mv1 link eth0 type macvlan mode bridge nopromisc", []string{"nopromisc", "passthru"}},
		{"add mv1 link eth0 type macvlan nopromisc", []string{"nopromisc", "passthru"}},
		{"add mv1 link eth0 type macvlan mode bridge nodst", []string{"nodst", "source"}},
		{"add mv1 link eth0 type macvlan mode bridge macaddr set 02:00:00:00:00:01", []string{"macaddr", "source mode"}},
		{"add mv1 link eth0 type macvlan mode source macaddr add 01:00:5e:00:00:01", []string{"macaddr", "multicast"}},
		{"add mv1 link eth0 type macvlan mode source macaddr add 00:00:00:00:00:00", []string{"macaddr", "zeros"}},
		{"add mv1 link eth0 type macvlan mode source macaddr add xx", []string{"macaddr add \"xx\""}},
		{"add mv1 link eth0 type macvlan mode source macaddr frob", []string{"macaddr \"frob\""}},
		{"add mv1 link eth0 type macvlan flag lazy", []string{"flag \"lazy\""}},
		{"add mv1 link eth0 type macvlan bcqueuelen -1", []string{"bcqueuelen \"-1\""}},
		{"add mv1 link eth0 type macvlan bclim many", []string{"bclim \"many\""}},
		{"add mv1 link eth0 type macvlan hairpin", []string{"unknown option \"hairpin\""}},
		{"add mv1 link eth0 address 01:00:00:00:00:01 type macvlan", []string{"address", "multicast"}},
		{"add mv1 link eth0 address 00:00:00:00:00:00 type macvlan", []string{"address", "zeros"}},
		{"add mv1 link eth0 address 02:00:00:00:01 type macvlan", []string{"address \"02:00:00:00:01\""}},
		{"add mv1 link eth0 mtu 20 type macvlan", []string{"mtu", "68"}},
		{"add mv1 link eth0 mtu big type macvlan", []string{"mtu \"big\""}},
		{"add mv1 link eth0 mtu 1400 mtu 1300 type macvlan", []string{"mtu given twice"}},
		{"add mv1 link eth0 group x type macvlan", []string{"group \"x\""}},
		{"add mv1 link eth0 txqueuelen -3 type macvlan", []string{"txqueuelen \"-3\""}},
		{"add mv1 link eth0 mode bridge type macvlan", []string{"mode before type"}},
		{"add mv1 link eth0 master br0 type macvlan", []string{"master is not supported"}},
		{"add mv1 link eth0 numtxqueues 2 type macvlan", []string{"numtxqueues is not supported"}},
		{"add mv1 mv2 link eth0 type macvlan", []string{"two device names"}},
		{"add name mv1 dev mv2 link eth0 type macvlan", []string{"both name"}},
		{"add ipv0 link eth0 type ipvlan mode l4", []string{"mode \"l4\"", "l2, l3 or l3s"}},
		{"add ipv0 link eth0 type ipvlan private vepa", []string{"one of bridge, private or vepa"}},
		{"add ipv0 link eth0 address 02:00:00:00:00:01 type ipvlan", []string{"address", "parent's MAC"}},
		{"add x0 link eth0 type vxlan id 1", []string{"type \"vxlan\" is not supported"}},
		{"add d0 type dummy extra", []string{"dummy takes no options"}},
		{"add p0 type veth", []string{"peer needs a name"}},
		{"set", []string{"name the link"}},
		{"set mv1", []string{"nothing to change"}},
		{"set mv1 link eth1", []string{"cannot change"}},
		{"set mv1 mtu 10", []string{"mtu", "68"}},
		{"set v1 type vlan id 3", []string{"id cannot change"}},
		{"set v1 type vlan protocol 802.1ad", []string{"protocol cannot change"}},
		{"set s0 type macvlan macaddr add 02:00:00:00:00:01 macaddr del 02:00:00:00:00:02", []string{"one macaddr operation"}},
		{"set s0 type macvlan macaddr add", []string{"macaddr needs a MAC address"}},
		{"set s0 type bridge stp_state 1", []string{"type \"bridge\""}},
		{"del", []string{"name the link"}},
		{"del group 0", []string{"group 0"}},
		{"del mv1 group 3", []string{"either a device or a group"}},
		{"del mv1 mv2", []string{"two devices"}},
		{"show mv1 mv2", []string{"two devices"}},
		{"show master br0", []string{"master is not supported"}},
		{"replace mv1 type macvlan", []string{"replace", "not supported"}},
		{"frobnicate", []string{"unknown command"}},
		{"batch", []string{"one FILE"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			_, err := parseLinkArgs(strings.Fields(tt.line))
			if err == nil {
				t.Fatalf("parse %q: no error", tt.line)
			}
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("parse %q: %T %v is not a usage error", tt.line, err, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("message has several lines: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	for _, line := range []string{"add mv1 link eth0 type macvlan help", "add v1 type vlan help", "add help", "del help", "show help"} {
		if _, err := parseLinkArgs(strings.Fields(line)); !errors.Is(err, errHelp) {
			t.Errorf("%q: err = %v, want help", line, err)
		}
	}
}

func TestSplitBatchLine(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"link add mv0 link p0 type macvlan", []string{"link", "add", "mv0", "link", "p0", "type", "macvlan"}},
		{"  # only a comment", nil},
		{"", nil},
		{"link set mv0 alias \"two words\" # set it", []string{"link", "set", "mv0", "alias", "two words"}},
		{"link set mv0 alias 'a b'\tup", []string{"link", "set", "mv0", "alias", "a b", "up"}},
	}
	for _, tt := range tests {
		got, err := splitBatchLine(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, err := splitBatchLine(`link set mv0 alias "open`); err == nil {
		t.Error("unterminated quote: no error")
	}
}

func TestParseBatch(t *testing.T) {
	in := strings.NewReader("link add mv0 link p0 group 7 type macvlan mode bridge\n\n# c\nadd mv1 link p0 type macvlan\nlink del group 7\n")
	lines, err := parseBatch(in, "f")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[0].no != 1 || lines[1].no != 4 || lines[2].no != 5 {
		t.Fatalf("lines = %+v", lines)
	}
	if lines[0].req.op != opAdd || lines[1].req.op != opAdd || lines[2].req.op != opDel {
		t.Errorf("ops = %v %v %v", lines[0].req.op, lines[1].req.op, lines[2].req.op)
	}
	_, err = parseBatch(strings.NewReader("link add mv0 link p0 type macvlan\nlink add mv1 link p0 type macvlan mode bogus\n"), "f")
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "f:2:") {
		t.Errorf("bad line 2: err = %v, want a usage error naming f:2", err)
	}
	_, err = parseBatch(strings.NewReader("link batch other\n"), "f")
	if err == nil || !strings.Contains(err.Error(), "not allowed inside a batch") {
		t.Errorf("nested batch: err = %v", err)
	}
}
