package dataplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// Requests that used to be accepted and then fail later, or be refused
// naming the wrong flag, are refused by plan and allocate naming the right
// one, before anything touches the kernel.
func TestNetworkInputRefusals(t *testing.T) {
	n := &Networks{}
	st := &netState{Networks: map[string]*NetworkRecord{}}
	for _, c := range []struct {
		subnet, parent, want string
	}{
		{"10.9.0.0/31", "p0", "--subnet 10.9.0.0/31 leaves no address for containers"},
		{"10.9.0.0/32", "p0", "--subnet 10.9.0.0/32 leaves no address for containers"},
		{"10.9.0.0/24", "p0.4095", "-o parent=p0.4095: VLAN id 4095 is out of range"},
		{"10.9.0.0/24", "p0.99999", "-o parent=p0.99999: VLAN id 99999 is out of range"},
	} {
		_, err := n.plan(st, NetworkSpec{Name: "n1", Subnets: []netip.Prefix{netip.MustParsePrefix(c.subnet)},
			Options: NetworkOptions{Parent: c.parent}})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("subnet %s parent %s: %v, want a usage error %q", c.subnet, c.parent, err, c.want)
		}
	}
	if _, err := n.plan(st, NetworkSpec{Name: "n1", Subnets: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/30")},
		Options: NetworkOptions{Parent: "p0.10"}}); err != nil {
		t.Errorf("a /30 on p0.10: %v", err)
	}
	rec := &NetworkRecord{Name: "n", IPAM: []IPAMConfig{
		{Subnet: netip.MustParsePrefix("10.9.0.0/24")}, {Subnet: netip.MustParsePrefix("fd00:9::/64")}}}
	for _, c := range []struct{ addr, want string }{
		{"fd01::5", "--ip6 fd01::5 is outside"},
		{"10.8.0.5", "--ip 10.8.0.5 is outside"},
	} {
		if _, err := allocate(rec, "c1", []netip.Addr{netip.MustParseAddr(c.addr)}); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("allocate %s: %v, want %q", c.addr, err, c.want)
		}
	}
}
