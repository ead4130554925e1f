//go:build vm

package cni_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
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

// TestCheckVLANInContainerVM: CHECK of a vlan attachment on the
// container's own master (linkInContainer) runs its wire part in the
// container's namespace: it passes with the master's address to probe
// from, and fails naming the id once the interface is a VLAN of another.
func TestCheckVLANInContainerVM(t *testing.T) {
	testenv.Require(t, testenv.FeatureVLAN)
	l := newLab(t)
	c := testenv.NewNetNS(t)
	sw := testenv.NewNetNS(t)
	c.Run(t, "ip", "link", "add", "cm0", "type", "veth", "peer", "name", "cm1", "netns", sw.Name())
	c.SetUp(t, "cm0")
	sw.SetUp(t, "cm1")
	c.AddAddr(t, "cm0", netip.MustParsePrefix("172.16.124.1/24"))
	conf := tutorialConf(t, "vmlink", "1.0.0", l.ipam, map[string]any{"kind": "vlan", "mode": nil, "vlanId": 42,
		"master": "cm0", "linkInContainer": true})
	r := l.vmlink(t, "ADD", "vlicchk", c, conf)
	if r.code != 0 {
		t.Fatalf("ADD: exit %d: %s", r.code, r.stdout)
	}
	t.Cleanup(func() { l.vmlink(t, "DEL", "vlicchk", c, conf) })
	a := &attachment{c: c, id: "vlicchk", conf: conf}
	if err := json.Unmarshal(r.stdout, &a.result); err != nil {
		t.Fatal(err)
	}
	r = l.check(t, a)
	if r.code != 0 {
		t.Fatalf("CHECK right after ADD: exit %d: %s", r.code, r.stdout)
	}
	if strings.Contains(r.stderr, "not proven") {
		t.Errorf("CHECK did not prove the wire: %s", r.stderr)
	}
	c.Run(t, "ip", "link", "del", "eth0")
	c.Run(t, "ip", "link", "add", "link", "cm0", "name", "eth0", "type", "vlan", "id", "43")
	c.Run(t, "ip", "link", "set", "eth0", "up")
	r = l.check(t, a)
	if e := r.err(t); r.code == 0 || e.Code != 100 || !strings.Contains(e.Details, "id: have 43, want 42") {
		t.Errorf("CHECK after the VLAN id changed: exit %d: %+v", r.code, e)
	}
}
