package main

import (
	"reflect"
	"testing"

	"github.com/vmlink/vmlink/link"
)

// TestParseVLANIPVlanSpellings covers the vlan and ipvlan spellings ip
// accepts beyond the examples: iproute2's matches() abbreviations
// in its order of tests (id before ingress-qos-map, so "i" is id),
// numbers for id and protocol, repeated QoS maps, and set-only forms.
func TestParseVLANIPVlanSpellings(t *testing.T) {
	c := link.Common{Name: "v17", Parent: "p0"}
	adds := []struct {
		line string
		want link.Spec
	}{
		{"add v17 link p0 type vlan i 17", &link.VLAN{Common: c, ID: 17}},
		{"add v17 link p0 type vlan id 0x11 proto 0x8100", &link.VLAN{Common: c, ID: 17, Protocol: link.VLAN8021Q}},
		{"add v17 link p0 type vlan id 17 protocol 802.1AD", &link.VLAN{Common: c, ID: 17, Protocol: link.VLAN8021AD}},
		{"add v17 link p0 type vlan id 17 reorder off loose on bridge_b off g on m off",
			&link.VLAN{Common: c, ID: 17, VLANFlags: link.VLANFlags{ReorderHdr: bp(false), LooseBinding: bp(true),
				BridgeBinding: bp(false), GVRP: bp(true), MVRP: bp(false)}}},
		{"add v17 link p0 type vlan id 17 ingress 1:2 egress 3:4 ingress-qos-map 5:6",
			&link.VLAN{Common: c, ID: 17, IngressQoS: []link.QoSMapping{{From: 1, To: 2}, {From: 5, To: 6}},
				EgressQoS: []link.QoSMapping{{From: 3, To: 4}}}},
		{"add ipv0 link p0 type ipvlan private", &link.IPVlan{Common: link.Common{Name: "ipv0", Parent: "p0"}, Flag: link.IPVlanFlagPrivate}},
		{"add ipv0 link p0 type ipvlan v mo l3s", &link.IPVlan{Common: link.Common{Name: "ipv0", Parent: "p0"}, Mode: link.IPVlanModeL3S, Flag: link.IPVlanFlagVEPA}},
	}
	for _, tt := range adds {
		r := parse(t, tt.line)
		if !reflect.DeepEqual(r.spec, tt.want) {
			t.Errorf("%s:\n spec %#v\n want %#v", tt.line, r.spec, tt.want)
		}
	}
	sets := []struct {
		line string
		want link.Change
	}{
		{"set v17 type vlan ingress-qos-map 1:0 egress-qos-map 5:0", link.Change{Kind: "vlan", VLAN: &link.VLANChange{
			IngressQoS: []link.QoSMapping{{From: 1, To: 0}}, EgressQoS: []link.QoSMapping{{From: 5, To: 0}}}}},
		{"set v17 type vlan gvrp on mvrp on bridge_binding on", link.Change{Kind: "vlan", VLAN: &link.VLANChange{
			VLANFlags: link.VLANFlags{GVRP: bp(true), MVRP: bp(true), BridgeBinding: bp(true)}}}},
		{"set ipv0 type ipvlan vepa", link.Change{Kind: "ipvlan", IPVlan: &link.IPVlanChange{Flag: link.IPVlanFlagVEPA}}},
		{"set ipv0 type ipvlan mode l3 bridge", link.Change{Kind: "ipvlan", IPVlan: &link.IPVlanChange{Mode: link.IPVlanModeL3, Flag: link.IPVlanFlagBridge}}},
	}
	for _, tt := range sets {
		r := parse(t, tt.line)
		if !reflect.DeepEqual(r.change, tt.want) {
			t.Errorf("%s:\n change %#v\n want   %#v", tt.line, r.change, tt.want)
		}
	}
}
