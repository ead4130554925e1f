// Command benchgen writes the pcap `make bench-decode` reads: N frames
// cycling through 802.1Q, QinQ (802.1ad over 802.1Q), 802.1ad-only,
// priority-tagged and untagged frames carrying ARP, IPv4/ICMP and
// IPv6/ICMPv6, written with capture's own PcapWriter.
//
//	go run ./verify/capture/testdata/benchgen -n 1000000 -o /tmp/bench.pcap
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/vmlink/vmlink/verify/capture"
)

func main() {
	n := flag.Int("n", 1000000, "number of frames")
	out := flag.String("o", "bench.pcap", "output file")
	flag.Parse()
	if err := write(*out, *n); err != nil {
		fmt.Fprintln(os.Stderr, "benchgen:", err)
		os.Exit(1)
	}
}

func write(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := capture.NewPcapWriter(f, 0)
	if err != nil {
		return err
	}
	frames := mix()
	t := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		// 10 µs apart: a million frames span ten seconds of capture.
		if err := w.WritePacket(t.Add(time.Duration(i)*10*time.Microsecond), frames[i%len(frames)], 0); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func tag(tpid uint16, vid uint16, pcp uint8) []byte {
	return append(be16(tpid), be16(uint16(pcp)<<13|vid)...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func mix() [][]byte {
	a := []byte{0x02, 0, 0, 0, 0, 0x01}
	b := []byte{0x02, 0, 0, 0, 0, 0x02}
	bc := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	v6mc := []byte{0x33, 0x33, 0, 0, 0, 0x01}
	ip1, ip2 := []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}
	arpReq := cat(be16(1), be16(0x0800), []byte{6, 4}, be16(1), a, ip1, make([]byte, 6), ip2)
	arpRep := cat(be16(1), be16(0x0800), []byte{6, 4}, be16(2), b, ip2, a, ip1)
	icmp := cat([]byte{8, 0, 0xf7, 0xff}, be16(0x1234), be16(1), []byte("abcdefghabcdefgh"))
	ip4 := cat([]byte{0x45, 0}, be16(uint16(20+len(icmp))), be16(1), be16(0x4000), []byte{64, 1, 0, 0}, ip1, ip2, icmp)
	icmp6 := cat([]byte{128, 0, 0, 0}, be16(0x77), be16(3), []byte("xyxyxyxy"))
	src6 := []byte{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	dst6 := []byte{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	ip6 := cat([]byte{0x60, 0, 0, 0}, be16(uint16(len(icmp6))), []byte{58, 64}, src6, dst6, icmp6)
	return [][]byte{
		cat(bc, a, tag(0x8100, 10, 0), be16(0x0806), arpReq),
		cat(a, b, tag(0x8100, 10, 0), be16(0x0806), arpRep),
		cat(bc, a, tag(0x88a8, 100, 3), tag(0x8100, 20, 0), be16(0x0806), arpReq),
		cat(bc, a, tag(0x88a8, 200, 0), be16(0x0806), arpReq),
		cat(bc, a, be16(0x0806), arpReq),
		cat(b, a, tag(0x8100, 20, 0), be16(0x0800), ip4),
		cat(b, a, be16(0x0800), ip4),
		cat(b, a, tag(0x88a8, 100, 0), tag(0x8100, 30, 5), be16(0x0800), ip4),
		cat(v6mc, a, be16(0x86dd), ip6),
		cat(v6mc, a, tag(0x8100, 0, 6), be16(0x86dd), ip6),
	}
}
