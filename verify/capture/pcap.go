package capture

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// File formats FileReader understands.
const (
	pcapMagicMicro   = 0xa1b2c3d4
	pcapMagicNano    = 0xa1b23c4d
	pcapngBlockSHB   = 0x0a0d0d0a
	pcapngByteOrder  = 0x1a2b3c4d
	linkTypeEthernet = 1

	// readBufSize is the reader's buffer: frames up to this size are decoded
	// in place (no copy), larger ones go through a separate buffer.
	readBufSize = 1 << 20
	// maxCaptureLen bounds a record's captured length; a larger value means
	// a corrupt file, not a frame (libpcap itself keeps at most 256 KiB).
	maxCaptureLen = 16 << 20
)

// FileFormat is the container format of a capture file.
type FileFormat uint8

// File formats. The zero value is not a format.
const (
	_ FileFormat = iota
	FormatPcap
	FormatPcapng
)

func (f FileFormat) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapng:
		return "pcapng"
	}
	return "unknown"
}

// FileReader reads and decodes the frames of a pcap or pcapng file, from
// tcpdump, tshark, dumpcap or ourselves. Offline the VLAN tags are inline in
// the file; a pcapng's per-packet direction (epb_flags) and comment are kept.
//
// It does not allocate per frame: records are decoded straight out of the
// read buffer, and the returned Frame is reused by the next call.
type FileReader struct {
	src    io.Reader // the file; br buffers it
	br     *bufio.Reader
	closer io.Closer
	dec    *Decoder
	frame  Frame
	big    []byte // records larger than the read buffer
	format FileFormat
	n      uint64 // frames returned, for error messages

	// the record just read, decoded by Next
	data    []byte
	wireLen int

	// pcap
	be       bool // big-endian file
	nano     bool // nanosecond timestamps
	linkType uint32

	// pcapng
	ngBE   bool
	ifaces []ngIface
}

// ngIface is what an Interface Description Block says about its packets.
type ngIface struct {
	linkType uint16
	snaplen  uint32
	resol    tsResolution
	offset   int64 // if_tsoffset, seconds
}

// tsResolution converts pcapng timestamp units to time.
type tsResolution struct {
	binary bool   // 2^-exp seconds instead of 10^-exp
	exp    uint8  // exponent
	mul    uint64 // decimal exp <= 9: ns = units * mul
	div    uint64 // decimal exp > 9: ns = units / div
}

func newTSResolution(v uint8) tsResolution {
	r := tsResolution{binary: v&0x80 != 0, exp: v & 0x7f}
	if !r.binary {
		r.mul, r.div = 1, 1
		for e := r.exp; e < 9; e++ {
			r.mul *= 10
		}
		for e := uint8(9); e < r.exp && e < 28; e++ {
			r.div *= 10
		}
	}
	return r
}

func (r tsResolution) time(units uint64, offset int64) time.Time {
	if r.binary {
		exp := min(r.exp, 63)
		sec := units >> exp
		frac := units & (1<<exp - 1)
		ns := (frac * 1e9) >> exp // exact enough for exp <= 30, the only ones in use
		return time.Unix(int64(sec)+offset, int64(ns))
	}
	ns := units * r.mul / r.div
	return time.Unix(int64(ns/1e9)+offset, int64(ns%1e9))
}

// OpenFile opens a pcap or pcapng file ("-" reads standard input).
func OpenFile(path string) (*FileReader, error) {
	var rc io.ReadCloser = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open capture file: %w", err)
		}
		rc = f
	}
	r, err := NewFileReader(rc)
	if err != nil {
		if path != "-" {
			rc.Close()
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if path != "-" {
		r.closer = rc
	}
	return r, nil
}

// NewFileReader reads a pcap or pcapng stream, told apart by its magic.
func NewFileReader(rd io.Reader) (*FileReader, error) {
	r := &FileReader{src: rd, br: bufio.NewReaderSize(rd, readBufSize), dec: NewDecoder()}
	head, err := r.br.Peek(4)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file: not a pcap or pcapng capture")
		}
		return nil, err
	}
	le, be := binary.LittleEndian.Uint32(head), binary.BigEndian.Uint32(head)
	switch {
	case le == pcapngBlockSHB:
		r.format = FormatPcapng
		return r, nil // the section header is read as the first block
	case le == pcapMagicMicro || le == pcapMagicNano:
		r.nano = le == pcapMagicNano
	case be == pcapMagicMicro || be == pcapMagicNano:
		r.be, r.nano = true, be == pcapMagicNano
	default:
		return nil, fmt.Errorf("not a pcap or pcapng file (magic %08x)", be)
	}
	r.format = FormatPcap
	hdr := make([]byte, 24)
	if _, err := io.ReadFull(r.br, hdr); err != nil {
		return nil, fmt.Errorf("read pcap file header: %w", err)
	}
	r.linkType = r.u32(hdr[20:24]) & 0x0fffffff // upper bits: FCS length flags
	if r.linkType != linkTypeEthernet {
		return nil, linkTypeError(r.linkType)
	}
	return r, nil
}

func linkTypeError(lt uint32) error {
	name := ""
	switch lt {
	case 113:
		name = " (Linux cooked, from -i any)"
	case 276:
		name = " (Linux cooked v2, from -i any)"
	}
	return fmt.Errorf("link type %d%s is not Ethernet: capture on the interface itself, not -i any", lt, name)
}

// Format reports whether the file is pcap or pcapng.
func (r *FileReader) Format() FileFormat { return r.format }

// Close closes the file opened by OpenFile.
func (r *FileReader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// Next returns the next frame, decoded; io.EOF after the last one. The
// Frame and its Data are reused by the following call (see Frame.Clone).
// ctx is checked every 4096 frames: a file read never blocks on the network.
func (r *FileReader) Next(ctx context.Context) (*Frame, error) {
	if r.n&4095 == 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if err := r.nextRecord(); err != nil {
		return nil, err
	}
	// A frame shorter than an Ethernet header still comes back (Truncated,
	// no addresses): the file holds it, and a reader should count it.
	_ = r.dec.decodeCaptured(r.data, r.wireLen, &r.frame)
	return &r.frame, nil
}

// nextRecord reads the next record without decoding it: r.data and
// r.wireLen, and the frame's Time, Dir and Comment. Dump's parallel path
// decodes the records on other goroutines.
func (r *FileReader) nextRecord() error {
	var err error
	if r.format == FormatPcap {
		err = r.nextPcap()
	} else {
		err = r.nextPcapng()
	}
	if err == nil {
		r.n++
	}
	return err
}

func (r *FileReader) u32(b []byte) uint32 {
	if r.be {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// record returns n bytes of the stream: a view into the read buffer when it
// fits, otherwise a copy in r.big. Either is valid until the next call.
func (r *FileReader) record(n int) ([]byte, error) {
	if n <= r.br.Size() {
		b, err := r.br.Peek(n)
		if err != nil {
			return nil, truncatedErr(err)
		}
		_, _ = r.br.Discard(n) // cannot fail: Peek returned n bytes
		return b, nil
	}
	if cap(r.big) < n {
		r.big = make([]byte, n)
	}
	b := r.big[:n]
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, truncatedErr(err)
	}
	return b, nil
}

// readBlock fills p with the next bytes of the file: what the buffer holds
// first, then straight from the file without going through the buffer.
// Dump's parallel path reads classic pcap this way, in big blocks.
func (r *FileReader) readBlock(p []byte) (int, error) {
	n := 0
	if r.br.Buffered() > 0 {
		n, _ = r.br.Read(p) // only copies what is buffered: cannot fail
	}
	m, err := io.ReadFull(r.src, p[n:])
	return n + m, err
}

func truncatedErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("file ends in the middle of a record: truncated capture")
	}
	return err
}

func (r *FileReader) nextPcap() error {
	hdr, err := r.br.Peek(16)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hdr) == 0 {
			return io.EOF
		}
		return truncatedErr(err)
	}
	capLen, wireLen := r.pcapLens(hdr)
	if capLen > maxCaptureLen {
		return corruptRecord(r.n+1, capLen)
	}
	rec, err := r.record(16 + capLen)
	if err != nil {
		return err
	}
	f := &r.frame
	f.Time = r.pcapTime(rec)
	f.IfIndex, f.Dir, f.Comment = 0, DirUnknown, ""
	r.data, r.wireLen = rec[16:], wireLen
	return nil
}

// pcapLens reads the captured and wire lengths of a pcap record header.
func (r *FileReader) pcapLens(hdr []byte) (capLen, wireLen int) {
	return int(r.u32(hdr[8:12])), int(r.u32(hdr[12:16]))
}

// pcapTime reads the timestamp of a pcap record header.
func (r *FileReader) pcapTime(hdr []byte) time.Time {
	sec, frac := r.u32(hdr[0:4]), r.u32(hdr[4:8])
	if !r.nano {
		frac *= 1000
	}
	return time.Unix(int64(sec), int64(frac))
}

func corruptRecord(n uint64, capLen int) error {
	return fmt.Errorf("record %d claims %d captured bytes: corrupt pcap file", n, capLen)
}

// pcapng block types we read; the rest are skipped.
const (
	ngBlockIDB = 1
	ngBlockPB  = 2 // obsolete Packet Block
	ngBlockSPB = 3
	ngBlockISB = 5
	ngBlockEPB = 6
)

func (r *FileReader) ngU32(b []byte) uint32 {
	if r.ngBE {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *FileReader) ngU16(b []byte) uint16 {
	if r.ngBE {
		return binary.BigEndian.Uint16(b)
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *FileReader) nextPcapng() error {
	for {
		hdr, err := r.br.Peek(12)
		if err != nil {
			if errors.Is(err, io.EOF) && len(hdr) == 0 {
				return io.EOF
			}
			return truncatedErr(err)
		}
		if binary.LittleEndian.Uint32(hdr) == pcapngBlockSHB {
			switch binary.LittleEndian.Uint32(hdr[8:12]) {
			case pcapngByteOrder:
				r.ngBE = false
			case 0x4d3c2b1a:
				r.ngBE = true
			default:
				return errors.New("pcapng section header with a bad byte-order magic: corrupt file")
			}
		}
		typ, blen := r.ngU32(hdr[0:4]), r.ngU32(hdr[4:8])
		if blen < 12 || blen%4 != 0 || blen > maxCaptureLen+1024 {
			return fmt.Errorf("pcapng block of %d bytes after frame %d: corrupt file", blen, r.n)
		}
		blk, err := r.record(int(blen))
		if err != nil {
			return err
		}
		body := blk[8 : blen-4]
		switch typ {
		case pcapngBlockSHB:
			r.ifaces = r.ifaces[:0] // interfaces are numbered per section
		case ngBlockIDB:
			if err := r.readIDB(body); err != nil {
				return err
			}
		case ngBlockEPB, ngBlockPB:
			if ok, err := r.readEPB(typ, body); ok || err != nil {
				return err
			}
		case ngBlockSPB:
			if ok, err := r.readSPB(body); ok || err != nil {
				return err
			}
		}
	}
}

func (r *FileReader) readIDB(body []byte) error {
	if len(body) < 8 {
		return errors.New("pcapng interface block too short: corrupt file")
	}
	ifc := ngIface{linkType: r.ngU16(body[0:2]), snaplen: r.ngU32(body[4:8]), resol: newTSResolution(6)}
	if ifc.linkType != linkTypeEthernet {
		return linkTypeError(uint32(ifc.linkType))
	}
	r.options(body[8:], func(code uint16, v []byte) {
		switch {
		case code == 9 && len(v) >= 1: // if_tsresol
			ifc.resol = newTSResolution(v[0])
		case code == 14 && len(v) >= 8: // if_tsoffset
			if r.ngBE {
				ifc.offset = int64(binary.BigEndian.Uint64(v))
			} else {
				ifc.offset = int64(binary.LittleEndian.Uint64(v))
			}
		}
	})
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

// options walks a pcapng option list.
func (r *FileReader) options(b []byte, fn func(code uint16, v []byte)) {
	for len(b) >= 4 {
		code, l := r.ngU16(b[0:2]), int(r.ngU16(b[2:4]))
		if code == 0 || 4+l > len(b) {
			return
		}
		fn(code, b[4:4+l])
		b = b[4+(l+3)&^3:]
	}
}

// readEPB reads an Enhanced (or obsolete) Packet Block; ok says a frame is ready.
func (r *FileReader) readEPB(typ uint32, body []byte) (ok bool, err error) {
	if len(body) < 20 {
		return false, errors.New("pcapng packet block too short: corrupt file")
	}
	var ifc uint32
	if typ == ngBlockEPB {
		ifc = r.ngU32(body[0:4])
	} else {
		ifc = uint32(r.ngU16(body[0:2]))
	}
	if int(ifc) >= len(r.ifaces) {
		return false, fmt.Errorf("pcapng packet for interface %d, which was never described: corrupt file", ifc)
	}
	units := uint64(r.ngU32(body[4:8]))<<32 | uint64(r.ngU32(body[8:12]))
	capLen, wireLen := r.ngU32(body[12:16]), r.ngU32(body[16:20])
	if int(capLen) > len(body)-20 {
		return false, errors.New("pcapng packet longer than its block: corrupt file")
	}
	f := &r.frame
	in := &r.ifaces[ifc]
	f.Time = in.resol.time(units, in.offset)
	f.IfIndex, f.Dir, f.Comment = 0, DirUnknown, ""
	r.data, r.wireLen = body[20:20+capLen], int(wireLen)
	r.options(body[20+(capLen+3)&^3:], func(code uint16, v []byte) {
		switch {
		case code == 1 && f.Comment == "": // opt_comment
			f.Comment = string(v)
		case code == 2 && len(v) >= 4: // epb_flags (pack_flags in the old block)
			f.Dir = directionFromEPBFlags(r.ngU32(v))
		}
	})
	return true, nil
}

func (r *FileReader) readSPB(body []byte) (ok bool, err error) {
	if len(body) < 4 || len(r.ifaces) == 0 {
		return false, errors.New("pcapng simple packet block without an interface: corrupt file")
	}
	wireLen := r.ngU32(body[0:4])
	capLen := min(wireLen, uint32(len(body)-4))
	if s := r.ifaces[0].snaplen; s != 0 && capLen > s {
		capLen = s
	}
	f := &r.frame
	f.Time = time.Time{} // simple packet blocks carry no timestamp
	f.IfIndex, f.Dir, f.Comment = 0, DirUnknown, ""
	r.data, r.wireLen = body[4:4+capLen], int(wireLen)
	return true, nil
}

// epb_flags bits (pcapng spec, section 4.3.1).
const (
	epbInbound       = 0b01
	epbOutbound      = 0b10
	epbRecvUnicast   = 1 << 2
	epbRecvMulticast = 2 << 2
	epbRecvBroadcast = 3 << 2
	epbRecvPromisc   = 4 << 2
)

func directionFromEPBFlags(v uint32) Direction {
	if v&3 == epbOutbound {
		return DirOutgoing
	}
	switch v & (7 << 2) {
	case epbRecvUnicast:
		return DirHost
	case epbRecvMulticast:
		return DirMulticast
	case epbRecvBroadcast:
		return DirBroadcast
	case epbRecvPromisc:
		return DirOtherHost
	}
	if v&3 == epbInbound {
		return DirIn
	}
	return DirUnknown
}

// epbFlags is the inverse of directionFromEPBFlags; 0 means unknown.
func epbFlags(d Direction) uint32 {
	switch d {
	case DirHost:
		return epbInbound | epbRecvUnicast
	case DirBroadcast:
		return epbInbound | epbRecvBroadcast
	case DirMulticast:
		return epbInbound | epbRecvMulticast
	case DirOtherHost:
		return epbInbound | epbRecvPromisc
	case DirIn:
		return epbInbound
	case DirOutgoing:
		return epbOutbound
	}
	return 0
}

// frameWriter writes frames to a capture file. The comment is stored with
// the frame where the format allows it (pcapng), and ignored otherwise.
type frameWriter interface {
	WriteFrame(f *Frame, comment string) error
	Flush() error
}

// PcapWriter writes classic pcap (microsecond timestamps, Ethernet): the
// format every tool reads, used by the decode benchmark and the tshark
// tests. It has no room for direction or comments; use PcapngWriter for those.
type PcapWriter struct {
	w   *bufio.Writer
	hdr [16]byte
}

// NewPcapWriter writes the file header; snaplen 0 means 262144.
func NewPcapWriter(w io.Writer, snaplen int) (*PcapWriter, error) {
	if snaplen <= 0 {
		snaplen = 262144
	}
	pw := &PcapWriter{w: bufio.NewWriterSize(w, 1<<16)}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:4], pcapMagicMicro)
	binary.LittleEndian.PutUint16(h[4:6], 2)
	binary.LittleEndian.PutUint16(h[6:8], 4)
	binary.LittleEndian.PutUint32(h[16:20], uint32(snaplen))
	binary.LittleEndian.PutUint32(h[20:24], linkTypeEthernet)
	if _, err := pw.w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return pw, nil
}

// WriteFrame writes f.Data (tags inline) with f.Time and f.Length.
func (pw *PcapWriter) WriteFrame(f *Frame, _ string) error {
	return pw.WritePacket(f.Time, f.Data, f.Length)
}

// WritePacket writes one record; wireLen below len(data) means len(data).
func (pw *PcapWriter) WritePacket(t time.Time, data []byte, wireLen int) error {
	wireLen = max(wireLen, len(data))
	binary.LittleEndian.PutUint32(pw.hdr[0:4], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(pw.hdr[4:8], uint32(t.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(pw.hdr[8:12], uint32(len(data)))
	binary.LittleEndian.PutUint32(pw.hdr[12:16], uint32(wireLen))
	if _, err := pw.w.Write(pw.hdr[:]); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	if _, err := pw.w.Write(data); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	return nil
}

// Flush writes buffered records out.
func (pw *PcapWriter) Flush() error { return pw.w.Flush() }

// PcapngOptions describe the one interface a PcapngWriter records.
type PcapngOptions struct {
	Iface   string // if_name, e.g. "h0" or "ns1/h0"
	Filter  string // if_filter, the filter's text form
	Snaplen int    // 0: unlimited
}

// PcapngWriter writes pcapng that Wireshark and tshark open with the tags in
// place: one Ethernet interface, nanosecond timestamps, and per frame the
// direction (epb_flags) and a comment (opt_comment, e.g. the owner of the
// source MAC "mv1@ns1"). It uses gopacket's pcapgo.NgWriter for the blocks.
type PcapngWriter struct {
	out io.Writer
	ng  *pcapgo.NgWriter
	// flags and comments are reused for every frame.
	flags    pcapgo.NgEpbFlags
	comments [1]string
}

// NewPcapngWriter writes the section header and the interface description.
func NewPcapngWriter(w io.Writer, o PcapngOptions) (*PcapngWriter, error) {
	name := o.Iface
	if name == "" {
		name = "vmlink"
	}
	ng, err := pcapgo.NewNgWriterInterface(w, pcapgo.NgInterface{
		Name:                name,
		Filter:              o.Filter,
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkTypeEthernet,
		SnapLength:          uint32(max(o.Snaplen, 0)),
		TimestampResolution: 9,
	}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware:    runtime.GOARCH,
		OS:          runtime.GOOS,
		Application: "vmlink",
	}})
	if err != nil {
		return nil, fmt.Errorf("write pcapng header: %w", err)
	}
	return &PcapngWriter{out: w, ng: ng}, nil
}

// WriteFrame writes f.Data (tags inline) with its time, wire length,
// direction and, when not empty, the comment.
func (pw *PcapngWriter) WriteFrame(f *Frame, comment string) error {
	ci := gopacket.CaptureInfo{
		Timestamp:     f.Time,
		CaptureLength: len(f.Data),
		Length:        max(f.Length, len(f.Data)),
	}
	var opts pcapgo.NgPacketOptions
	if v := epbFlags(f.Dir); v != 0 {
		pw.flags.FromUint32(v)
		opts.Flags = &pw.flags
	}
	if comment != "" {
		pw.comments[0] = comment
		opts.Comments = pw.comments[:]
	}
	if err := pw.ng.WritePacketWithOptions(ci, f.Data, opts); err != nil {
		return fmt.Errorf("write pcapng packet: %w", err)
	}
	return nil
}

// Flush writes buffered blocks out; call it per frame when streaming
// (`-w -` into Wireshark) so the reader sees frames as they come.
func (pw *PcapngWriter) Flush() error { return pw.ng.Flush() }

// WriteStats ends the capture with an Interface Statistics Block: frames
// received and dropped by the kernel, so the file says what it is missing.
// gopacket's NgWriter.WriteInterfaceStats writes a zero trailer length
// (v1.7.7), so the block is built here and written after a flush.
func (pw *PcapngWriter) WriteStats(end time.Time, received, dropped uint64) error {
	if err := pw.ng.Flush(); err != nil {
		return fmt.Errorf("write pcapng statistics: %w", err)
	}
	const blen = 8 + 4 + 8 + 12 + 12 + 4 + 4 // header, if_id, timestamp, isb_ifrecv, isb_ifdrop, opt_endofopt, trailer
	b := make([]byte, blen)
	le := binary.LittleEndian
	le.PutUint32(b[0:], ngBlockISB)
	le.PutUint32(b[4:], blen)
	ts := uint64(end.UnixNano())
	le.PutUint32(b[12:], uint32(ts>>32))
	le.PutUint32(b[16:], uint32(ts))
	le.PutUint16(b[20:], 4) // isb_ifrecv
	le.PutUint16(b[22:], 8)
	le.PutUint64(b[24:], received)
	le.PutUint16(b[32:], 5) // isb_ifdrop
	le.PutUint16(b[34:], 8)
	le.PutUint64(b[36:], dropped)
	le.PutUint32(b[48:], blen) // b[44:48] is opt_endofopt
	if _, err := pw.out.Write(b); err != nil {
		return fmt.Errorf("write pcapng statistics: %w", err)
	}
	return nil
}
