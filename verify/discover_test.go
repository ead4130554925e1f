package verify

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv"
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
	if topo.Parent.Name != "h0" || topo.Parent.NetNS != host.Name() || MACFrom(topo.Parent.MAC) != MACFrom(l.parentMAC) {
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
		if got.Kind != want.Kind || got.Mode != want.Mode || MACFrom(got.MAC) != MACFrom(want.MAC) || !slices.Equal(got.Addrs, want.Addrs) || got.Lower != "" || len(got.VLANs) != 0 {
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
