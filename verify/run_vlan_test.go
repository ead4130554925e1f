package verify

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/testenv"
	"github.com/vmlink/vmlink/verify/capture"
)

// TestModelMatchesKernelVLAN checks the VLAN half of the model on a kernel
// with 8021q (the VM tier): a parent on a VLAN-aware switch (trunk 10, 20),
// a VLAN link h0.10 with an address, two bridge macvlans on h0.10, a VEPA
// macvlan on h0.20 in the same IP subnet (so only the tag keeps it apart),
// and one access station per VLAN, with hairpin off and on. Every cell must
// be the model's and every check must pass: in particular vlan-tags (every
// frame from the VLAN side carries 802.1Q 10 or 20 on the parent, none
// leaks untagged).
func TestModelMatchesKernelVLAN(t *testing.T) {
	testenv.Require(t, testenv.FeatureVLAN, testenv.FeatureMacvlan, testenv.FeatureBridgeVLAN, testenv.FeatureIPRoute2)
	hostAddr := netip.MustParsePrefix("10.70.0.1/24")
	p := testenv.NewVLANSwitch(t, testenv.VLANSwitchOptions{
		Parent: testenv.ParentOptions{Name: "h0", MAC: hw("02:00:00:00:01:01"), Addrs: []netip.Prefix{hostAddr}},
		Trunk:  []uint16{10, 20},
		// Untagged frames (the reflection probe's, the host's) travel in
		// a native VLAN of their own.
		Native: 99,
	})
	quietIPv6(t, p.Host)
	pfx := func(last byte) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 10, 0, last}), 24) }
	v := func(id uint16) []VLANTag { return []VLANTag{{ID: id, Protocol: 0x8100}} }

	host := p.Host
	host.Run(t, "ip", "link", "add", "link", "h0", "name", "h0.10", "type", "vlan", "id", "10")
	host.Run(t, "ip", "link", "add", "link", "h0", "name", "h0.20", "type", "vlan", "id", "20")
	host.Run(t, "ip", "addr", "add", pfx(1).String(), "dev", "h0.10")
	host.Run(t, "ip", "link", "set", "h0.10", "up")
	host.Run(t, "ip", "link", "set", "h0.20", "up")

	eps := []Endpoint{{Name: "h0.10", NetNS: host.Name(), Interface: "h0.10", Kind: KindVLAN, VLANs: v(10), Addrs: []netip.Prefix{pfx(1)}}}
	child := func(i int, lower string, vid uint16, mode string) {
		ns := testenv.NewEndpoint(t)
		quietIPv6(t, ns.NetNS)
		name := fmt.Sprintf("m%d", i)
		mac := fmt.Sprintf("02:00:00:00:02:%02x", i)
		host.Run(t, "ip", "link", "add", name, "link", lower, "address", mac, "type", "macvlan", "mode", mode)
		host.Run(t, "ip", "link", "set", name, "netns", ns.Name())
		ns.Run(t, "ip", "addr", "add", pfx(byte(10+i)).String(), "dev", name)
		ns.Run(t, "ip", "link", "set", name, "up")
		eps = append(eps, Endpoint{Name: name, NetNS: ns.Name(), Interface: name, Kind: KindMacvlan, Mode: mode,
			Lower: lower, VLANs: v(vid), MAC: hw(mac), Addrs: []netip.Prefix{pfx(byte(10 + i))}})
	}
	child(1, "h0.10", 10, "bridge")
	child(2, "h0.10", 10, "bridge")
	child(3, "h0.20", 20, "vepa")
	for _, st := range []struct {
		vid  uint16
		last byte
	}{{10, 99}, {20, 98}} {
		e := p.Switch.Attach(t, testenv.EndpointOptions{PVID: st.vid, Addrs: []netip.Prefix{pfx(st.last)}})
		quietIPv6(t, e.NetNS)
		eps = append(eps, Endpoint{Name: fmt.Sprintf("station%d", st.vid), NetNS: e.Name(), Interface: e.Interface,
			Kind: KindOutside, VLANs: v(st.vid), MAC: e.MAC, Addrs: []netip.Prefix{pfx(st.last)}})
	}
	topo := Topology{
		Parent:    Parent{Name: "h0", NetNS: host.Name(), MAC: p.MAC, Addrs: []netip.Prefix{hostAddr}},
		Switch:    Switch{VLANs: []uint16{10, 20}},
		Endpoints: eps,
	}

	for _, reflect := range []bool{false, true} {
		t.Run(map[bool]string{true: "reflect", false: "noreflect"}[reflect], func(t *testing.T) {
			if err := p.Switch.SetHairpin(reflect); err != nil {
				t.Fatal(err)
			}
			var frames []*capture.Frame
			rep, bad := runAgainstModel(t, topo, &frames)
			if rep.SwitchReflects != reflect {
				t.Errorf("detected reflection %v with hairpin %v: %s", rep.SwitchReflects, reflect, rep.ReflectDetail)
			}
			for _, p := range bad {
				t.Errorf("%s → %s: kernel %s, model %s (%s); probe: %s; %s", p.From, p.To, p.Observed, p.Expected, p.Why, p.Probe, p.Evidence)
			}
			var tags bool
			for _, c := range rep.Checks {
				if !c.OK {
					t.Errorf("check %s failed: %s", c.Name, c.Detail)
				}
				if c.Name == CheckVLANTags && c.OK && !c.Skipped && strings.Contains(c.Detail, "802.1Q 10") {
					tags = true
				}
			}
			if !tags {
				t.Errorf("vlan-tags did not account for VLAN 10 frames: %+v", rep.Checks)
			}
			if t.Failed() {
				var b strings.Builder
				_ = rep.WriteTable(&b)
				t.Log("\n" + b.String())
				for _, f := range frames {
					t.Logf("%s %s %s", f.Time.Format("05.000000"), f.Dir, f.Summary())
				}
			}
		})
	}
}
