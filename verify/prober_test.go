package verify

import (
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// The probe socket's filter passes what the engine reads (answers unicast
// to us, the broadcast phase's ARP probes) and nothing else.
func TestProbeFilter(t *testing.T) {
	me := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	other := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	src6, dst6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	arpReply := arpRequestFrame(other, dst, src)
	copy(arpReply[0:6], me)
	arpReply[21] = 2
	ns, _ := neighborSolicitation(other, src6, dst6)
	tests := []struct {
		name  string
		frame []byte
		pass  bool
	}{
		{"ARP reply to us", arpReply, true},
		{"echo reply to us", echoRequest(other, me, dst, src, 7, 1), true},
		{"ICMPv6 echo reply to us", echoRequest(other, me, dst6, src6, 7, 1), true},
		{"broadcast ARP probe", arpRequestFrame(other, netip.IPv4Unspecified(), dst), true},
		{"echo to somebody else", echoRequest(me, other, src, dst, 7, 1), false},
		{"ARP reply to somebody else", arpRequestFrame(me, src, dst)[:0:0], false},
		{"neighbour solicitation to a multicast group", ns, false},
		{"broadcast IPv4", append(append([]byte(nil), ethernetBroadcast...), echoRequest(me, other, src, dst, 7, 1)[6:]...), false},
		{"unicast to us, other ethertype", append(append(append([]byte(nil), me...), other...), 0x88, 0xb5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), false},
	}
	if _, err := probeFilter(me); err != nil {
		t.Fatal(err)
	}
	// The VM lacks the kernel's packet-type extension: run the frame test.
	vm, err := bpf.NewVM(probeMatch(me))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		f := tc.frame
		if len(f) == 0 {
			f = arpRequestFrame(me, src, dst)
			copy(f[0:6], other)
			f[21] = 2
		}
		n, err := vm.Run(f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (n > 0) != tc.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", tc.name, n, tc.pass)
		}
	}
}

// parseReply finds the probe an answer belongs to.
func TestParseReply(t *testing.T) {
	me := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	other := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	src6, dst6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	reply := func(f []byte, typ byte, off int) []byte {
		f[off] = typ
		return f
	}
	tests := []struct {
		name  string
		frame []byte
		key   replyKey
		ok    bool
	}{
		{"ARP reply", func() []byte { f := arpRequestFrame(other, dst, src); copy(f[0:6], me); f[21] = 2; return f }(), replyKey{kind: 1, peer: dst}, true},
		{"ARP request", arpRequestFrame(other, dst, src), replyKey{}, false},
		{"echo reply", reply(echoRequest(other, me, dst, src, 7, 1), 0, 34), replyKey{kind: 3, peer: dst, id: 7}, true},
		{"echo request", echoRequest(other, me, dst, src, 7, 1), replyKey{}, false},
		{"ICMPv6 echo reply", reply(echoRequest(other, me, dst6, src6, 9, 1), 129, 54), replyKey{kind: 4, peer: dst6, id: 9}, true},
		{"truncated", []byte{1, 2, 3}, replyKey{}, false},
	}
	for _, tc := range tests {
		k, _, ok := parseReply(tc.frame)
		if ok != tc.ok || ok && k != tc.key {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.name, k, ok, tc.key, tc.ok)
		}
	}
}
