package link

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vmlink/vmlink/rtnl"
)

// MaxVLANID is the highest VLAN id a link may use: 4095 is reserved, and
// the kernel refuses it with ERANGE.
const MaxVLANID = 4094

// SplitVLANName splits a name in the "X.N" convention (docker's
// `-o parent=eth0.10`, `ip link add eth0.10 …`) into the lower X and the
// VLAN id N; ok is false when name does not follow it.
func SplitVLANName(name string) (lower string, id uint16, ok bool) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 16)
	if err != nil || n > MaxVLANID {
		return "", 0, false
	}
	return name[:i], uint16(n), true
}

// VLAN flags (IFLA_VLAN_FLAGS bits), as the kernel numbers them.
const (
	VLANFlagReorderHdr    = rtnl.VLANFlagReorderHdr
	VLANFlagGVRP          = rtnl.VLANFlagGVRP
	VLANFlagLooseBinding  = rtnl.VLANFlagLooseBinding
	VLANFlagMVRP          = rtnl.VLANFlagMVRP
	VLANFlagBridgeBinding = rtnl.VLANFlagBridgeBinding
)

// vlanFlagNames are the flags in iproute2's print order with its names.
var vlanFlagNames = []struct {
	bit  uint32
	name string
}{
	{VLANFlagReorderHdr, "REORDER_HDR"},
	{VLANFlagGVRP, "GVRP"},
	{VLANFlagMVRP, "MVRP"},
	{VLANFlagLooseBinding, "LOOSE_BINDING"},
	{VLANFlagBridgeBinding, "BRIDGE_BINDING"},
}

// QoSMapping is one `FROM:TO` pair of an ingress or egress QoS map.
// Ingress maps a received frame's VLAN priority (FROM, 0–7) to the skb
// priority (TO); egress maps an skb priority (FROM) to the VLAN priority
// put in the tag (TO, 0–7).
type QoSMapping struct {
	From uint32 `json:"from"`
	To   uint32 `json:"to"`
}

// VLANFlags are the optional VLAN flags; nil leaves the kernel's default
// (reorder_hdr on, the rest off). They mirror `reorder_hdr`, `gvrp`,
// `mvrp`, `loose_binding` and `bridge_binding` { on | off }.
type VLANFlags struct {
	ReorderHdr    *bool
	GVRP          *bool
	MVRP          *bool
	LooseBinding  *bool
	BridgeBinding *bool
}

// FlagsMask returns the IFLA_VLAN_FLAGS value and mask the set fields make.
func (f VLANFlags) FlagsMask() (flags, mask uint32) {
	set := func(p *bool, bit uint32) {
		if p == nil {
			return
		}
		mask |= bit
		if *p {
			flags |= bit
		}
	}
	set(f.ReorderHdr, VLANFlagReorderHdr)
	set(f.GVRP, VLANFlagGVRP)
	set(f.MVRP, VLANFlagMVRP)
	set(f.LooseBinding, VLANFlagLooseBinding)
	set(f.BridgeBinding, VLANFlagBridgeBinding)
	return flags, mask
}

// VLAN is an 802.1Q or 802.1ad VLAN link on Parent:
// `ip link add NAME link PARENT type vlan id ID …`.
type VLAN struct {
	Common
	// ID is the VLAN id, 0–4094. 0 carries only priority-tagged frames;
	// the CLI requires `id` so a forgotten id never means VLAN 0.
	ID uint16
	// Protocol is the tag's TPID; unset means 802.1Q.
	Protocol VLANProtocol
	VLANFlags
	// IngressQoS and EgressQoS are `ingress-qos-map` / `egress-qos-map`.
	IngressQoS []QoSMapping
	EgressQoS  []QoSMapping
}

// Kind implements Spec.
func (*VLAN) Kind() string { return "vlan" }

func (*VLAN) needsParent() bool { return true }

// Validate implements Spec.
func (v *VLAN) Validate() error {
	if err := v.Common.validate("vlan", true); err != nil {
		return err
	}
	if v.ID > MaxVLANID {
		return fieldErr("vlan", v.Name, "id", strconv.Itoa(int(v.ID)), fmt.Sprintf("VLAN ids run from 0 to %d (4095 is reserved)", MaxVLANID))
	}
	if v.Protocol != VLANProtocolUnset && !v.Protocol.Valid() {
		return fieldErr("vlan", v.Name, "protocol", v.Protocol.String(), "unknown VLAN protocol: use 802.1Q or 802.1ad")
	}
	return validateQoS(v.Name, v.IngressQoS, v.EgressQoS)
}

// validateQoS checks that the VLAN-priority side of each mapping is 0–7:
// the kernel masks larger values silently, which would map a different
// priority than the one written.
func validateQoS(name string, ingress, egress []QoSMapping) error {
	for _, m := range ingress {
		if m.From > 7 {
			return fieldErr("vlan", name, "ingress-qos-map", fmt.Sprintf("%d:%d", m.From, m.To), "FROM is a VLAN priority, 0 to 7")
		}
	}
	for _, m := range egress {
		if m.To > 7 {
			return fieldErr("vlan", name, "egress-qos-map", fmt.Sprintf("%d:%d", m.From, m.To), "TO is a VLAN priority, 0 to 7")
		}
	}
	return nil
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

// vlanLinkInfo builds IFLA_LINKINFO creating v.
func vlanLinkInfo(v *VLAN) *rtnl.LinkInfo {
	id := v.ID
	d := vlanData(v.VLANFlags, v.IngressQoS, v.EgressQoS)
	d.ID = &id
	if v.Protocol != VLANProtocolUnset {
		// Unset leaves the kernel's default, 802.1Q, as ip does.
		p := v.Protocol
		d.Protocol = &p
	}
	return &rtnl.LinkInfo{Kind: "vlan", Data: d}
}

// vlanChangeInfo builds IFLA_LINKINFO changing a VLAN link.
func vlanChangeInfo(c *VLANChange) *rtnl.LinkInfo {
	return &rtnl.LinkInfo{Kind: "vlan", Data: vlanData(c.VLANFlags, c.IngressQoS, c.EgressQoS)}
}

// vlanInfo is the VLANInfo of a kernel's IFLA_INFO_DATA.
func vlanInfo(d *rtnl.VLAN) (*VLANInfo, error) {
	if d.ID == nil {
		return nil, fmt.Errorf("vlan link without IFLA_VLAN_ID")
	}
	v := &VLANInfo{ID: *d.ID, Protocol: VLAN8021Q}
	if d.Protocol != nil {
		v.Protocol = *d.Protocol
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
	return v, nil
}

// compareVLAN lists how a VLAN link differs from v.
func compareVLAN(v *VLAN, l *Link) []string {
	if l.VLAN == nil {
		return []string{"id: not reported by the kernel"}
	}
	var d diffs
	if l.VLAN.ID != v.ID {
		d.add("id", l.VLAN.ID, v.ID)
	}
	want := v.Protocol
	if want == VLANProtocolUnset {
		want = VLAN8021Q
	}
	if l.VLAN.Protocol != want {
		d.add("protocol", l.VLAN.Protocol, want)
	}
	if flags, mask := v.FlagsMask(); mask != 0 && l.VLAN.Flags&mask != flags {
		d.add("flags", vlanFlagNamesOf(l.VLAN.Flags&mask), vlanFlagNamesOf(flags))
	}
	// The kernel reports only mappings to a non-zero priority (a mapping
	// to 0 clears an entry), so compare those.
	qos := func(field string, have, want []QoSMapping) {
		for _, m := range want {
			if m.To != 0 && !slices.Contains(have, m) {
				d.add(field, have, want)
				return
			}
		}
	}
	qos("ingress-qos-map", l.VLAN.IngressQoS, v.IngressQoS)
	qos("egress-qos-map", l.VLAN.EgressQoS, v.EgressQoS)
	return d
}
