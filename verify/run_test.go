package verify

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vmlink/vmlink/internal/ndp"
	"github.com/vmlink/vmlink/verify/capture"
)

// The capture's grace after probing follows the run's round trip and its
// slowest answer, within bounds: a slow (emulated) run waits longer than
// the 20 ms that missed reflected echoes in the VM, a fast one no longer
// than needed, and nothing waits more than a second.
func TestCaptureGrace(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		rtt, slowest, want time.Duration
	}{
		{0, 0, 20 * ms},                       // nothing measured: the floor
		{100 * time.Microsecond, ms, 20 * ms}, // the host: the floor
		{10 * ms, 0, 40 * ms},                 // four round trips
		{10 * ms, 300 * ms, 300 * ms},         // the VM: the slowest answer
		{time.Second, 0, time.Second},         // bounded
		{0, 5 * time.Second, time.Second},
	} {
		if got := captureGrace(tc.rtt, tc.slowest); got != tc.want {
			t.Errorf("captureGrace(%v, %v) = %v, want %v", tc.rtt, tc.slowest, got, tc.want)
		}
	}
}

// The IPv6 probe's neighbour solicitation is a frame our decoder (and so
// Wireshark's reading of it) takes for an NS for the target, sent to the
// target's solicited-node group, with a checksum that verifies; a
// neighbour advertisement for the target is recognised, one for another
// address is not.
func TestNeighborSolicitation(t *testing.T) {
	mac := hw("02:00:00:00:00:0a")
	src, target := netip.MustParseAddr("fd77::a"), netip.MustParseAddr("fd77::12:3456")
	frame, group := neighborSolicitation(mac, src, target)
	if group.String() != "33:33:ff:12:34:56" {
		t.Errorf("group %s, want 33:33:ff:12:34:56", group)
	}
	var f capture.Frame
	if err := capture.NewDecoder().Decode(frame, &f); err != nil {
		t.Fatal(err)
	}
	if f.Net != capture.NetIPv6 || f.IP.Proto != 58 || f.IP.ICMPType != 135 || f.IP.NDTarget != target || f.IP.Src != src ||
		f.IP.Dst != netip.MustParseAddr("ff02::1:ff12:3456") || f.IP.TTL != 255 || f.Src != capture.MACFrom(mac) {
		t.Fatalf("decoded %+v", f.IP)
	}
	msg := frame[14+40:]
	if sum := ndp.Checksum(src.As16(), netip.MustParseAddr("ff02::1:ff12:3456").As16(), msg); sum != 0 {
		t.Errorf("checksum does not verify: %#04x", sum)
	}
	// An advertisement: the solicitation turned around.
	na := append([]byte(nil), frame...)
	copy(na[0:6], mac)
	copy(na[6:12], hw("02:00:00:00:00:0b"))
	na[14+40] = 136
	if got := neighborAdvertisementFor(na, target); got.String() != "02:00:00:00:00:0b" {
		t.Errorf("advertisement for the target: %v", got)
	}
	if got := neighborAdvertisementFor(na, src); got != nil {
		t.Errorf("advertisement for another address accepted: %v", got)
	}
	if got := neighborAdvertisementFor(frame, target); got != nil {
		t.Errorf("a solicitation taken for an advertisement: %v", got)
	}
}
