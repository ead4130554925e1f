package capture

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
