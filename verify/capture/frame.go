package capture

import (
	"net/netip"
	"time"
)

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
