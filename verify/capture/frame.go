package capture

import (
	"encoding/binary"
	"fmt"
	"github.com/vmlink/vmlink/rtnl"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// MAC is an Ethernet address. It is an array rather than a net.HardwareAddr
// so that a Frame carries its addresses without allocating and so that MACs
// can key maps (the per-MAC summary, the owner table).
type MAC [6]byte

// ParseMAC parses six colon- (or dash-) separated hex bytes.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return MAC{}, fmt.Errorf("parse MAC %q: want six hex bytes like 02:00:00:00:00:01", s)
	}
	var m MAC
	copy(m[:], hw)
	return m, nil
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

// decimal8 holds "0" to "255", the octets of an IPv4 address.
var decimal8 = func() (t [256]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

// twoDigits holds "00" to "99": two digits per table lookup.
const twoDigits = "0001020304050607080910111213141516171819" +
	"2021222324252627282930313233343536373839" +
	"4041424344454647484950515253545556575859" +
	"6061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// EtherType is the 16-bit type field of an Ethernet or VLAN header. Values
// below 0x0600 are 802.3 lengths, not types.
type EtherType uint16

// EtherTypes the decoder and filters know by name.
const (
	EtherTypeIPv4   EtherType = 0x0800
	EtherTypeARP    EtherType = 0x0806
	EtherTypeIPv6   EtherType = 0x86dd
	EtherType8021Q  EtherType = 0x8100 // C-tag (802.1Q)
	EtherType8021AD EtherType = 0x88a8 // S-tag (802.1ad, "QinQ")
	EtherTypeQinQ   EtherType = 0x9100 // pre-standard S-tag some switches still send
	EtherTypeLLDP   EtherType = 0x88cc
)

// IsVLAN reports whether e is the TPID of a VLAN tag: a tag follows.
func (e EtherType) IsVLAN() bool {
	return e == EtherType8021Q || e == EtherType8021AD || e == EtherTypeQinQ
}

// Name is tcpdump's name for e ("802.1Q", "802.1Q-QinQ", "ARP", …) or
// "Unknown". tcpdump calls 0x88a8 "802.1Q-QinQ"; we keep its words so our
// lines diff cleanly against `tcpdump -e -nn`.
func (e EtherType) Name() string {
	switch e {
	case EtherTypeIPv4:
		return "IPv4"
	case EtherTypeARP:
		return "ARP"
	case EtherTypeIPv6:
		return "IPv6"
	case EtherType8021Q:
		return "802.1Q"
	case EtherType8021AD:
		return "802.1Q-QinQ"
	case EtherTypeQinQ:
		return "802.1Q-9100"
	case EtherTypeLLDP:
		return "LLDP"
	case 0x8035:
		return "Reverse ARP"
	case 0x8847:
		return "MPLS unicast"
	case 0x8848:
		return "MPLS multicast"
	case 0x888e:
		return "EAPOL"
	case 0x8863:
		return "PPPoE D"
	case 0x8864:
		return "PPPoE S"
	case 0x8809:
		return "Slow Protocols"
	case 0x88f7:
		return "PTP"
	case 0x9000:
		return "Loopback"
	}
	return "Unknown"
}

// String is the name and the number, e.g. "ARP (0x0806)".
func (e EtherType) String() string { return string(e.appendTo(nil)) }

// appendTo appends "NAME (0xNNNN)"; the common types as one constant.
func (e EtherType) appendTo(b []byte) []byte {
	switch e {
	case EtherType8021Q:
		return append(b, "802.1Q (0x8100)"...)
	case EtherTypeARP:
		return append(b, "ARP (0x0806)"...)
	case EtherTypeIPv4:
		return append(b, "IPv4 (0x0800)"...)
	case EtherTypeIPv6:
		return append(b, "IPv6 (0x86dd)"...)
	case EtherType8021AD:
		return append(b, "802.1Q-QinQ (0x88a8)"...)
	}
	b = append(b, e.Name()...)
	b = append(b, " (0x"...)
	b = appendHex16(b, uint16(e))
	return append(b, ')')
}

func appendHex16(b []byte, v uint16) []byte {
	return append(b, hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
}

// Tag is one VLAN tag as it was on the wire.
type Tag struct {
	TPID EtherType `json:"tpid"` // 0x8100 (802.1Q) or 0x88a8 (802.1ad); 0x9100 in old QinQ gear
	VID  uint16    `json:"vid"`  // 0-4095; 0 is a priority tag (PCP only, no VLAN)
	PCP  uint8     `json:"pcp"`  // priority code point, 0-7
	DEI  bool      `json:"dei"`  // drop eligible indicator (was CFI)
}

// tagFromTCI splits a tag control information word.
func tagFromTCI(tpid EtherType, tci uint16) Tag {
	return Tag{TPID: tpid, VID: tci & 0x0fff, PCP: uint8(tci >> 13), DEI: tci&0x1000 != 0}
}

// TCI is the 16-bit tag control information word of t.
func (t Tag) TCI() uint16 {
	tci := t.VID&0x0fff | uint16(t.PCP&7)<<13
	if t.DEI {
		tci |= 0x1000
	}
	return tci
}

// Protocol names the tag kind as ip-link does ("802.1Q" or "802.1ad", the
// project's one VLAN protocol vocabulary), or by number for a TPID no VLAN
// link uses (0x9100).
func (t Tag) Protocol() string {
	if p := rtnl.VLANProtocol(t.TPID); p.Valid() {
		return p.String()
	}
	return fmt.Sprintf("0x%04x", uint16(t.TPID))
}

// String is e.g. "802.1Q 10" or "802.1ad 100 p 3 DEI".
func (t Tag) String() string {
	s := fmt.Sprintf("%s %d", t.Protocol(), t.VID)
	if t.PCP != 0 {
		s += fmt.Sprintf(" p %d", t.PCP)
	}
	if t.DEI {
		s += " DEI"
	}
	return s
}

// Direction is how a frame passed the capture point, from the kernel's
// sll_pkttype on a live socket or the pcapng epb_flags word in a file.
// The zero value means the source did not record it (classic pcap).
type Direction uint8

// Directions. The inbound ones keep the kernel's reason the frame was
// received: a verifier cares whether a frame came in addressed to the host,
// flooded, or only seen because the parent is promiscuous.
const (
	DirUnknown   Direction = iota // not recorded
	DirHost                       // inbound, addressed to this host (PACKET_HOST)
	DirBroadcast                  // inbound broadcast (PACKET_BROADCAST)
	DirMulticast                  // inbound multicast (PACKET_MULTICAST)
	DirOtherHost                  // inbound, for another host: seen promiscuously (PACKET_OTHERHOST)
	DirOutgoing                   // sent by this host (PACKET_OUTGOING)
	DirIn                         // inbound, reception type not recorded (pcapng)
)

// directionFromPktType maps sll_pkttype (linux/if_packet.h).
func directionFromPktType(t uint8) Direction {
	switch t {
	case 0:
		return DirHost
	case 1:
		return DirBroadcast
	case 2:
		return DirMulticast
	case 3:
		return DirOtherHost
	case 4:
		return DirOutgoing
	}
	return DirUnknown
}

// String is the kernel's word for d: host, broadcast, multicast, otherhost,
// outgoing; "in" when only the direction is known, "unknown" when nothing is.
func (d Direction) String() string {
	switch d {
	case DirHost:
		return "host"
	case DirBroadcast:
		return "broadcast"
	case DirMulticast:
		return "multicast"
	case DirOtherHost:
		return "otherhost"
	case DirOutgoing:
		return "outgoing"
	case DirIn:
		return "in"
	}
	return "unknown"
}

// Inbound reports whether the frame was received.
func (d Direction) Inbound() bool {
	return d == DirHost || d == DirBroadcast || d == DirMulticast || d == DirOtherHost || d == DirIn
}

// Outbound reports whether the frame was sent.
func (d Direction) Outbound() bool { return d == DirOutgoing }

// Way is "in", "out" or "unknown": the JSON "dir" field.
func (d Direction) Way() string {
	switch {
	case d.Inbound():
		return "in"
	case d.Outbound():
		return "out"
	}
	return "unknown"
}

// tcpdumpWord is how `tcpdump -i any` marks the direction: In, B, M, P, Out.
func (d Direction) tcpdumpWord() string {
	switch d {
	case DirHost, DirIn:
		return "In "
	case DirBroadcast:
		return "B  "
	case DirMulticast:
		return "M  "
	case DirOtherHost:
		return "P  "
	case DirOutgoing:
		return "Out"
	}
	return ""
}

// NetLayer says which network-layer header the decoder understood.
type NetLayer uint8

// Network layers. NetNone: nothing past the Ethernet/VLAN headers was decoded.
const (
	NetNone NetLayer = iota
	NetARP
	NetIPv4
	NetIPv6
)

// ARPInfo is the decoded ARP body. Addresses are set for Ethernet/IPv4 ARP
// only; for other hardware or protocol types SenderIP is invalid and only
// the numbers are kept.
type ARPInfo struct {
	HwType    uint16
	ProtoType EtherType
	Op        uint16 // 1 request, 2 reply
	SenderMAC MAC
	SenderIP  netip.Addr
	TargetMAC MAC
	TargetIP  netip.Addr
}

// IPInfo is the decoded IPv4/IPv6 header and, for ICMP, ICMPv6, UDP and
// TCP, the few transport fields a summary line shows.
type IPInfo struct {
	Src, Dst   netip.Addr
	Proto      uint8 // IPv4 protocol / IPv6 next header after extension headers
	TTL        uint8 // hop limit for IPv6
	Fragment   bool  // a non-first fragment: no transport header
	PayloadLen int   // transport length from the IP header (ICMP "length N")

	ICMPType, ICMPCode uint8 // valid when Proto is 1 (ICMP) or 58 (ICMPv6)
	ICMPID, ICMPSeq    uint16
	NDTarget           netip.Addr // ICMPv6 neighbour solicitation/advertisement target

	SrcPort, DstPort uint16 // UDP, TCP
	TCPFlags         uint8
}

// IP protocol numbers the summary knows.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// maxInlineTags is how many VLAN tags a Frame holds without allocating.
const maxInlineTags = 4

// Frame is one captured Ethernet frame, decoded.
//
// A Frame returned by a Capture or a file reader is reused by the next read:
// Data points into the reader's buffer. Keep one with Clone.
type Frame struct {
	Time    time.Time
	IfIndex int       // capturing interface (live), 0 in files
	Dir     Direction // DirUnknown when the source did not record it

	Dst, Src MAC
	// VLANs is the tag stack, outermost first, with each tag's real TPID.
	// On a live socket the outer tag came from PACKET_AUXDATA and has been
	// put back in place, so this is the stack the wire carried.
	VLANs []Tag
	// EtherType is the type after the last tag (the payload's), or an 802.3
	// length when below 0x0600.
	EtherType EtherType
	Length    int    // length on the wire, tags included
	Data      []byte // captured bytes, every tag inline
	Truncated bool   // the capture (or a header's length field) cut the frame short
	Comment   string // pcapng per-packet comment, when read from one

	Net NetLayer
	ARP ARPInfo // valid when Net == NetARP
	IP  IPInfo  // valid when Net == NetIPv4 or NetIPv6

	tagBuf [maxInlineTags]Tag
}

// Clone returns a deep copy that stays valid after the next read.
func (f *Frame) Clone() *Frame {
	c := *f
	c.Data = append([]byte(nil), f.Data...)
	if len(f.VLANs) <= len(c.tagBuf) {
		c.VLANs = c.tagBuf[:len(f.VLANs)]
		copy(c.VLANs, f.VLANs)
	} else {
		c.VLANs = append([]Tag(nil), f.VLANs...)
	}
	return &c
}

// OuterVLAN returns the outermost tag, if any.
func (f *Frame) OuterVLAN() (Tag, bool) {
	if len(f.VLANs) == 0 {
		return Tag{}, false
	}
	return f.VLANs[0], true
}

// HeaderLen is the length of the Ethernet header with its tags.
func (f *Frame) HeaderLen() int { return 14 + 4*len(f.VLANs) }

// Summary is the frame described as `tcpdump -e -nn` does, without the
// timestamp: "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype 802.1Q
// (0x8100), length 46: vlan 10, p 0, ethertype ARP (0x0806), Request who-has
// 10.0.0.2 tell 10.0.0.1, length 28".
func (f *Frame) Summary() string { return string(f.AppendSummary(nil)) }

// AppendSummary appends Summary to b without allocating.
func (f *Frame) AppendSummary(b []byte) []byte { return f.appendSummary(b, nil) }

// addrCache remembers how recent IP addresses print: a capture sees the
// same few hosts over and over, and formatting an address (IPv6 above all)
// costs more than the rest of a line. Direct-mapped; nil disables it.
type addrCache [64]struct {
	addr netip.Addr
	n    uint8
	text [39]byte // the longest IPv6 text form
}

func (c *addrCache) append(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		// Four table lookups beat any cache.
		v := a.As4()
		b = append(b, decimal8[v[0]]...)
		b = append(b, '.')
		b = append(b, decimal8[v[1]]...)
		b = append(b, '.')
		b = append(b, decimal8[v[2]]...)
		b = append(b, '.')
		return append(b, decimal8[v[3]]...)
	}
	if c == nil {
		return a.AppendTo(b)
	}
	k := a.As16()
	h := (binary.LittleEndian.Uint64(k[0:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(k[8:16])) * 0xff51afd7ed558ccd
	e := &c[h>>58]
	if e.n == 0 || e.addr != a {
		t := a.AppendTo(e.text[:0])
		if len(t) > len(e.text) { // a zone made it longer: do not cache
			return a.AppendTo(b)
		}
		e.addr, e.n = a, uint8(len(t))
	}
	return append(b, e.text[:e.n]...)
}

func (f *Frame) appendSummary(b []byte, ac *addrCache) []byte {
	b = f.Src.AppendTo(b)
	b = append(b, " > "...)
	b = f.Dst.AppendTo(b)
	first := f.EtherType
	if len(f.VLANs) > 0 {
		first = f.VLANs[0].TPID
	}
	if first < 0x0600 {
		b = append(b, ", 802.3, length "...)
		b = appendUint(b, uint64(f.Length))
		return append(b, ": LLC"...)
	}
	b = append(b, ", ethertype "...)
	b = first.appendTo(b)
	b = append(b, ", length "...)
	b = appendUint(b, uint64(f.Length))
	b = append(b, ": "...)
	for i, t := range f.VLANs {
		b = append(b, "vlan "...)
		b = appendUint(b, uint64(t.VID))
		b = append(b, ", p "...)
		b = appendUint(b, uint64(t.PCP))
		if t.DEI {
			b = append(b, ", DEI"...)
		}
		next := f.EtherType
		if i+1 < len(f.VLANs) {
			next = f.VLANs[i+1].TPID
		}
		if next < 0x0600 {
			b = append(b, ", LLC"...)
			return b
		}
		b = append(b, ", ethertype "...)
		b = next.appendTo(b)
		b = append(b, ", "...)
	}
	n := len(b)
	b = f.appendPayload(b, ac)
	if len(b) == n { // nothing decoded past the headers: drop the separator
		b = b[:n-2]
	}
	return b
}

// payloadLen is the on-wire length after the Ethernet header and tags, the
// "length N" tcpdump prints for ARP.
func (f *Frame) payloadLen() int {
	n := f.Length - f.HeaderLen()
	if n < 0 {
		return 0
	}
	return n
}

func (f *Frame) appendPayload(b []byte, ac *addrCache) []byte {
	switch f.Net {
	case NetARP:
		return f.appendARP(b, ac)
	case NetIPv4, NetIPv6:
		return f.appendIP(b, ac)
	}
	return b
}

func (f *Frame) appendARP(b []byte, ac *addrCache) []byte {
	a := &f.ARP
	if !a.SenderIP.IsValid() { // not Ethernet/IPv4 ARP: numbers only
		b = append(b, "ARP, hardware type "...)
		b = appendUint(b, uint64(a.HwType))
		b = append(b, ", protocol "...)
		b = a.ProtoType.appendTo(b)
	} else {
		switch a.Op {
		case 1:
			b = append(b, "Request who-has "...)
			b = ac.append(b, a.TargetIP)
			if !a.TargetMAC.IsZero() {
				b = append(b, " ("...)
				b = a.TargetMAC.AppendTo(b)
				b = append(b, ')')
			}
			b = append(b, " tell "...)
			b = ac.append(b, a.SenderIP)
		case 2:
			b = append(b, "Reply "...)
			b = ac.append(b, a.SenderIP)
			b = append(b, " is-at "...)
			b = a.SenderMAC.AppendTo(b)
		default:
			b = append(b, "ARP opcode "...)
			b = appendUint(b, uint64(a.Op))
		}
	}
	b = append(b, ", length "...)
	return appendUint(b, uint64(f.payloadLen()))
}

func (f *Frame) appendIP(b []byte, ac *addrCache) []byte {
	ip := &f.IP
	ports := !ip.Fragment && (ip.Proto == protoUDP || ip.Proto == protoTCP)
	b = ac.append(b, ip.Src)
	if ports {
		b = append(b, '.')
		b = appendUint(b, uint64(ip.SrcPort))
	}
	b = append(b, " > "...)
	b = ac.append(b, ip.Dst)
	if ports {
		b = append(b, '.')
		b = appendUint(b, uint64(ip.DstPort))
	}
	b = append(b, ": "...)
	switch {
	case ip.Fragment:
		b = append(b, "ip-proto-"...)
		b = appendUint(b, uint64(ip.Proto))
		b = append(b, " (fragment)"...)
	case ip.Proto == protoICMP && f.Net == NetIPv4:
		b = append(b, "ICMP "...)
		switch ip.ICMPType {
		case 8, 0:
			if ip.ICMPType == 8 {
				b = append(b, "echo request, id "...)
			} else {
				b = append(b, "echo reply, id "...)
			}
			b = appendUint(b, uint64(ip.ICMPID))
			b = append(b, ", seq "...)
			b = appendUint(b, uint64(ip.ICMPSeq))
		case 3:
			b = append(b, "dest unreachable, code "...)
			b = appendUint(b, uint64(ip.ICMPCode))
		case 11:
			b = append(b, "time exceeded, code "...)
			b = appendUint(b, uint64(ip.ICMPCode))
		default:
			b = append(b, "type "...)
			b = appendUint(b, uint64(ip.ICMPType))
			b = append(b, ", code "...)
			b = appendUint(b, uint64(ip.ICMPCode))
		}
		b = append(b, ", length "...)
		b = appendUint(b, uint64(ip.PayloadLen))
	case ip.Proto == protoICMPv6 && f.Net == NetIPv6:
		b = append(b, "ICMP6, "...)
		switch ip.ICMPType {
		case 128, 129:
			if ip.ICMPType == 128 {
				b = append(b, "echo request, id "...)
			} else {
				b = append(b, "echo reply, id "...)
			}
			b = appendUint(b, uint64(ip.ICMPID))
			b = append(b, ", seq "...)
			b = appendUint(b, uint64(ip.ICMPSeq))
		case 133:
			b = append(b, "router solicitation"...)
		case 134:
			b = append(b, "router advertisement"...)
		case 135:
			b = append(b, "neighbor solicitation, who has "...)
			b = ac.append(b, ip.NDTarget)
		case 136:
			b = append(b, "neighbor advertisement, tgt is "...)
			b = ac.append(b, ip.NDTarget)
		case 143:
			b = append(b, "multicast listener report v2"...)
		case 1:
			b = append(b, "destination unreachable, code "...)
			b = appendUint(b, uint64(ip.ICMPCode))
		default:
			b = append(b, "type "...)
			b = appendUint(b, uint64(ip.ICMPType))
		}
		b = append(b, ", length "...)
		b = appendUint(b, uint64(ip.PayloadLen))
	case ip.Proto == protoUDP:
		b = append(b, "UDP, length "...)
		n := ip.PayloadLen - 8
		if n < 0 {
			n = 0
		}
		b = appendUint(b, uint64(n))
	case ip.Proto == protoTCP:
		b = append(b, "Flags ["...)
		b = appendTCPFlags(b, ip.TCPFlags)
		b = append(b, "]"...)
	default:
		b = append(b, "ip-proto-"...)
		b = appendUint(b, uint64(ip.Proto))
		b = append(b, ' ')
		b = appendUint(b, uint64(ip.PayloadLen))
	}
	return b
}

// appendTCPFlags writes tcpdump's flag letters (S, F, R, P, U, E, W, "." for ACK).
func appendTCPFlags(b []byte, fl uint8) []byte {
	n := len(b)
	for _, x := range [...]struct {
		bit uint8
		c   byte
	}{{0x01, 'F'}, {0x02, 'S'}, {0x04, 'R'}, {0x08, 'P'}, {0x20, 'U'}, {0x40, 'E'}, {0x80, 'W'}} {
		if fl&x.bit != 0 {
			b = append(b, x.c)
		}
	}
	if fl&0x10 != 0 {
		b = append(b, '.')
	}
	if len(b) == n {
		b = append(b, "none"...)
	}
	return b
}

func appendUint(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, byte('0'+v))
	}
	var tmp [20]byte
	i := len(tmp)
	for v >= 10 {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	tmp[i] = byte('0' + v)
	return append(b, tmp[i:]...)
}

// lineFormatter writes frames as text lines like `tcpdump -e -nn`:
// "HH:MM:SS.uuuuuu [DIR ]SUMMARY". It caches the clock of the last second
// so that a million frames cost one time-zone lookup per second of capture.
type lineFormatter struct {
	// Location for the clock; nil means time.Local, as tcpdump uses TZ.
	Location *time.Location

	lastSec int64
	clock   [8]byte
	valid   bool
	addrs   addrCache
}

// appendLine appends one line for f, newline included.
func (lf *lineFormatter) appendLine(b []byte, f *Frame) []byte {
	sec := f.Time.Unix()
	if !lf.valid || sec != lf.lastSec {
		loc := lf.Location
		if loc == nil {
			loc = time.Local
		}
		h, m, s := f.Time.In(loc).Clock()
		lf.clock = [8]byte{byte('0' + h/10), byte('0' + h%10), ':', byte('0' + m/10), byte('0' + m%10), ':', byte('0' + s/10), byte('0' + s%10)}
		lf.lastSec, lf.valid = sec, true
	}
	us := f.Time.Nanosecond() / 1000
	hi, mid, lo := us/10000, us/100%100, us%100
	b = append(b, lf.clock[0], lf.clock[1], lf.clock[2], lf.clock[3], lf.clock[4], lf.clock[5], lf.clock[6], lf.clock[7], '.',
		twoDigits[2*hi], twoDigits[2*hi+1], twoDigits[2*mid], twoDigits[2*mid+1], twoDigits[2*lo], twoDigits[2*lo+1], ' ')
	if w := f.Dir.tcpdumpWord(); w != "" {
		b = append(b, w...)
		b = append(b, ' ')
	}
	b = f.appendSummary(b, &lf.addrs)
	return append(b, '\n')
}

// appendJSON appends f as one JSON object and a newline:
// {"time":"…","dir":"in","pkttype":"broadcast","ifindex":3,"src":"…",
// "dst":"…","vlans":[{"tpid":33024,"vid":10,"pcp":0,"dei":false}],
// "ethertype":2054,"length":46,"summary":"…","owner":"…"}.
// Numbers are JSON numbers; vlans is [] when untagged; owner names the
// sub-interface that owns the source MAC ("" when unknown).
func appendJSON(b []byte, f *Frame, owner string) []byte {
	b = append(b, `{"time":"`...)
	b = f.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z07:00")
	b = append(b, `","dir":"`...)
	b = append(b, f.Dir.Way()...)
	b = append(b, `","pkttype":"`...)
	b = append(b, f.Dir.String()...)
	b = append(b, `","ifindex":`...)
	b = appendUint(b, uint64(f.IfIndex))
	b = append(b, `,"src":"`...)
	b = f.Src.AppendTo(b)
	b = append(b, `","dst":"`...)
	b = f.Dst.AppendTo(b)
	b = append(b, `","vlans":[`...)
	for i, t := range f.VLANs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"tpid":`...)
		b = appendUint(b, uint64(t.TPID))
		b = append(b, `,"vid":`...)
		b = appendUint(b, uint64(t.VID))
		b = append(b, `,"pcp":`...)
		b = appendUint(b, uint64(t.PCP))
		if t.DEI {
			b = append(b, `,"dei":true}`...)
		} else {
			b = append(b, `,"dei":false}`...)
		}
	}
	b = append(b, `],"ethertype":`...)
	b = appendUint(b, uint64(f.EtherType))
	b = append(b, `,"length":`...)
	b = appendUint(b, uint64(f.Length))
	b = append(b, `,"summary":`...)
	n := len(b)
	b = f.AppendSummary(b)
	b = appendJSONStringInPlace(b, n)
	b = append(b, `,"owner":`...)
	n = len(b)
	b = append(b, owner...)
	b = appendJSONStringInPlace(b, n)
	return append(b, "}\n"...)
}

// appendJSONStringInPlace turns b[from:] into a quoted JSON string.
func appendJSONStringInPlace(b []byte, from int) []byte {
	clean := true
	for _, c := range b[from:] {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean {
		b = append(b, 0)
		copy(b[from+1:], b[from:len(b)-1])
		b[from] = '"'
		return append(b, '"')
	}
	raw := string(b[from:])
	b = append(b[:from], '"')
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c) // UTF-8 passes through unchanged
		}
	}
	return append(b, '"')
}
