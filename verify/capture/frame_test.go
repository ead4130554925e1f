package capture

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Hand-built frames shared by the decode, pcap, filter and tshark tests.
// They are assembled byte by byte here (we have no frame encoder); the
// expected summaries are lines printed by `TZ=UTC tcpdump -e -nn -r` for the
// same bytes, with the timestamp cut off.

var (
	macA  = MAC{0x02, 0, 0, 0, 0, 0x01}
	macB  = MAC{0x02, 0, 0, 0, 0, 0x02}
	bcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcv6  = MAC{0x33, 0x33, 0, 0, 0, 0x01}
)

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// tagBytes is one VLAN tag: TPID then TCI.
func tagBytes(tpid EtherType, vid uint16, pcp uint8, dei bool) []byte {
	return append(be16(uint16(tpid)), be16(Tag{TPID: tpid, VID: vid, PCP: pcp, DEI: dei}.TCI())...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func arpBody(op uint16, sha MAC, spa [4]byte, tha MAC, tpa [4]byte) []byte {
	return cat(be16(1), be16(0x0800), []byte{6, 4}, be16(op), sha[:], spa[:], tha[:], tpa[:])
}

var (
	ip10_1 = [4]byte{10, 0, 0, 1}
	ip10_2 = [4]byte{10, 0, 0, 2}
)

func arpRequest() []byte { return arpBody(1, macA, ip10_1, MAC{}, ip10_2) }
func arpReply() []byte   { return arpBody(2, macB, ip10_2, macA, ip10_1) }

// ipv4ICMPEcho is a 20-byte IPv4 header and a 16-byte echo request.
func ipv4ICMPEcho() []byte {
	icmp := cat([]byte{8, 0, 0, 0}, be16(0x1234), be16(1), []byte("abcdefgh"))
	ip := cat([]byte{0x45, 0}, be16(uint16(20+len(icmp))), be16(1), be16(0x4000), []byte{64, 1, 0, 0}, ip10_1[:], ip10_2[:])
	return cat(ip, icmp)
}

// ipv4UDP is 10.0.0.1:5353 > 10.0.0.2:53 with 4 payload bytes.
func ipv4UDP() []byte {
	udp := cat(be16(5353), be16(53), be16(12), be16(0), []byte("abcd"))
	ip := cat([]byte{0x45, 0}, be16(uint16(20+len(udp))), be16(2), be16(0x4000), []byte{64, 17, 0, 0}, ip10_1[:], ip10_2[:])
	return cat(ip, udp)
}

var (
	fe80_1 = netip.MustParseAddr("fe80::1")
	ff02_1 = netip.MustParseAddr("ff02::1")
)

func ipv6Header(plen int, next uint8, src, dst netip.Addr) []byte {
	s, d := src.As16(), dst.As16()
	return cat([]byte{0x60, 0, 0, 0}, be16(uint16(plen)), []byte{next, 255}, s[:], d[:])
}

// ipv6Echo is fe80::1 > ff02::1 echo request id 119 seq 3 with 2 data bytes.
func ipv6Echo() []byte {
	icmp := cat([]byte{128, 0, 0, 0}, be16(0x77), be16(3), []byte("xy"))
	return cat(ipv6Header(len(icmp), 58, fe80_1, ff02_1), icmp)
}

// ipv6NS is a neighbour solicitation for fe80::2.
func ipv6NS() []byte {
	tgt := netip.MustParseAddr("fe80::2").As16()
	icmp := cat([]byte{135, 0, 0, 0}, []byte{0, 0, 0, 0}, tgt[:], []byte{1, 1}, macA[:])
	return cat(ipv6Header(len(icmp), 58, fe80_1, netip.MustParseAddr("ff02::1:ff00:2")), icmp)
}

type testFrame struct {
	name    string
	data    []byte
	vlans   []Tag
	etype   EtherType
	net     NetLayer
	summary string // from tcpdump -e -nn; "" when tcpdump prints more than we do
}

func eth(dst, src MAC) []byte { return cat(dst[:], src[:]) }

func testFrames() []testFrame {
	return []testFrame{
		{
			name:    "802.1Q ARP request",
			data:    cat(eth(bcast, macA), tagBytes(EtherType8021Q, 10, 0, false), be16(0x0806), arpRequest()),
			vlans:   []Tag{{TPID: 0x8100, VID: 10}},
			etype:   EtherTypeARP,
			net:     NetARP,
			summary: "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype 802.1Q (0x8100), length 46: vlan 10, p 0, ethertype ARP (0x0806), Request who-has 10.0.0.2 tell 10.0.0.1, length 28",
		},
		{
			name:    "QinQ 802.1ad over 802.1Q",
			data:    cat(eth(bcast, macA), tagBytes(EtherType8021AD, 100, 3, false), tagBytes(EtherType8021Q, 10, 0, true), be16(0x0806), arpRequest()),
			vlans:   []Tag{{TPID: 0x88a8, VID: 100, PCP: 3}, {TPID: 0x8100, VID: 10, DEI: true}},
			etype:   EtherTypeARP,
			net:     NetARP,
			summary: "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype 802.1Q-QinQ (0x88a8), length 50: vlan 100, p 3, ethertype 802.1Q (0x8100), vlan 10, p 0, DEI, ethertype ARP (0x0806), Request who-has 10.0.0.2 tell 10.0.0.1, length 28",
		},
		{
			name:    "802.1ad only",
			data:    cat(eth(bcast, macA), tagBytes(EtherType8021AD, 200, 5, false), be16(0x0806), arpRequest()),
			vlans:   []Tag{{TPID: 0x88a8, VID: 200, PCP: 5}},
			etype:   EtherTypeARP,
			net:     NetARP,
			summary: "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype 802.1Q-QinQ (0x88a8), length 46: vlan 200, p 5, ethertype ARP (0x0806), Request who-has 10.0.0.2 tell 10.0.0.1, length 28",
		},
		{
			name:    "VLAN 0 priority tag",
			data:    cat(eth(bcast, macA), tagBytes(EtherType8021Q, 0, 6, false), be16(0x0806), arpRequest()),
			vlans:   []Tag{{TPID: 0x8100, VID: 0, PCP: 6}},
			etype:   EtherTypeARP,
			net:     NetARP,
			summary: "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype 802.1Q (0x8100), length 46: vlan 0, p 6, ethertype ARP (0x0806), Request who-has 10.0.0.2 tell 10.0.0.1, length 28",
		},
		{
			name:    "untagged ARP request",
			data:    cat(eth(bcast, macA), be16(0x0806), arpRequest()),
			etype:   EtherTypeARP,
			net:     NetARP,
			summary: "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 10.0.0.2 tell 10.0.0.1, length 28",
		},
		{
			name:    "untagged ARP reply",
			data:    cat(eth(macA, macB), be16(0x0806), arpReply()),
			etype:   EtherTypeARP,
			net:     NetARP,
			summary: "02:00:00:00:00:02 > 02:00:00:00:00:01, ethertype ARP (0x0806), length 42: Reply 10.0.0.2 is-at 02:00:00:00:00:02, length 28",
		},
		{
			name:    "802.1Q IPv4 ICMP echo",
			data:    cat(eth(macB, macA), tagBytes(EtherType8021Q, 20, 0, false), be16(0x0800), ipv4ICMPEcho()),
			vlans:   []Tag{{TPID: 0x8100, VID: 20}},
			etype:   EtherTypeIPv4,
			net:     NetIPv4,
			summary: "02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype 802.1Q (0x8100), length 54: vlan 20, p 0, ethertype IPv4 (0x0800), 10.0.0.1 > 10.0.0.2: ICMP echo request, id 4660, seq 1, length 16",
		},
		{
			name:    "IPv4 ICMP echo",
			data:    cat(eth(macB, macA), be16(0x0800), ipv4ICMPEcho()),
			etype:   EtherTypeIPv4,
			net:     NetIPv4,
			summary: "02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype IPv4 (0x0800), length 50: 10.0.0.1 > 10.0.0.2: ICMP echo request, id 4660, seq 1, length 16",
		},
		{
			name:    "IPv6 ICMPv6 echo",
			data:    cat(eth(mcv6, macA), be16(0x86dd), ipv6Echo()),
			etype:   EtherTypeIPv6,
			net:     NetIPv6,
			summary: "02:00:00:00:00:01 > 33:33:00:00:00:01, ethertype IPv6 (0x86dd), length 64: fe80::1 > ff02::1: ICMP6, echo request, id 119, seq 3, length 10",
		},
		{
			name:    "802.1Q IPv6 ICMPv6 echo",
			data:    cat(eth(mcv6, macA), tagBytes(EtherType8021Q, 30, 7, false), be16(0x86dd), ipv6Echo()),
			vlans:   []Tag{{TPID: 0x8100, VID: 30, PCP: 7}},
			etype:   EtherTypeIPv6,
			net:     NetIPv6,
			summary: "02:00:00:00:00:01 > 33:33:00:00:00:01, ethertype 802.1Q (0x8100), length 68: vlan 30, p 7, ethertype IPv6 (0x86dd), fe80::1 > ff02::1: ICMP6, echo request, id 119, seq 3, length 10",
		},
		{
			name:    "IPv6 neighbor solicitation",
			data:    cat(eth(MAC{0x33, 0x33, 0xff, 0, 0, 2}, macA), be16(0x86dd), ipv6NS()),
			etype:   EtherTypeIPv6,
			net:     NetIPv6,
			summary: "02:00:00:00:00:01 > 33:33:ff:00:00:02, ethertype IPv6 (0x86dd), length 86: fe80::1 > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has fe80::2, length 32",
		},
		{
			name:  "IPv4 UDP",
			data:  cat(eth(macB, macA), be16(0x0800), ipv4UDP()),
			etype: EtherTypeIPv4,
			net:   NetIPv4,
			// tcpdump decodes port 53 as DNS; we stop at UDP.
		},
		{
			name:    "0x9100 outer tag",
			data:    cat(eth(bcast, macA), tagBytes(EtherTypeQinQ, 300, 0, false), tagBytes(EtherType8021Q, 10, 0, false), be16(0x0806), arpRequest()),
			vlans:   []Tag{{TPID: 0x9100, VID: 300}, {TPID: 0x8100, VID: 10}},
			etype:   EtherTypeARP,
			net:     NetARP,
			summary: "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype 802.1Q-9100 (0x9100), length 50: vlan 300, p 0, ethertype 802.1Q (0x8100), vlan 10, p 0, ethertype ARP (0x0806), Request who-has 10.0.0.2 tell 10.0.0.1, length 28",
		},
		{
			name:  "VLAN 0 TCI 0",
			data:  cat(eth(bcast, macA), tagBytes(EtherType8021Q, 0, 0, false), be16(0x0806), arpRequest()),
			vlans: []Tag{{TPID: 0x8100}},
			etype: EtherTypeARP,
			net:   NetARP,

			summary: "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype 802.1Q (0x8100), length 46: vlan 0, p 0, ethertype ARP (0x0806), Request who-has 10.0.0.2 tell 10.0.0.1, length 28",
		},
	}
}

func TestMACParseFormat(t *testing.T) {
	m, err := ParseMAC("02:AA:bb:0c:00:ff")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.String(), "02:aa:bb:0c:00:ff"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, err := ParseMAC("02:aa:bb"); err == nil || !strings.Contains(err.Error(), "six hex bytes") {
		t.Errorf("short MAC: err = %v, want one naming the fix", err)
	}
	if _, err := ParseMAC("00:00:00:00:fe:80:00:00:00:00:00:00:00:00:00:00:00:00:00:00"); err == nil {
		t.Error("20-byte InfiniBand address accepted as a MAC")
	}
	// One-digit bytes, as ip (and so `vmlink link add … address`) reads
	// them: a MAC given to one command is one the capture filter accepts.
	if m, err := ParseMAC("2:0:0:0:0:1"); err != nil || m.String() != "02:00:00:00:00:01" {
		t.Errorf(`ParseMAC("2:0:0:0:0:1") = %v, %v; ip reads 02:00:00:00:00:01`, m, err)
	}
	if !bcast.IsBroadcast() || !bcast.IsMulticast() || macA.IsMulticast() || !mcv6.IsMulticast() {
		t.Error("broadcast/multicast bits misread")
	}
}

func TestTagTCI(t *testing.T) {
	for _, tc := range []struct {
		tci uint16
		tag Tag
	}{
		{0x000a, Tag{TPID: 0x8100, VID: 10}},
		{0x6064, Tag{TPID: 0x8100, VID: 100, PCP: 3}},
		{0x100a, Tag{TPID: 0x8100, VID: 10, DEI: true}},
		{0xffff, Tag{TPID: 0x8100, VID: 4095, PCP: 7, DEI: true}},
		{0x0000, Tag{TPID: 0x8100}},
	} {
		if got := tagFromTCI(0x8100, tc.tci); got != tc.tag {
			t.Errorf("tagFromTCI(%#04x) = %+v, want %+v", tc.tci, got, tc.tag)
		}
		if got := tc.tag.TCI(); got != tc.tci {
			t.Errorf("%+v.TCI() = %#04x, want %#04x", tc.tag, got, tc.tci)
		}
	}
}

func TestLineFormatter(t *testing.T) {
	d := NewDecoder()
	var f Frame
	tf := testFrames()[0]
	if err := d.Decode(tf.data, &f); err != nil {
		t.Fatal(err)
	}
	f.Time = time.Date(2023, 11, 14, 22, 13, 20, 123456789, time.UTC)
	lf := lineFormatter{Location: time.UTC}
	got := string(lf.appendLine(nil, &f))
	want := "22:13:20.123456 " + tf.summary + "\n"
	if got != want {
		t.Errorf("line:\n got %q\nwant %q", got, want)
	}
	// The cached clock must follow the second.
	f.Time = f.Time.Add(61 * time.Second)
	if got := string(lf.appendLine(nil, &f)); !strings.HasPrefix(got, "22:14:21.123456 ") {
		t.Errorf("after a minute: %q", got)
	}
	f.Dir = DirOutgoing
	if got := string(lf.appendLine(nil, &f)); !strings.HasPrefix(got, "22:14:21.123456 Out 02:00") {
		t.Errorf("outgoing: %q", got)
	}
}

func TestDirection(t *testing.T) {
	for pkttype, want := range map[uint8]Direction{0: DirHost, 1: DirBroadcast, 2: DirMulticast, 3: DirOtherHost, 4: DirOutgoing, 7: DirUnknown} {
		if got := directionFromPktType(pkttype); got != want {
			t.Errorf("pkttype %d: %v, want %v", pkttype, got, want)
		}
	}
	for _, d := range []Direction{DirHost, DirBroadcast, DirMulticast, DirOtherHost, DirOutgoing, DirIn} {
		if got := directionFromEPBFlags(epbFlags(d)); got != d {
			t.Errorf("epb_flags round trip of %v gave %v", d, got)
		}
	}
	if DirOutgoing.Way() != "out" || DirOtherHost.Way() != "in" || DirUnknown.Way() != "unknown" {
		t.Error("Way() words wrong")
	}
}
