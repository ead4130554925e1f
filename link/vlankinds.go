package link

import (
	"fmt"
	"slices"

	"github.com/vmlink/vmlink/rtnl"
)

// This file is kinds.go's counterpart for VLAN and ipvlan links: the
// IFLA_INFO_DATA that creates or changes them, its decoding into a Link,
// and the comparison Ensure makes.

// vlanKindInfo builds IFLA_LINKINFO for creating a VLAN or ipvlan link.
func vlanKindInfo(s Spec) (*rtnl.LinkInfo, error) {
	switch v := s.(type) {
	case *VLAN:
		id := v.ID
		d := vlanData(v.VLANFlags, v.IngressQoS, v.EgressQoS)
		d.ID = &id
		if v.Protocol != VLANProtocolUnset {
			// Unset leaves the kernel's default, 802.1Q, as ip does.
			p := rtnl.VLANProtocol(v.Protocol)
			d.Protocol = &p
		}
		return &rtnl.LinkInfo{Kind: "vlan", Data: d}, nil
	case *IPVlan:
		info := &rtnl.LinkInfo{Kind: "ipvlan"}
		if v.Mode == IPVlanModeUnset && v.Flag == IPVlanFlagUnset {
			// The kind alone, as `ip link add … type ipvlan`: l3, bridge.
			return info, nil
		}
		// iproute2 sends the flags whenever it sends data (0 is bridge);
		// so do we, so the same words make the same request.
		flag := v.Flag
		if flag == IPVlanFlagUnset {
			flag = IPVlanFlagBridge
		}
		d := &rtnl.IPVlan{Flags: &flag}
		if v.Mode != IPVlanModeUnset {
			d.Mode = &v.Mode
		}
		info.Data = d
		return info, nil
	}
	return nil, fmt.Errorf("%s link: kind not supported by vmlink", kindOf(s))
}

// vlanData is the IFLA_INFO_DATA part VLAN creation and changes share:
// flags (only the bits given, in the mask) and QoS mappings.
func vlanData(f VLANFlags, ingress, egress []QoSMapping) *rtnl.VLAN {
	d := &rtnl.VLAN{}
	if flags, mask := f.FlagsMask(); mask != 0 {
		d.Flags = &rtnl.VLANFlags{Flags: flags, Mask: mask}
	}
	qos := func(m []QoSMapping) []rtnl.VLANQoSMapping {
		if len(m) == 0 {
			return nil
		}
		out := make([]rtnl.VLANQoSMapping, len(m))
		for i, q := range m {
			out[i] = rtnl.VLANQoSMapping{From: q.From, To: q.To}
		}
		return out
	}
	d.IngressQoS, d.EgressQoS = qos(ingress), qos(egress)
	return d
}

// vlanChangeInfo builds IFLA_LINKINFO changing a VLAN or ipvlan link.
func vlanChangeInfo(cur *Link, ch *Change) (*rtnl.LinkInfo, error) {
	switch {
	case ch.VLAN != nil:
		return &rtnl.LinkInfo{Kind: "vlan", Data: vlanData(ch.VLAN.VLANFlags, ch.VLAN.IngressQoS, ch.VLAN.EgressQoS)}, nil
	case ch.IPVlan != nil:
		c := ch.IPVlan
		d := &rtnl.IPVlan{}
		if c.Mode != IPVlanModeUnset {
			d.Mode = &c.Mode
		}
		flag := c.Flag
		if flag == IPVlanFlagUnset && cur.IPVlan != nil && cur.IPVlan.Flag != nil {
			// `ip link set … type ipvlan mode l2` sends flags 0 and so
			// silently turns a private or vepa parent into bridge. We
			// keep the flag the link has unless one is given.
			flag = *cur.IPVlan.Flag
		}
		if flag != IPVlanFlagUnset {
			d.Flags = &flag
		}
		return &rtnl.LinkInfo{Kind: "ipvlan", Data: d}, nil
	}
	return nil, nil
}

// decodeVLANKind fills l's VLAN or ipvlan part from IFLA_LINKINFO. Other
// kinds (veth, bridge, dummy, kinds without a driver) carry nothing Link
// describes.
func decodeVLANKind(l *Link, info *rtnl.LinkInfo) error {
	switch d := info.Data.(type) {
	case *rtnl.VLAN:
		if d.ID == nil {
			return fmt.Errorf("vlan link without IFLA_VLAN_ID")
		}
		v := &VLANInfo{ID: *d.ID, Protocol: VLAN8021Q}
		if d.Protocol != nil {
			v.Protocol = VLANProtocol(*d.Protocol)
		}
		if d.Flags != nil {
			v.Flags, v.HasFlags = d.Flags.Flags&d.Flags.Mask, true
		}
		for _, q := range d.IngressQoS {
			v.IngressQoS = append(v.IngressQoS, QoSMapping{From: q.From, To: q.To})
		}
		for _, q := range d.EgressQoS {
			v.EgressQoS = append(v.EgressQoS, QoSMapping{From: q.From, To: q.To})
		}
		l.VLAN = v
	case *rtnl.IPVlan:
		ip := &IPVlanInfo{Flag: d.Flags}
		if d.Mode != nil {
			ip.Mode = *d.Mode
		}
		l.IPVlan = ip
	}
	return nil
}

// compareVLANKind lists how a VLAN or ipvlan link differs from s in what s
// sets (Ensure refuses to adopt a link that differs).
func compareVLANKind(s Spec, l *Link) []string {
	var d []string
	diff := func(field string, have, want any) {
		d = append(d, fmt.Sprintf("%s: have %v, want %v", field, have, want))
	}
	switch v := s.(type) {
	case *VLAN:
		if l.VLAN == nil {
			return []string{"id: not reported by the kernel"}
		}
		if l.VLAN.ID != v.ID {
			diff("id", l.VLAN.ID, v.ID)
		}
		want := v.Protocol
		if want == VLANProtocolUnset {
			want = VLAN8021Q
		}
		if l.VLAN.Protocol != want {
			diff("protocol", l.VLAN.Protocol, want)
		}
		if flags, mask := v.FlagsMask(); mask != 0 && l.VLAN.Flags&mask != flags {
			diff("flags", VLANFlagNames(l.VLAN.Flags&mask), VLANFlagNames(flags))
		}
		// The kernel reports only mappings to a non-zero priority (a
		// mapping to 0 clears an entry), so compare those.
		qos := func(field string, have, want []QoSMapping) {
			for _, m := range want {
				if m.To != 0 && !slices.Contains(have, m) {
					diff(field, have, want)
					return
				}
			}
		}
		qos("ingress-qos-map", l.VLAN.IngressQoS, v.IngressQoS)
		qos("egress-qos-map", l.VLAN.EgressQoS, v.EgressQoS)
	case *IPVlan:
		if l.IPVlan == nil {
			return []string{"mode: not reported by the kernel"}
		}
		want := v.Mode
		if want == IPVlanModeUnset {
			want = IPVlanModeL3
		}
		if l.IPVlan.Mode != want {
			diff("mode", l.IPVlan.Mode, want)
		}
		wantFlag := v.Flag
		if wantFlag == IPVlanFlagUnset {
			wantFlag = IPVlanFlagBridge
		}
		have := IPVlanFlagBridge
		if l.IPVlan.Flag != nil {
			have = *l.IPVlan.Flag
		}
		if have != wantFlag {
			diff("flag", have, wantFlag)
		}
	}
	return d
}
