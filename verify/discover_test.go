package verify

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv"
	"github.com/vmlink/vmlink/verify/capture"
)

// TestDiscover builds h0 with a bridge macvlan and a source macvlan moved
// into namespaces of their own and a vepa macvlan left beside h0, and checks
// that Discover finds all three with mode, MAC, addresses and source list.
func TestDiscover(t *testing.T) {
	l := newKernelLab(t)
	a := l.addChild(t, 1, "bridge")
	b := l.addChild(t, 2, "source")
	host := l.p.Host
	host.Run(t, "ip", "link", "add", "c3", "link", "h0", "address", l.childMAC(3).String(), "type", "macvlan", "mode", "vepa")
	host.Run(t, "ip", "addr", "add", "10.77.0.13/24", "dev", "c3")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topo, err := Discover(ctx, host.Name(), "h0")
	if err != nil {
		t.Fatal(err)
	}
	if topo.Parent.Name != "h0" || topo.Parent.NetNS != host.Name() || capture.MACFrom(topo.Parent.MAC) != capture.MACFrom(l.parentMAC) {
		t.Fatalf("parent %+v", topo.Parent)
	}
	if !slices.Contains(topo.Parent.Addrs, l.hostAddr) {
		t.Fatalf("parent addrs %v lack %v", topo.Parent.Addrs, l.hostAddr)
	}
	byID := map[string]Endpoint{}
	for _, ep := range topo.Endpoints {
		byID[EndpointID(ep)] = ep
	}
	if len(byID) != 3 {
		t.Fatalf("found %d endpoints, want 3: %+v", len(byID), topo.Endpoints)
	}
	for _, want := range []Endpoint{a, b, {NetNS: host.Name(), Interface: "c3", Kind: KindMacvlan, Mode: "vepa", MAC: l.childMAC(3), Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.13/24")}}} {
		got, ok := byID[EndpointID(want)]
		if !ok {
			t.Errorf("%s not found", EndpointID(want))
			continue
		}
		if got.Kind != want.Kind || got.Mode != want.Mode || capture.MACFrom(got.MAC) != capture.MACFrom(want.MAC) || !slices.Equal(got.Addrs, want.Addrs) || got.Lower != "" || len(got.VLANs) != 0 {
			t.Errorf("%s: got %+v, want %+v", EndpointID(want), got, want)
		}
		if len(got.SourceMACs) != len(want.SourceMACs) {
			t.Errorf("%s: source MACs %v, want %v", EndpointID(want), got.SourceMACs, want.SourceMACs)
		}
	}
}

func TestDiscoverMissingParent(t *testing.T) {
	testenv.Require(t, testenv.FeaturePrivileged)
	_, err := Discover(context.Background(), "", "vmlt-nosuch0")
	if !errors.Is(err, ErrEnvironment) {
		t.Fatalf("missing parent: %v, want ErrEnvironment", err)
	}
}

// TestDiscoverVLANStack finds links stacked on a VLAN of the parent that
// lives in another namespace: h0.10 moved into namespace v, a macvlan on
// it moved on into namespace c; and h0.20 left beside h0 with an address
// of its own. The macvlan's IFLA_LINK_NETNSID names v, not the parent's
// namespace, so discovery must resolve it against v.
func TestDiscoverVLANStack(t *testing.T) {
	testenv.Require(t, testenv.FeatureVLAN, testenv.FeatureMacvlan, testenv.FeatureIPRoute2)
	p := testenv.NewParent(t, testenv.ParentOptions{Name: "h0"})
	host := p.Host
	v := testenv.NewNetNS(t)
	c := testenv.NewNetNS(t)
	host.Run(t, "ip", "link", "add", "h0.10", "link", "h0", "type", "vlan", "id", "10")
	host.Run(t, "ip", "link", "set", "h0.10", "netns", v.Name())
	v.Run(t, "ip", "link", "set", "h0.10", "up")
	v.Run(t, "ip", "link", "add", "m1", "link", "h0.10", "type", "macvlan", "mode", "bridge")
	v.Run(t, "ip", "link", "set", "m1", "netns", c.Name())
	c.Run(t, "ip", "addr", "add", "10.78.0.2/24", "dev", "m1")
	host.Run(t, "ip", "link", "add", "h0.20", "link", "h0", "type", "vlan", "id", "20")
	host.Run(t, "ip", "addr", "add", "10.79.0.1/24", "dev", "h0.20")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo, err := Discover(ctx, host.Name(), "h0")
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Endpoint{}
	for _, ep := range topo.Endpoints {
		byID[EndpointID(ep)] = ep
	}
	m1, ok := byID[c.Name()+"/m1"]
	if !ok || m1.Kind != KindMacvlan || m1.Lower != "h0.10" || !slices.Equal(m1.VLANs, []VLANTag{{ID: 10, Protocol: 0x8100}}) {
		t.Errorf("macvlan on the VLAN in another namespace: %+v (found %v)", m1, slices.Collect(maps.Keys(byID)))
	}
	v20, ok := byID[host.Name()+"/h0.20"]
	if !ok || v20.Kind != KindVLAN || !slices.Equal(v20.VLANs, []VLANTag{{ID: 20, Protocol: 0x8100}}) {
		t.Errorf("VLAN 20 with an address: %+v", v20)
	}
	if len(topo.Endpoints) != 2 {
		t.Errorf("%d endpoints, want 2: %+v", len(topo.Endpoints), topo.Endpoints)
	}
	if len(topo.VLANLinks) != 1 || EndpointID(topo.VLANLinks[0]) != v.Name()+"/h0.10" {
		t.Errorf("VLAN links without address: %+v, want %s/h0.10", topo.VLANLinks, v.Name())
	}
}
