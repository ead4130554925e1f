package ndp

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

// TestChecksumOfAKernelSolicitation recomputes the checksum of a neighbour
// solicitation Linux 6.18 sent (duplicate address detection for
// fe80::ff:fe00:2 from ::, with a nonce option; captured with tcpdump -xx
// on a veth in a throwaway namespace): the kernel's was 0xccd5.
func TestChecksumOfAKernelSolicitation(t *testing.T) {
	msg, _ := hex.DecodeString("8700ccd5" + "00000000" + "fe80000000000000000000fffe000002" + "0e0150dec28d8ed8")
	src := netip.MustParseAddr("::").As16()
	dst := netip.MustParseAddr("ff02::1:ff00:2").As16()
	if residue := Checksum(src, dst, msg); residue != 0 {
		t.Errorf("the kernel's message does not verify: residue %#04x", residue)
	}
	msg[2], msg[3] = 0, 0
	if got := Checksum(src, dst, msg); got != 0xccd5 {
		t.Errorf("Checksum = %#04x, the kernel sent 0xccd5", got)
	}
	if got := Checksum(src, dst, append(msg, 0xff)); got == 0xccd5 {
		t.Error("an odd trailing byte did not count")
	}
}
