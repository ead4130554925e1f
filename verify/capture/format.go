package capture

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"time"
)

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
			b = appendEcho(b, ip.ICMPType == 8, ip)
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
			b = appendEcho(b, ip.ICMPType == 128, ip)
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

// appendEcho appends an ICMP or ICMPv6 echo as tcpdump prints both:
// "echo request, id N, seq N".
func appendEcho(b []byte, request bool, ip *IPInfo) []byte {
	if request {
		b = append(b, "echo request, id "...)
	} else {
		b = append(b, "echo reply, id "...)
	}
	b = appendUint(b, uint64(ip.ICMPID))
	b = append(b, ", seq "...)
	return appendUint(b, uint64(ip.ICMPSeq))
}
