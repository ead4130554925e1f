package verify

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/vmlink/vmlink/internal/ndp"
	"golang.org/x/sys/unix"
)

// parseReply recognises an ARP reply, a neighbour advertisement or an
// echo reply carrying our payload, and returns the key of the probe it
// answers and the answering station's MAC.
func parseReply(f []byte) (replyKey, net.HardwareAddr, bool) {
	if len(f) < 14 {
		return replyKey{}, nil, false
	}
	mac := net.HardwareAddr(append([]byte(nil), f[6:12]...))
	switch binary.BigEndian.Uint16(f[12:14]) {
	case unix.ETH_P_ARP:
		a := f[14:]
		if len(a) < 28 || binary.BigEndian.Uint16(a[6:8]) != 2 || a[4] != 6 || a[5] != 4 {
			return replyKey{}, nil, false
		}
		return replyKey{kind: 1, peer: netip.AddrFrom4([4]byte(a[14:18]))}, net.HardwareAddr(append([]byte(nil), a[8:14]...)), true
	case unix.ETH_P_IP:
		ip := f[14:]
		if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 1 {
			return replyKey{}, nil, false
		}
		icmp := ip[int(ip[0]&0x0f)*4:]
		if len(icmp) < 8+len(echoMagic) || icmp[0] != 0 || string(icmp[8:8+len(echoMagic)]) != string(echoMagic) {
			return replyKey{}, nil, false
		}
		return replyKey{kind: 3, peer: netip.AddrFrom4([4]byte(ip[12:16])), id: binary.BigEndian.Uint16(icmp[4:6])}, mac, true
	case unix.ETH_P_IPV6:
		ip := f[14:]
		if len(ip) < 40+8 || ip[6] != 58 {
			return replyKey{}, nil, false
		}
		icmp := ip[40:]
		switch icmp[0] {
		case 136:
			if len(icmp) < 24 {
				return replyKey{}, nil, false
			}
			return replyKey{kind: 2, peer: netip.AddrFrom16([16]byte(icmp[8:24]))}, mac, true
		case 129:
			if len(icmp) < 8+len(echoMagic) || string(icmp[8:8+len(echoMagic)]) != string(echoMagic) {
				return replyKey{}, nil, false
			}
			return replyKey{kind: 4, peer: netip.AddrFrom16([16]byte(ip[8:24])), id: binary.BigEndian.Uint16(icmp[4:6])}, mac, true
		}
	}
	return replyKey{}, nil, false
}

// arpTargetIs reports whether an ARP frame's target protocol address is a.
func arpTargetIs(f []byte, a netip.Addr) bool {
	return len(f) >= 42 && netip.AddrFrom4([4]byte(f[38:42])) == a
}

// arpRequestFrame builds a broadcast ARP request for dst from src with our MAC,
// padded to the Ethernet minimum.
func arpRequestFrame(mac net.HardwareAddr, src, dst netip.Addr) []byte {
	f := make([]byte, 0, 60)
	f = append(f, ethernetBroadcast...)
	f = append(f, mac[:6]...)
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_ARP)
	f = append(f, 0, 1, 0x08, 0x00, 6, 4, 0, 1) // Ethernet, IPv4, sizes, request
	f = append(f, mac[:6]...)
	s, d := src.As4(), dst.As4()
	f = append(f, s[:]...)
	f = append(f, 0, 0, 0, 0, 0, 0)
	f = append(f, d[:]...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

// echoRequest builds an ICMP (ICMPv6) echo request frame from src to dst
// with our payload (echoMagic and the identifier) and sequence seq.
func echoRequest(mac, to net.HardwareAddr, src, dst netip.Addr, id uint16, seq int) []byte {
	msg := make([]byte, 8, 8+len(echoMagic)+2)
	msg[0] = 8
	if dst.Is6() {
		msg[0] = 128
	}
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], uint16(seq))
	msg = append(msg, echoMagic...)
	msg = binary.BigEndian.AppendUint16(msg, id)

	f := make([]byte, 0, 14+40+len(msg))
	f = append(f, to[:6]...)
	f = append(f, mac[:6]...)
	if dst.Is6() {
		s, d := src.As16(), dst.As16()
		binary.BigEndian.PutUint16(msg[2:], ndp.Checksum(s, d, msg))
		f = binary.BigEndian.AppendUint16(f, unix.ETH_P_IPV6)
		f = append(f, 0x60, 0, 0, 0)
		f = binary.BigEndian.AppendUint16(f, uint16(len(msg)))
		f = append(f, 58, 64)
		f = append(f, s[:]...)
		f = append(f, d[:]...)
		return append(f, msg...)
	}
	binary.BigEndian.PutUint16(msg[2:], inetChecksum(msg))
	f = binary.BigEndian.AppendUint16(f, unix.ETH_P_IP)
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(msg)))
	binary.BigEndian.PutUint16(h[4:], id)
	h[6] = 0x40 // don't fragment
	h[8], h[9] = 64, 1
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], inetChecksum(h))
	f = append(f, h...)
	return append(f, msg...)
}

// inetChecksum is the Internet checksum (RFC 1071) of b.
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
