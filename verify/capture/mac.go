package capture

import (
	"fmt"
	"net"

	"github.com/vmlink/vmlink/link"
)

// MAC is an Ethernet address. It is an array rather than a net.HardwareAddr
// so that a Frame carries its addresses without allocating and so that MACs
// can key maps (the per-MAC summary, the owner table).
type MAC [6]byte

// ParseMAC reads a MAC as the rest of vmlink does, with link.ParseMAC (as
// ip reads it: "2:0:0:0:0:1" too), so that an address a user gave to
// `vmlink link add` is one `vmlink capture --mac` accepts.
func ParseMAC(s string) (MAC, error) {
	hw, err := link.ParseMAC(s)
	if err != nil {
		return MAC{}, fmt.Errorf("parse MAC %q: %w", s, err)
	}
	return MACFrom(hw), nil
}

// MACFrom converts a 6-byte net.HardwareAddr; other lengths give the zero MAC.
func MACFrom(hw net.HardwareAddr) MAC {
	var m MAC
	if len(hw) == 6 {
		copy(m[:], hw)
	}
	return m
}

// String formats m as lower-case hex with colons, as ip and tcpdump print it.
func (m MAC) String() string { return string(m.AppendTo(make([]byte, 0, 17))) }

// AppendTo appends the text form of m to b without allocating. Unrolled:
// it runs twice per line of `vmlink capture` output.
func (m MAC) AppendTo(b []byte) []byte {
	return append(b,
		hexDigits[m[0]>>4], hexDigits[m[0]&0xf], ':',
		hexDigits[m[1]>>4], hexDigits[m[1]&0xf], ':',
		hexDigits[m[2]>>4], hexDigits[m[2]&0xf], ':',
		hexDigits[m[3]>>4], hexDigits[m[3]&0xf], ':',
		hexDigits[m[4]>>4], hexDigits[m[4]&0xf], ':',
		hexDigits[m[5]>>4], hexDigits[m[5]&0xf])
}

// key packs m into an integer, a cheaper map key than the array.
func (m MAC) key() uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

// HardwareAddr returns m as a net.HardwareAddr (a new slice).
func (m MAC) HardwareAddr() net.HardwareAddr { return append(net.HardwareAddr(nil), m[:]...) }

// IsMulticast reports whether the group bit is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// MarshalText implements encoding.TextMarshaler.
func (m MAC) MarshalText() ([]byte, error) { return m.AppendTo(nil), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

const hexDigits = "0123456789abcdef"
