// Package ndp holds what the data plane's announcements and the verifier's
// probes share to build IPv6 neighbour discovery (RFC 4861) messages.
package ndp

import "encoding/binary"

// Checksum is the ICMPv6 checksum (RFC 4443 2.3) of msg, an ICMPv6
// message whose checksum field is zero, from src to dst: the Internet
// checksum over the IPv6 pseudo-header and the message. Over a message
// whose checksum is filled in, it is zero.
func Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = 58 // next header: ICMPv6
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
