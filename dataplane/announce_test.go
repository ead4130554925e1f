package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/vmlink/vmlink/internal/ndp"
)

func TestGARPFrame(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	b, err := garpFrame(mac, netip.MustParseAddr("10.0.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06,
		0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 2,
		0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
	}
	// The encoder pads to the Ethernet minimum of 60 bytes (the kernel
	// would pad a shorter frame the same way on the wire).
	want = append(want, make([]byte, 60-len(want))...)
	if !bytes.Equal(b, want) {
		t.Fatalf("garpFrame =\n% x\nwant\n% x", b, want)
	}
}

func TestUnsolicitedNAFrame(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	ip := netip.MustParseAddr("2001:db8::2")
	b := unsolicitedNAFrame(mac, ip)
	if len(b) != 86 || binary.BigEndian.Uint16(b[12:]) != 0x86dd || b[14+6] != 58 || b[14+7] != 255 {
		t.Fatalf("not an ICMPv6 frame with hop limit 255: % x", b)
	}
	icmp := b[54:]
	if icmp[0] != 136 || icmp[4]&0x20 == 0 || icmp[4]&0xc0 != 0 {
		t.Fatalf("not an unsolicited NA with only the override flag: % x", icmp[:8])
	}
	var src, dst [16]byte
	copy(src[:], b[22:38])
	copy(dst[:], b[38:54])
	// A correct checksum makes the sum over the message, checksum
	// included, come out as zero.
	if got := ndp.Checksum(src, dst, icmp); got != 0 {
		t.Fatalf("checksum does not verify: residue %#04x", got)
	}
	if !bytes.Equal(icmp[26:32], mac) || !bytes.Equal(icmp[8:24], ip.AsSlice()) {
		t.Fatal("target or link-layer option wrong")
	}
}
