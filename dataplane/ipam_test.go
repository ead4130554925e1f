package dataplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestPoolNextSkipsReserved(t *testing.T) {
	p, err := NewPool(netip.MustParsePrefix("10.0.0.0/29"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve(netip.MustParseAddr("10.0.0.1"), "the gateway"); err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve(netip.MustParseAddr("10.0.0.3"), "aux router"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		a, err := p.Next("c")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	if want := "10.0.0.2/29 10.0.0.4/29 10.0.0.5/29 10.0.0.6/29"; strings.Join(got, " ") != want {
		t.Fatalf("allocated %v, want %s (never .0, .1 gateway, .3 aux, .7 broadcast)", got, want)
	}
	if _, err := p.Next("c"); !errors.Is(err, ErrPoolFull) {
		t.Fatalf("Next on a full subnet = %v, want ErrPoolFull", err)
	}
}

func TestPoolRange(t *testing.T) {
	p, err := NewPool(netip.MustParsePrefix("10.0.10.0/24"), netip.MustParsePrefix("10.0.10.128/30"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"10.0.10.128/24", "10.0.10.129/24", "10.0.10.130/24", "10.0.10.131/24"} {
		a, err := p.Next("c")
		if err != nil || a.String() != want {
			t.Fatalf("Next = %v, %v; want %s", a, err, want)
		}
	}
	_, err = p.Next("c")
	if !errors.Is(err, ErrPoolFull) || !strings.Contains(err.Error(), "ip-range 10.0.10.128/30") {
		t.Fatalf("Next past the range = %v", err)
	}
	if _, err := NewPool(netip.MustParsePrefix("10.0.10.0/24"), netip.MustParsePrefix("10.0.11.0/25")); err == nil {
		t.Fatal("a range outside the subnet was accepted")
	}
}

func TestPoolReserveErrors(t *testing.T) {
	p, _ := NewPool(netip.MustParsePrefix("10.0.0.0/24"), netip.Prefix{})
	for _, c := range []struct{ addr, want string }{
		{"10.0.1.5", "outside subnet"},
		{"10.0.0.0", "network address"},
		{"10.0.0.255", "broadcast"},
	} {
		if err := p.Reserve(netip.MustParseAddr(c.addr), "c"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Reserve(%s) = %v, want %q", c.addr, err, c.want)
		}
	}
	if err := p.Reserve(netip.MustParseAddr("10.0.0.7"), "container1"); err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve(netip.MustParseAddr("10.0.0.7"), "container2"); err == nil || !strings.Contains(err.Error(), "in use by container1") {
		t.Fatalf("double Reserve = %v", err)
	}
}

func TestPoolIPv6(t *testing.T) {
	p, _ := NewPool(netip.MustParsePrefix("2001:db8:babe:10::/64"), netip.Prefix{})
	p.Reserve(netip.MustParseAddr("2001:db8:babe:10::1"), "the gateway")
	a, err := p.Next("c")
	if err != nil || a.String() != "2001:db8:babe:10::2/64" {
		t.Fatalf("Next = %v, %v", a, err)
	}
}

func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.0/24": "10.0.0.255", "10.0.0.0/29": "10.0.0.7", "fd00::/120": "fd00::ff", "10.0.0.4/32": "10.0.0.4"} {
		if got := lastAddr(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("lastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestAssignAddresses(t *testing.T) {
	topo, err := Parse(strings.NewReader(`
name: a
parents: [{name: p0, sandbox: {switch: sw, addresses: [10.1.0.2/24]}, addresses: [10.1.0.1/24]}]
networks: [{name: n, parent: p0, subnets: [10.1.0.0/24, "fd00::/64"], gateways: [10.1.0.3]}]
endpoints:
  - {name: a, interfaces: [{network: n}]}
  - {name: b, interfaces: [{network: n, addresses: [10.1.0.4/24]}]}
  - {name: c, interfaces: [{network: n}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.assignAddresses(); err != nil {
		t.Fatal(err)
	}
	got := func(i int) string { return strings.Join(topo.Endpoints[i].Interfaces[0].Addresses, " ") }
	// .1 host, .2 outside, .3 gateway, .4 taken by b.
	if got(0) != "10.1.0.5/24 fd00::1/64" || got(2) != "10.1.0.6/24 fd00::2/64" || got(1) != "10.1.0.4/24" {
		t.Fatalf("addresses: a=%s b=%s c=%s", got(0), got(1), got(2))
	}
	topo.Endpoints[1].Interfaces[0].Addresses = []string{"10.1.0.1/24"}
	topo.Endpoints[0].Interfaces[0].Addresses = nil
	if err := topo.assignAddresses(); err == nil || !strings.Contains(err.Error(), "in use by parent p0") {
		t.Fatalf("an endpoint on the host's address: %v", err)
	}
}
