package link

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

func TestVLANKindInfo(t *testing.T) {
	p := func(v rtnl.VLANProtocol) *rtnl.VLANProtocol { return &v }
	id := func(v uint16) *uint16 { return &v }
	tests := []struct {
		name string
		spec *VLAN
		want *rtnl.VLAN
	}{
		{"id only: no protocol, no flags", &VLAN{ID: 10}, &rtnl.VLAN{ID: id(10)}},
		{"id 0 is sent", &VLAN{ID: 0}, &rtnl.VLAN{ID: id(0)}},
		{"802.1ad", &VLAN{ID: 100, Protocol: VLAN8021AD}, &rtnl.VLAN{ID: id(100), Protocol: p(rtnl.VLANProtocol8021AD)}},
		{"flags: only the given bits in the mask", &VLAN{ID: 1, VLANFlags: VLANFlags{ReorderHdr: ptr(false), LooseBinding: ptr(true)}},
			&rtnl.VLAN{ID: id(1), Flags: &rtnl.VLANFlags{Flags: rtnl.VLANFlagLooseBinding, Mask: rtnl.VLANFlagReorderHdr | rtnl.VLANFlagLooseBinding}}},
		{"qos maps", &VLAN{ID: 2, IngressQoS: []QoSMapping{{1, 2}}, EgressQoS: []QoSMapping{{3, 4}, {5, 6}}},
			&rtnl.VLAN{ID: id(2), IngressQoS: []rtnl.VLANQoSMapping{{From: 1, To: 2}}, EgressQoS: []rtnl.VLANQoSMapping{{From: 3, To: 4}, {From: 5, To: 6}}}},
	}
	for _, tc := range tests {
		info, err := kindInfo(tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if info.Kind != "vlan" || !reflect.DeepEqual(info.Data, tc.want) {
			t.Errorf("%s: kind %q data %#v, want %#v", tc.name, info.Kind, info.Data, tc.want)
		}
	}
}

func TestIPVlanKindInfo(t *testing.T) {
	m := func(v rtnl.IPVlanMode) *rtnl.IPVlanMode { return &v }
	f := func(v rtnl.IPVlanFlags) *rtnl.IPVlanFlags { return &v }
	tests := []struct {
		spec *IPVlan
		want *rtnl.IPVlan // nil: the kind alone
	}{
		{&IPVlan{}, nil},
		{&IPVlan{Mode: IPVlanModeL2}, &rtnl.IPVlan{Mode: m(rtnl.IPVlanModeL2), Flags: f(rtnl.IPVlanFlagBridge)}},
		{&IPVlan{Mode: IPVlanModeL3, Flag: IPVlanFlagPrivate}, &rtnl.IPVlan{Mode: m(rtnl.IPVlanModeL3), Flags: f(rtnl.IPVlanFlagPrivate)}},
		{&IPVlan{Mode: IPVlanModeL3S, Flag: IPVlanFlagVEPA}, &rtnl.IPVlan{Mode: m(rtnl.IPVlanModeL3S), Flags: f(rtnl.IPVlanFlagVEPA)}},
		{&IPVlan{Flag: IPVlanFlagBridge}, &rtnl.IPVlan{Flags: f(rtnl.IPVlanFlagBridge)}},
	}
	for _, tc := range tests {
		info, err := kindInfo(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if tc.want == nil {
			if info.Data != nil {
				t.Errorf("%+v: data %#v, want none (the kind alone, as ip sends)", tc.spec, info.Data)
			}
			continue
		}
		if !reflect.DeepEqual(info.Data, tc.want) {
			t.Errorf("%+v: data %#v, want %#v", tc.spec, info.Data, tc.want)
		}
	}
}

func TestIPVlanChangeKeepsFlag(t *testing.T) {
	private := IPVlanFlagPrivate
	cur := &Link{Kind: "ipvlan", IPVlan: &IPVlanInfo{Mode: IPVlanModeL3, Flag: &private}}
	info, err := changeInfo(cur, &Change{IPVlan: &IPVlanChange{Mode: IPVlanModeL2}})
	if err != nil {
		t.Fatal(err)
	}
	d := info.Data.(*rtnl.IPVlan)
	if d.Mode == nil || *d.Mode != rtnl.IPVlanModeL2 || d.Flags == nil || *d.Flags != rtnl.IPVlanFlagPrivate {
		t.Errorf("mode change sends %+v, want l2 and the link's private flag", d)
	}
	info, _ = changeInfo(cur, &Change{IPVlan: &IPVlanChange{Flag: IPVlanFlagVEPA}})
	if d := info.Data.(*rtnl.IPVlan); d.Mode != nil || *d.Flags != rtnl.IPVlanFlagVEPA {
		t.Errorf("flag change sends %+v, want vepa alone", d)
	}
}

func TestDecodeVLANKinds(t *testing.T) {
	id := uint16(7)
	proto := rtnl.VLANProtocol8021AD
	l := &Link{}
	if err := decodeKind(l, &rtnl.LinkInfo{Kind: "vlan", Data: &rtnl.VLAN{ID: &id, Protocol: &proto,
		Flags:     &rtnl.VLANFlags{Flags: rtnl.VLANFlagReorderHdr | rtnl.VLANFlagMVRP, Mask: ^uint32(0)},
		EgressQoS: []rtnl.VLANQoSMapping{{From: 1, To: 5}}}}); err != nil {
		t.Fatal(err)
	}
	want := &VLANInfo{ID: 7, Protocol: VLAN8021AD, Flags: VLANFlagReorderHdr | VLANFlagMVRP, HasFlags: true, EgressQoS: []QoSMapping{{1, 5}}}
	if !reflect.DeepEqual(l.VLAN, want) {
		t.Errorf("decoded %+v, want %+v", l.VLAN, want)
	}
	if err := decodeKind(&Link{}, &rtnl.LinkInfo{Kind: "vlan", Data: &rtnl.VLAN{}}); err == nil {
		t.Error("a VLAN without an id decoded without error")
	}

	mode, flags := rtnl.IPVlanModeL2, rtnl.IPVlanFlagVEPA
	l = &Link{Kind: "ipvlan"}
	if err := decodeKind(l, &rtnl.LinkInfo{Kind: "ipvlan", Data: &rtnl.IPVlan{Mode: &mode, Flags: &flags}}); err != nil {
		t.Fatal(err)
	}
	if l.IPVlan == nil || l.IPVlan.Mode != IPVlanModeL2 || l.IPVlan.Flag == nil || *l.IPVlan.Flag != IPVlanFlagVEPA {
		t.Errorf("decoded ipvlan %+v", l.IPVlan)
	}
	if d := l.Describe().LinkInfo.InfoData.(*IPVlanData); d.Mode != "l2" || !d.VEPA || d.Private || d.Bridge {
		t.Errorf("described ipvlan %+v, want mode l2 and vepa", d)
	}
}

func TestCompareVLANKinds(t *testing.T) {
	have := &Link{Kind: "vlan", VLAN: &VLANInfo{ID: 10, Protocol: VLAN8021Q, Flags: VLANFlagReorderHdr, HasFlags: true,
		IngressQoS: []QoSMapping{{1, 2}}}}
	if d := compareKind(&VLAN{ID: 10, VLANFlags: VLANFlags{ReorderHdr: ptr(true)}, IngressQoS: []QoSMapping{{1, 2}, {3, 0}}}, have); len(d) != 0 {
		t.Errorf("same VLAN differs: %q", d)
	}
	d := compareKind(&VLAN{ID: 11, Protocol: VLAN8021AD, VLANFlags: VLANFlags{GVRP: ptr(true)}, EgressQoS: []QoSMapping{{1, 1}}}, have)
	if len(d) != 4 || !strings.HasPrefix(d[0], "id: have 10, want 11") || !strings.HasPrefix(d[1], "protocol") ||
		!strings.HasPrefix(d[2], "flags") || !strings.HasPrefix(d[3], "egress-qos-map") {
		t.Errorf("differences %q, want id, protocol, flags and egress-qos-map", d)
	}
	bridge := IPVlanFlagBridge
	ipl := &Link{Kind: "ipvlan", IPVlan: &IPVlanInfo{Mode: IPVlanModeL3, Flag: &bridge}}
	if d := compareKind(&IPVlan{}, ipl); len(d) != 0 {
		t.Errorf("defaults (l3 bridge) differ: %q", d)
	}
	if d := compareKind(&IPVlan{Mode: IPVlanModeL2, Flag: IPVlanFlagPrivate}, ipl); len(d) != 2 {
		t.Errorf("differences %q, want mode and flag", d)
	}
}

// TestIntegrationVLAN runs in the VM tier (this machine's kernel has no
// 8021q): create, describe, ensure, change and refuse VLAN links.
func TestIntegrationVLAN(t *testing.T) {
	n := newNS(t)
	n.veth(t, "p0", "p1")
	requireKind(t, "vlan")
	h := n.handle(t)
	ctx := testCtx(t)

	l, err := h.Create(ctx, &VLAN{Common: Common{Name: "p0.10", Parent: "p0"}, ID: 10})
	if err != nil {
		t.Fatal(err)
	}
	if l.VLAN == nil || l.VLAN.ID != 10 || l.VLAN.Protocol != VLAN8021Q || l.VLAN.Flags != VLANFlagReorderHdr || l.Parent != "p0" {
		t.Errorf("created %+v (vlan %+v)", l, l.VLAN)
	}
	checkDescribe(t, n, h, "p0.10")

	q := &VLAN{Common: Common{Name: "q100", Parent: "p0"}, ID: 100, Protocol: VLAN8021AD,
		VLANFlags:  VLANFlags{ReorderHdr: ptr(false), LooseBinding: ptr(true), BridgeBinding: ptr(true)},
		IngressQoS: []QoSMapping{{1, 2}, {7, 7}}, EgressQoS: []QoSMapping{{3, 4}}}
	if _, err := h.Create(ctx, q); err != nil {
		t.Fatal(err)
	}
	checkDescribe(t, n, h, "q100")
	ipj := n.ipShow(t, "q100")
	if data := ipj["linkinfo"].(map[string]any)["info_data"].(map[string]any); data["protocol"] != "802.1ad" || data["id"] != 100.0 {
		t.Errorf("ip sees %v", data)
	}
	// QinQ: an 802.1Q VLAN on the 802.1ad one.
	if _, err := h.Create(ctx, &VLAN{Common: Common{Name: "q100.10", Parent: "q100"}, ID: 10}); err != nil {
		t.Fatal(err)
	}
	checkDescribe(t, n, h, "q100.10")

	// Ensure adopts the same link and refuses a different one.
	if _, created, err := h.Ensure(ctx, q); err != nil || created {
		t.Errorf("Ensure of the existing q100: created %v, %v", created, err)
	}
	var me *MismatchError
	_, _, err = h.Ensure(ctx, &VLAN{Common: Common{Name: "q100", Parent: "p0"}, ID: 101})
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "id: have 100, want 101") || !strings.Contains(err.Error(), "protocol: have 802.1ad, want 802.1Q") {
		t.Errorf("Ensure of a different VLAN: %v", err)
	}

	// Change flags and maps.
	if err := h.Set(ctx, "p0.10", Change{VLAN: &VLANChange{VLANFlags: VLANFlags{ReorderHdr: ptr(false), GVRP: ptr(true)},
		EgressQoS: []QoSMapping{{2, 3}}, IngressQoS: []QoSMapping{{4, 5}}}}); err != nil {
		t.Fatal(err)
	}
	l, err = h.Get(ctx, "p0.10")
	if err != nil {
		t.Fatal(err)
	}
	if l.VLAN.Flags != VLANFlagGVRP || !reflect.DeepEqual(l.VLAN.EgressQoS, []QoSMapping{{2, 3}}) || !reflect.DeepEqual(l.VLAN.IngressQoS, []QoSMapping{{4, 5}}) {
		t.Errorf("after Set: %+v", l.VLAN)
	}
	checkDescribe(t, n, h, "p0.10")

	// The kernel's refusals, with errno and hint.
	_, err = h.Create(ctx, &VLAN{Common: Common{Name: "dup10", Parent: "p0"}, ID: 10})
	var oe *rtnl.OpError
	if !errors.Is(err, unix.EEXIST) || !errors.As(err, &oe) || !strings.Contains(oe.Hint, "already has a VLAN link with this id") {
		t.Errorf("duplicate VLAN id: %v", err)
	} else {
		t.Logf("duplicate VLAN id: %v", err)
	}
	// The same id with the other protocol is another VLAN.
	if _, err := h.Create(ctx, &VLAN{Common: Common{Name: "ad10", Parent: "p0"}, ID: 10, Protocol: VLAN8021AD}); err != nil {
		t.Errorf("VLAN 10 802.1ad next to VLAN 10 802.1Q: %v", err)
	}

	// Validation refuses before the kernel sees anything.
	var fe *FieldError
	before := n.links(t)
	for _, s := range []*VLAN{
		{Common: Common{Name: "v4095", Parent: "p0"}, ID: 4095},
		{Common: Common{Name: "vbad", Parent: "p0"}, ID: 5, Protocol: 0x0081},
		{Common: Common{Name: "vqos", Parent: "p0"}, ID: 5, EgressQoS: []QoSMapping{{1, 9}}},
		{Common: Common{Name: "vlo", Parent: "lo"}, ID: 5},
	} {
		if _, err := h.Create(ctx, s); err == nil {
			t.Errorf("%s: created", s.Name)
		} else if s.Parent != "lo" && !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a FieldError", s.Name, err)
		}
	}
	if after := n.links(t); !reflect.DeepEqual(before, after) {
		t.Errorf("refused creates changed the links: %v → %v", before, after)
	}
	if err := h.Delete(ctx, "q100"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get(ctx, "q100.10"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("q100.10 after deleting its parent: %v, want ENODEV", err)
	}
}

// TestIntegrationIPVlan runs in the VM tier (no ipvlan here).
func TestIntegrationIPVlan(t *testing.T) {
	n := newNS(t)
	n.veth(t, "p0", "p1")
	n.veth(t, "p2", "p3")
	requireKind(t, "ipvlan")
	h := n.handle(t)
	ctx := testCtx(t)

	l, err := h.Create(ctx, &IPVlan{Common: Common{Name: "ipv0", Parent: "p0"}, Mode: IPVlanModeL3, Flag: IPVlanFlagPrivate})
	if err != nil {
		t.Fatal(err)
	}
	if l.IPVlan == nil || l.IPVlan.Mode != IPVlanModeL3 || l.IPVlan.Flag == nil || *l.IPVlan.Flag != IPVlanFlagPrivate {
		t.Errorf("created %+v", l.IPVlan)
	}
	checkDescribe(t, n, h, "ipv0")

	// A mode change keeps the flag (ip's would reset it to bridge).
	if err := h.Set(ctx, "ipv0", Change{IPVlan: &IPVlanChange{Mode: IPVlanModeL2}}); err != nil {
		t.Fatal(err)
	}
	if l, err = h.Get(ctx, "ipv0"); err != nil || l.IPVlan.Mode != IPVlanModeL2 || *l.IPVlan.Flag != IPVlanFlagPrivate {
		t.Errorf("after mode l2: %+v, %v; want l2 private", l.IPVlan, err)
	}
	if err := h.Set(ctx, "ipv0", Change{IPVlan: &IPVlanChange{Flag: IPVlanFlagVEPA}}); err != nil {
		t.Fatal(err)
	}
	checkDescribe(t, n, h, "ipv0")

	// The defaults: l3, bridge.
	if l, err = h.Create(ctx, &IPVlan{Common: Common{Name: "ipv9", Parent: "p2"}}); err != nil {
		t.Fatal(err)
	}
	if l.IPVlan.Mode != IPVlanModeL3 || *l.IPVlan.Flag != IPVlanFlagBridge {
		t.Errorf("defaults: %+v, want l3 bridge", l.IPVlan)
	}

	// Mode and flags belong to the parent: a second ipvlan link on p0
	// with another mode switches its sibling too.
	if _, err := h.Create(ctx, &IPVlan{Common: Common{Name: "ipv1", Parent: "p0"}, Mode: IPVlanModeL3S}); err != nil {
		t.Fatal(err)
	}
	l, err = h.Get(ctx, "ipv0")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ipv0 after creating ipv1 mode l3s on the same parent: mode %v flag %v", l.IPVlan.Mode, *l.IPVlan.Flag)
	if l.IPVlan.Mode != IPVlanModeL3S {
		t.Errorf("ipv0's mode %v: the kernel keeps one mode per parent, want l3s", l.IPVlan.Mode)
	}

	var fe *FieldError
	if _, err := h.Create(ctx, &IPVlan{Common: Common{Name: "ipv2", Parent: "p0"}, Mode: 7}); !errors.As(err, &fe) || fe.Field != "mode" {
		t.Errorf("mode 7: %v, want a FieldError on mode", err)
	}
	if _, err := h.Create(ctx, &IPVlan{Common: Common{Name: "ipv2", Parent: "p0"}, Flag: 9}); !errors.As(err, &fe) || fe.Field != "flag" {
		t.Errorf("flag 9: %v, want a FieldError on flag", err)
	}
}
