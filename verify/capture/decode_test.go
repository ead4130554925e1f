package capture

import (
	"net/netip"
	"slices"
	"testing"
)

func TestDecodeTable(t *testing.T) {
	d := NewDecoder()
	for _, tc := range testFrames() {
		t.Run(tc.name, func(t *testing.T) {
			var f Frame
			if err := d.Decode(tc.data, &f); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !slices.Equal(f.VLANs, tc.vlans) {
				t.Errorf("VLANs = %+v, want %+v", f.VLANs, tc.vlans)
			}
			if f.EtherType != tc.etype {
				t.Errorf("EtherType = %#04x, want %#04x", uint16(f.EtherType), uint16(tc.etype))
			}
			if f.Net != tc.net {
				t.Errorf("Net = %v, want %v", f.Net, tc.net)
			}
			if f.Src != MACFrom(tc.data[6:12]) || f.Dst != MACFrom(tc.data[0:6]) {
				t.Errorf("src/dst = %v/%v", f.Src, f.Dst)
			}
			if f.Length != len(tc.data) || f.Truncated {
				t.Errorf("Length = %d Truncated = %v, want %d false", f.Length, f.Truncated, len(tc.data))
			}
			if f.HeaderLen()+0 != 14+4*len(tc.vlans) {
				t.Errorf("HeaderLen = %d", f.HeaderLen())
			}
			if tc.summary != "" {
				if got := f.Summary(); got != tc.summary {
					t.Errorf("Summary:\n got %s\nwant %s", got, tc.summary)
				}
			}
		})
	}
}

func TestDecodeFields(t *testing.T) {
	d := NewDecoder()
	fr := testFrames()
	var f Frame

	if err := d.Decode(fr[1].data, &f); err != nil { // QinQ ARP request
		t.Fatal(err)
	}
	want := ARPInfo{HwType: 1, ProtoType: EtherTypeIPv4, Op: 1, SenderMAC: macA,
		SenderIP: netip.AddrFrom4(ip10_1), TargetIP: netip.AddrFrom4(ip10_2)}
	if f.ARP != want {
		t.Errorf("ARP = %+v, want %+v", f.ARP, want)
	}

	if err := d.Decode(fr[6].data, &f); err != nil { // tagged ICMP echo
		t.Fatal(err)
	}
	if f.IP.Src != netip.AddrFrom4(ip10_1) || f.IP.Dst != netip.AddrFrom4(ip10_2) || f.IP.Proto != 1 ||
		f.IP.ICMPType != 8 || f.IP.ICMPID != 0x1234 || f.IP.ICMPSeq != 1 || f.IP.PayloadLen != 16 || f.IP.TTL != 64 {
		t.Errorf("IPv4/ICMP = %+v", f.IP)
	}

	if err := d.Decode(fr[10].data, &f); err != nil { // neighbour solicitation
		t.Fatal(err)
	}
	if f.IP.ICMPType != 135 || f.IP.NDTarget != netip.MustParseAddr("fe80::2") || f.IP.Proto != 58 {
		t.Errorf("ICMPv6 NS = %+v", f.IP)
	}

	if err := d.Decode(fr[11].data, &f); err != nil { // UDP
		t.Fatal(err)
	}
	if f.IP.SrcPort != 5353 || f.IP.DstPort != 53 || f.IP.PayloadLen != 12 {
		t.Errorf("UDP = %+v", f.IP)
	}
	if got, want := f.Summary(), "02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype IPv4 (0x0800), length 46: 10.0.0.1.5353 > 10.0.0.2.53: UDP, length 4"; got != want {
		t.Errorf("UDP summary:\n got %s\nwant %s", got, want)
	}
}

// A decode must reset everything the previous frame set.
func TestDecodeReuse(t *testing.T) {
	d := NewDecoder()
	fr := testFrames()
	var f Frame
	_ = d.Decode(fr[1].data, &f) // QinQ ARP
	if err := d.Decode(fr[7].data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.VLANs) != 0 || f.Net != NetIPv4 || f.EtherType != EtherTypeIPv4 {
		t.Errorf("after reuse: VLANs %v Net %v EtherType %v", f.VLANs, f.Net, f.EtherType)
	}
	f.Truncated = false
	unknown := cat(eth(bcast, macA), be16(0x88b5), make([]byte, 46))
	if err := d.Decode(unknown, &f); err != nil {
		t.Fatal(err)
	}
	if f.Net != NetNone {
		t.Errorf("unknown ethertype decoded as %v", f.Net)
	}
	if got, want := f.Summary(), "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype Unknown (0x88b5), length 60"; got != want {
		t.Errorf("unknown summary:\n got %s\nwant %s", got, want)
	}
}

func TestDecodeBroken(t *testing.T) {
	d := NewDecoder()
	var f Frame
	if err := d.Decode(make([]byte, 13), &f); err == nil || !f.Truncated {
		t.Errorf("13-byte frame: err %v truncated %v, want an error", err, f.Truncated)
	}

	// A tag cut in half: the tag is not reported, the frame is truncated.
	f = Frame{}
	half := cat(eth(bcast, macA), be16(0x8100), []byte{0})
	if err := d.Decode(half, &f); err != nil {
		t.Fatal(err)
	}
	if !f.Truncated || len(f.VLANs) != 0 {
		t.Errorf("half tag: Truncated %v VLANs %v", f.Truncated, f.VLANs)
	}

	// An ARP body cut short keeps its tag and stops before ARP.
	f = Frame{}
	short := cat(eth(bcast, macA), tagBytes(EtherType8021Q, 7, 0, false), be16(0x0806), arpRequest()[:12])
	if err := d.Decode(short, &f); err != nil {
		t.Fatal(err)
	}
	if !f.Truncated || f.Net != NetNone || len(f.VLANs) != 1 || f.VLANs[0].VID != 7 {
		t.Errorf("short ARP: %+v", f)
	}

	// More tags than the decoder walks: no panic, the first maxTags kept.
	f = Frame{}
	var deep []byte
	deep = append(deep, eth(bcast, macA)...)
	for i := 0; i < maxTags+2; i++ {
		deep = append(deep, tagBytes(EtherType8021Q, uint16(i+1), 0, false)...)
	}
	deep = append(deep, be16(0x0806)...)
	deep = append(deep, arpRequest()...)
	if err := d.Decode(deep, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.VLANs) != maxTags || f.VLANs[maxTags-1].VID != maxTags {
		t.Errorf("deep stack: %d tags", len(f.VLANs))
	}

	// 802.3 length instead of a type.
	f = Frame{}
	llc := cat(eth(MAC{0x01, 0x80, 0xc2, 0, 0, 0}, macA), be16(38), []byte{0x42, 0x42, 0x03}, make([]byte, 35))
	if err := d.Decode(llc, &f); err != nil {
		t.Fatal(err)
	}
	if got, want := f.Summary(), "02:00:00:00:00:01 > 01:80:c2:00:00:00, 802.3, length 52: LLC"; got != want {
		t.Errorf("802.3:\n got %s\nwant %s", got, want)
	}
}

func TestCloneIndependent(t *testing.T) {
	d := NewDecoder()
	fr := testFrames()
	var f Frame
	_ = d.Decode(fr[1].data, &f)
	c := f.Clone()
	_ = d.Decode(fr[0].data, &f)
	f.tagBuf[0] = Tag{}
	if len(c.VLANs) != 2 || c.VLANs[0].VID != 100 || c.VLANs[1].VID != 10 {
		t.Errorf("clone changed with the original: %+v", c.VLANs)
	}
	if &c.Data[0] == &fr[1].data[0] {
		t.Error("clone shares Data")
	}
}

func TestDecodeNoAlloc(t *testing.T) {
	d := NewDecoder()
	fr := testFrames()
	var f Frame
	var line []byte
	allocs := testing.AllocsPerRun(200, func() {
		for _, tc := range fr {
			_ = d.Decode(tc.data, &f)
			line = f.AppendSummary(line[:0])
		}
	})
	if allocs != 0 {
		t.Errorf("decode+summary allocates %.1f times per %d frames, want 0", allocs, len(fr))
	}
}
