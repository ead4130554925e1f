package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// maxTags bounds the VLAN stack the decoder walks. Real networks use one or
// two tags; the bound keeps a crafted frame of repeated 0x8100s cheap.
const maxTags = 8

// errShortFrame is returned for frames shorter than an Ethernet header.
var errShortFrame = errors.New("frame shorter than an Ethernet header (14 bytes)")

// errTooManyTags stops the parser on a stack deeper than maxTags.
var errTooManyTags = fmt.Errorf("more than %d VLAN tags", maxTags)

// Decoder turns raw Ethernet bytes (tags inline) into Frames with gopacket's
// DecodingLayerParser: preallocated layers, no allocation per frame. It is
// not safe for concurrent use; give each reader its own.
type Decoder struct {
	parser  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType

	eth   ethLayer
	tags  vlanStack
	arp   layers.ARP
	ip4   layers.IPv4
	ip6   layers.IPv6
	icmp4 layers.ICMPv4
	icmp6 layers.ICMPv6
}

// NewDecoder returns a Decoder for Ethernet, 802.1Q/802.1ad tag stacks, ARP,
// IPv4, IPv6, ICMP and ICMPv6.
func NewDecoder() *Decoder {
	d := &Decoder{decoded: make([]gopacket.LayerType, 0, 16)}
	// DecodingLayerSparse indexes decoders by layer type number: the
	// cheapest lookup for the handful of small, fixed types we use.
	d.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet)
	d.parser.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
	for _, l := range []gopacket.DecodingLayer{&d.eth, &d.tags, &d.arp, &d.ip4, &d.ip6, &d.icmp4, &d.icmp6} {
		d.parser.AddDecodingLayer(l)
	}
	// Layers we do not decode (UDP, TCP, LLC, payloads) end the walk
	// quietly; the summary reads the few transport fields it shows itself.
	d.parser.IgnoreUnsupported = true
	return d
}

// Decode decodes a whole frame (every tag inline) into f, keeping data as
// f.Data without copying. Time, IfIndex, Dir and Comment are left to the
// caller. See decodeCaptured for a frame the capture cut short.
func (d *Decoder) Decode(data []byte, f *Frame) error {
	return d.decodeCaptured(data, len(data), f)
}

// decodeCaptured decodes the captured bytes of a frame that was wireLen
// bytes long on the wire.
//
// Only a frame shorter than an Ethernet header is an error. A header further
// in that does not decode (cut short, bad length fields) ends the decode
// there: f.Net stays NetNone for it and f.Truncated says whether the frame
// was cut short, so a capture still shows the frame with its tags.
func (d *Decoder) decodeCaptured(data []byte, wireLen int, f *Frame) error {
	f.Data = data
	f.Length = max(wireLen, len(data))
	f.Truncated = wireLen > len(data)
	f.VLANs = f.tagBuf[:0]
	f.EtherType = 0
	f.Net = NetNone
	if len(data) < 14 {
		f.Truncated = true
		f.Dst, f.Src = MAC{}, MAC{}
		return errShortFrame
	}
	copy(f.Dst[:], data[0:6])
	copy(f.Src[:], data[6:12])
	f.EtherType = EtherType(binary.BigEndian.Uint16(data[12:14]))

	d.tags.n = 0
	_ = d.parser.DecodeLayers(data, &d.decoded) // partial decodes are kept, see above
	if d.parser.Truncated {
		f.Truncated = true
	}
	for _, typ := range d.decoded {
		switch typ {
		case layers.LayerTypeDot1Q:
			// Handled once below: every Dot1Q entry is one tag of d.tags.
		case layers.LayerTypeARP:
			d.fillARP(f)
		case layers.LayerTypeIPv4:
			d.fillIPv4(f)
		case layers.LayerTypeIPv6:
			d.fillIPv6(f)
		case layers.LayerTypeICMPv4:
			f.IP.ICMPType, f.IP.ICMPCode = d.icmp4.TypeCode.Type(), d.icmp4.TypeCode.Code()
			f.IP.ICMPID, f.IP.ICMPSeq = d.icmp4.Id, d.icmp4.Seq
		case layers.LayerTypeICMPv6:
			d.fillICMPv6(f)
		}
	}
	// Each tag's TPID is the type field in front of it: the Ethernet type
	// for the outer tag, the previous tag's type for the next.
	tpid := f.EtherType
	for i := 0; i < d.tags.n; i++ {
		q := &d.tags.q[i]
		tag := Tag{TPID: tpid, VID: q.VLANIdentifier, PCP: q.Priority, DEI: q.DropEligible}
		f.VLANs = append(f.VLANs, tag)
		tpid = EtherType(q.Type)
	}
	f.EtherType = tpid
	return nil
}

func (d *Decoder) fillARP(f *Frame) {
	a := &d.arp
	f.Net = NetARP
	f.ARP = ARPInfo{HwType: uint16(a.AddrType), ProtoType: EtherType(a.Protocol), Op: a.Operation}
	if a.AddrType == layers.LinkTypeEthernet && a.Protocol == layers.EthernetTypeIPv4 &&
		a.HwAddressSize == 6 && a.ProtAddressSize == 4 {
		copy(f.ARP.SenderMAC[:], a.SourceHwAddress)
		copy(f.ARP.TargetMAC[:], a.DstHwAddress)
		f.ARP.SenderIP = netip.AddrFrom4([4]byte(a.SourceProtAddress))
		f.ARP.TargetIP = netip.AddrFrom4([4]byte(a.DstProtAddress))
	}
	// Other hardware/protocol types keep only the numbers (SenderIP stays
	// invalid), and the summary prints those.
}

func (d *Decoder) fillIPv4(f *Frame) {
	ip := &d.ip4
	f.Net = NetIPv4
	f.IP = IPInfo{
		Src:        netip.AddrFrom4([4]byte(ip.SrcIP)),
		Dst:        netip.AddrFrom4([4]byte(ip.DstIP)),
		Proto:      uint8(ip.Protocol),
		TTL:        ip.TTL,
		Fragment:   ip.FragOffset != 0,
		PayloadLen: max(int(ip.Length)-int(ip.IHL)*4, 0),
	}
	if !f.IP.Fragment {
		fillPorts(&f.IP, ip.Payload)
	}
}

func (d *Decoder) fillIPv6(f *Frame) {
	ip := &d.ip6
	f.Net = NetIPv6
	f.IP = IPInfo{
		Src:        netip.AddrFrom16([16]byte(ip.SrcIP)),
		Dst:        netip.AddrFrom16([16]byte(ip.DstIP)),
		Proto:      uint8(ip.NextHeader),
		TTL:        ip.HopLimit,
		PayloadLen: int(ip.Length),
	}
	if ip.HopByHop != nil {
		f.IP.Proto = uint8(ip.HopByHop.NextHeader)
		f.IP.PayloadLen = max(f.IP.PayloadLen-ip.HopByHop.ActualLength, 0)
	}
	if f.IP.Proto == 44 { // fragment header: no transport header follows here
		f.IP.Fragment = true
		return
	}
	fillPorts(&f.IP, ip.Payload)
}

// fillPorts reads UDP/TCP ports straight from the transport bytes: the
// summary needs four bytes, not a decoded layer.
func fillPorts(ip *IPInfo, p []byte) {
	switch ip.Proto {
	case protoUDP, protoTCP:
		if len(p) >= 4 {
			ip.SrcPort = binary.BigEndian.Uint16(p[0:2])
			ip.DstPort = binary.BigEndian.Uint16(p[2:4])
		}
		if ip.Proto == protoTCP && len(p) >= 14 {
			ip.TCPFlags = p[13]
		}
	}
}

func (d *Decoder) fillICMPv6(f *Frame) {
	ic := &d.icmp6
	f.IP.ICMPType, f.IP.ICMPCode = ic.TypeCode.Type(), ic.TypeCode.Code()
	p := ic.Payload // the message body after type, code and checksum
	switch f.IP.ICMPType {
	case 128, 129: // echo: identifier, sequence
		if len(p) >= 4 {
			f.IP.ICMPID = binary.BigEndian.Uint16(p[0:2])
			f.IP.ICMPSeq = binary.BigEndian.Uint16(p[2:4])
		}
	case 135, 136: // neighbour solicitation/advertisement: 4 bytes, then the target
		if len(p) >= 20 {
			f.IP.NDTarget = netip.AddrFrom16([16]byte(p[4:20]))
		}
	}
}

// ethLayer is gopacket's Ethernet layer, except that every VLAN TPID leads to
// the tag decoder: gopacket maps 0x8100 and 0x88a8 to Dot1Q itself, but not
// the pre-standard 0x9100 some QinQ switches still send.
type ethLayer struct{ layers.Ethernet }

func (e *ethLayer) NextLayerType() gopacket.LayerType {
	if EtherType(e.EthernetType).IsVLAN() {
		return layers.LayerTypeDot1Q
	}
	return e.Ethernet.NextLayerType()
}

// vlanStack decodes consecutive VLAN tags into separate layers.Dot1Q values.
// A DecodingLayerParser keeps one decoder per layer type, so a plain Dot1Q
// would decode the inner tag of a QinQ frame over the outer one; this
// container hands each tag its own struct and keeps the whole stack.
type vlanStack struct {
	q [maxTags]layers.Dot1Q
	n int
}

func (s *vlanStack) CanDecode() gopacket.LayerClass { return layers.LayerTypeDot1Q }

func (s *vlanStack) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if s.n == len(s.q) {
		return errTooManyTags
	}
	if err := s.q[s.n].DecodeFromBytes(data, df); err != nil {
		return err
	}
	s.n++
	return nil
}

func (s *vlanStack) NextLayerType() gopacket.LayerType {
	if EtherType(s.q[s.n-1].Type).IsVLAN() {
		return layers.LayerTypeDot1Q
	}
	return s.q[s.n-1].NextLayerType()
}

func (s *vlanStack) LayerPayload() []byte { return s.q[s.n-1].Payload }
