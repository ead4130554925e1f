//go:build vm

package cni_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/testenv"
)

// TestDifferentialIPVlanVLAN is TestDifferentialMacvlan for the kinds
// this machine's kernel lacks: ipvlan l2/l3/l3s and vlan against
// Debian's ipvlan and vlan plugins. Run in the VM with the reference
// plugins copied in:
//
//	make test-vm KERNEL=6.1 VM_PKGS=./cni/ VM_GOFLAGS='-count=1 -run VM' \
//	  VMTEST_ARGS='--bin /usr/lib/cni/ipvlan --bin /usr/lib/cni/vlan --bin /usr/lib/cni/host-local'
func TestDifferentialIPVlanVLANVM(t *testing.T) {
	testenv.Require(t, testenv.FeatureIPVlan, testenv.FeatureVLAN)
	l := newLab(t)
	testenv.NewParent(t, testenv.ParentOptions{Host: l.host, Name: "p1"})
	cases := []struct {
		ref string
		dc  diffCase
	}{
		{"ipvlan", diffCase{name: "ipvlan l2 (default)", version: "1.0.0", extra: map[string]any{"kind": "ipvlan", "mode": nil}}},
		{"ipvlan", diffCase{name: "ipvlan l2", version: "0.3.1", extra: map[string]any{"kind": "ipvlan", "mode": "l2"}}},
		{"ipvlan", diffCase{name: "ipvlan l3", version: "1.0.0", extra: map[string]any{"kind": "ipvlan", "mode": "l3"}}},
		{"ipvlan", diffCase{name: "ipvlan l3s", version: "1.0.0", extra: map[string]any{"kind": "ipvlan", "mode": "l3s"}}},
		{"ipvlan", diffCase{name: "ipvlan mtu", version: "1.0.0", extra: map[string]any{"kind": "ipvlan", "mode": "l2", "mtu": 1400}}},
		{"vlan", diffCase{name: "vlan 100", version: "1.0.0", extra: map[string]any{"kind": "vlan", "mode": nil, "vlanId": 100}}},
		{"vlan", diffCase{name: "vlan 4094 mtu", version: "0.4.0", extra: map[string]any{"kind": "vlan", "mode": nil, "vlanId": 4094, "mtu": 1400}}},
		{"ipvlan", diffCase{name: "ipvlan l2 dual-stack", version: "1.0.0", extra: map[string]any{"kind": "ipvlan", "mode": "l2", "ipam": dualStackIPAM}}},
		{"vlan", diffCase{name: "vlan dual-stack", version: "1.0.0", extra: map[string]any{"kind": "vlan", "mode": nil, "vlanId": 101, "ipam": dualStackIPAM}}},
	}
	for i, cs := range cases {
		t.Run(cs.dc.name, func(t *testing.T) { l.diff(t, cs.ref, fmt.Sprintf("vmdiff%d", i), cs.dc) })
	}
}

// TestVLANInContainerVM: Debian's 1.1.1 vlan plugin lacks linkInContainer;
// vmlink's gives a VLAN of the container's own master, 802.1ad too.
func TestVLANInContainerVM(t *testing.T) {
	testenv.Require(t, testenv.FeatureVLAN)
	l := newLab(t)
	for i, proto := range []string{"802.1Q", "802.1ad"} {
		t.Run(proto, func(t *testing.T) {
			c := testenv.NewNetNS(t)
			c.Run(t, "ip", "link", "add", "cm0", "type", "veth", "peer", "name", "cm1")
			c.SetUp(t, "cm0", "cm1")
			conf := tutorialConf(t, "vmlink", "1.0.0", l.ipam, map[string]any{"kind": "vlan", "mode": nil, "vlanId": 42,
				"protocol": proto, "master": "cm0", "linkInContainer": true})
			id := fmt.Sprintf("vlic%d", i)
			if r := l.vmlink(t, "ADD", id, c, conf); r.code != 0 {
				t.Fatalf("ADD: exit %d: %s", r.code, r.stdout)
			}
			lk := ipJSON(t, c, "-d", "link", "show", "eth0")[0]
			d := lk["linkinfo"].(map[string]any)["info_data"].(map[string]any)
			if msg := expect(lk["link"], "cm0") + expect(d["id"], 42.0) + expect(d["protocol"], proto); msg != "" {
				t.Errorf("%s; link %v", msg, lk)
			}
			if r := l.vmlink(t, "DEL", id, c, conf); r.code != 0 {
				t.Errorf("DEL: exit %d: %s", r.code, r.stdout)
			}
		})
	}
}

// TestCheckVLANIDVM: CHECK of a vlan attachment passes right after ADD
// (its frames carry the tag on the master) and fails, naming the id, once
// the interface is a VLAN of another id.
func TestCheckVLANIDVM(t *testing.T) {
	testenv.Require(t, testenv.FeatureVLAN)
	l := newLab(t)
	conf := tutorialConf(t, "vmlink", "1.0.0", l.ipam, map[string]any{"kind": "vlan", "mode": nil, "vlanId": 100})
	a := l.add(t, "vlanchk", conf)
	if r := l.check(t, a); r.code != 0 {
		t.Fatalf("CHECK right after ADD: exit %d: %s", r.code, r.stdout)
	}
	a.c.Run(t, "ip", "link", "del", "eth0")
	l.host.Run(t, "ip", "link", "add", "v200", "link", "p0", "netns", a.c.Name(), "type", "vlan", "id", "200")
	a.c.Run(t, "ip", "link", "set", "v200", "name", "eth0", "up")
	r := l.check(t, a)
	if e := r.err(t); r.code == 0 || e.Code != 100 || !strings.Contains(e.Details, "id: have 200, want 100") {
		t.Errorf("CHECK after the VLAN id changed: exit %d: %+v", r.code, e)
	}
}
