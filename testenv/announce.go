package testenv

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// SawAnnouncements reads frames from pc (a packet socket listening to
// every protocol, e.g. on a switch port) for up to d, until it has seen
// from mac a gratuitous ARP for v4 (sender and target address both v4) and
// an unsolicited neighbour advertisement for v6. An invalid v4 or v6 is not
// waited for and reports false.
func SawAnnouncements(pc *packet.Conn, mac net.HardwareAddr, v4, v6 netip.Addr, d time.Duration) (arp, na bool) {
	a4, a6 := v4.As4(), v6.As16()
	pc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	for (v4.IsValid() && !arp) || (v6.IsValid() && !na) {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		f := buf[:n]
		if n < 14 || !bytes.Equal(f[6:12], mac) {
			continue
		}
		switch binary.BigEndian.Uint16(f[12:14]) {
		case unix.ETH_P_ARP:
			if v4.IsValid() && n >= 42 && bytes.Equal(f[14+8:14+14], mac) && bytes.Equal(f[14+14:14+18], a4[:]) && bytes.Equal(f[14+24:14+28], a4[:]) {
				arp = true
			}
		case unix.ETH_P_IPV6: // ICMPv6 (58) neighbour advertisement (136) for v6
			if v6.IsValid() && n >= 14+40+24 && f[14+6] == 58 && f[54] == 136 && bytes.Equal(f[54+8:54+24], a6[:]) {
				na = true
			}
		}
	}
	return arp, na
}
