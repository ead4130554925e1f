package rtnl

import (
	"net/netip"
	"testing"
)

// TestBroadcastOf: `brd +` as iproute2 computes it (ip addr add P brd +).
func TestBroadcastOf(t *testing.T) {
	for p, want := range map[string]string{
		"172.16.123.201/24": "172.16.123.255",
		"10.1.2.3/8":        "10.255.255.255",
		"192.168.0.5/30":    "192.168.0.7",
		"192.168.0.5/31":    "invalid IP",
		"192.168.0.5/32":    "invalid IP",
		"fd00::1/64":        "invalid IP",
	} {
		if got := BroadcastOf(netip.MustParsePrefix(p)).String(); got != want {
			t.Errorf("BroadcastOf(%s) = %s, want %s", p, got, want)
		}
	}
}
