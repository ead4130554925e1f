package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2023, 11, 14, 22, 13, 20, 123456000, time.UTC)

// writeTestFrames writes the shared frames, one second apart, with w.
func writeTestFrames(t *testing.T, w frameWriter, frames []testFrame, comment func(i int) string, dir func(i int) Direction) {
	t.Helper()
	d := NewDecoder()
	for i, tc := range frames {
		var f Frame
		if err := d.Decode(tc.data, &f); err != nil {
			t.Fatal(err)
		}
		f.Time = t0.Add(time.Duration(i) * time.Second)
		c := ""
		if comment != nil {
			c = comment(i)
		}
		if dir != nil {
			f.Dir = dir(i)
		}
		if err := w.WriteFrame(&f, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, r *FileReader) []*Frame {
	t.Helper()
	var out []*Frame
	for {
		f, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("after %d frames: %v", len(out), err)
		}
		out = append(out, f.Clone())
	}
}

func TestPcapRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewPcapWriter(&buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	frames := testFrames()
	writeTestFrames(t, w, frames, nil, nil)
	r, err := NewFileReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != FormatPcap {
		t.Errorf("format %v", r.Format())
	}
	got := readAll(t, r)
	if len(got) != len(frames) {
		t.Fatalf("read %d frames, wrote %d", len(got), len(frames))
	}
	for i, f := range got {
		if !bytes.Equal(f.Data, frames[i].data) || !slices.Equal(f.VLANs, frames[i].vlans) {
			t.Errorf("frame %d (%s) differs after the round trip", i, frames[i].name)
		}
		if want := t0.Add(time.Duration(i) * time.Second); !f.Time.Equal(want) {
			t.Errorf("frame %d time %v, want %v", i, f.Time, want)
		}
		if f.Dir != DirUnknown || f.Comment != "" {
			t.Errorf("frame %d: pcap has no direction or comment, got %v %q", i, f.Dir, f.Comment)
		}
	}
}

func TestPcapngRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewPcapngWriter(&buf, PcapngOptions{Iface: "h0", Filter: "vlan 10"})
	if err != nil {
		t.Fatal(err)
	}
	frames := testFrames()
	dirs := []Direction{DirHost, DirBroadcast, DirMulticast, DirOtherHost, DirOutgoing, DirUnknown, DirIn}
	comment := func(i int) string {
		if i%3 == 2 {
			return ""
		}
		return strings.Repeat("x", i) + "mv1@ns1"
	}
	writeTestFrames(t, w, frames, comment, func(i int) Direction { return dirs[i%len(dirs)] })
	if err := w.WriteStats(t0.Add(time.Hour), 20, 3); err != nil {
		t.Fatal(err)
	}
	r, err := NewFileReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != FormatPcapng {
		t.Errorf("format %v", r.Format())
	}
	got := readAll(t, r)
	if len(got) != len(frames) {
		t.Fatalf("read %d frames, wrote %d", len(got), len(frames))
	}
	for i, f := range got {
		if !bytes.Equal(f.Data, frames[i].data) {
			t.Errorf("frame %d data differs", i)
		}
		if f.Comment != comment(i) {
			t.Errorf("frame %d comment %q, want %q", i, f.Comment, comment(i))
		}
		if want := dirs[i%len(dirs)]; f.Dir != want {
			t.Errorf("frame %d direction %v, want %v", i, f.Dir, want)
		}
		if want := t0.Add(time.Duration(i) * time.Second); !f.Time.Equal(want) {
			t.Errorf("frame %d time %v, want %v", i, f.Time, want)
		}
	}
}

// A hand-made big-endian, nanosecond pcap, as a big-endian host writes it.
func TestPcapBigEndianNano(t *testing.T) {
	frame := testFrames()[0].data
	var b []byte
	b = binary.BigEndian.AppendUint32(b, pcapMagicNano)
	b = binary.BigEndian.AppendUint16(b, 2)
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = binary.BigEndian.AppendUint32(b, 65535)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, 1700000000)
	b = binary.BigEndian.AppendUint32(b, 987654321)
	b = binary.BigEndian.AppendUint32(b, uint32(len(frame)-4)) // captured: cut 4 bytes
	b = binary.BigEndian.AppendUint32(b, uint32(len(frame)))
	b = append(b, frame[:len(frame)-4]...)
	r, err := NewFileReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != 1 {
		t.Fatalf("%d frames", len(got))
	}
	f := got[0]
	if !f.Time.Equal(time.Unix(1700000000, 987654321)) || f.Length != len(frame) || !f.Truncated || f.VLANs[0].VID != 10 {
		t.Errorf("got time %v length %d truncated %v vlans %v", f.Time, f.Length, f.Truncated, f.VLANs)
	}
}

func TestFileReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"text", []byte("hello world, not a capture"), "not a pcap or pcapng"},
		{"cooked", pcapHeader(113), "Linux cooked"},
	} {
		_, err := NewFileReader(bytes.NewReader(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	// A record cut in the middle.
	var buf bytes.Buffer
	w, _ := NewPcapWriter(&buf, 0)
	writeTestFrames(t, w, testFrames()[:2], nil, nil)
	cut := buf.Bytes()[:buf.Len()-5]
	r, err := NewFileReader(bytes.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(context.Background()); err != nil {
		t.Fatalf("first frame: %v", err)
	}
	if _, err := r.Next(context.Background()); err == nil || !strings.Contains(err.Error(), "truncated capture") {
		t.Errorf("cut record: err %v", err)
	}
	// A corrupt length.
	bad := append(pcapHeader(1), make([]byte, 16)...)
	binary.LittleEndian.PutUint32(bad[24+8:], 0x7fffffff)
	r, _ = NewFileReader(bytes.NewReader(bad))
	if _, err := r.Next(context.Background()); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt length: err %v", err)
	}
	// A cancelled context stops the read.
	r, _ = NewFileReader(bytes.NewReader(buf.Bytes()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v", err)
	}
}

func pcapHeader(linkType uint32) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, pcapMagicMicro)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = binary.LittleEndian.AppendUint32(b, 65535)
	return binary.LittleEndian.AppendUint32(b, linkType)
}

// Frames larger than the read buffer go through the copy path.
func TestFileReaderJumbo(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewPcapWriter(&buf, 0)
	big := cat(eth(macB, macA), tagBytes(EtherType8021Q, 5, 0, false), be16(0x88b5), make([]byte, readBufSize+100))
	small := testFrames()[0].data
	for _, d := range [][]byte{small, big, small} {
		if err := w.WritePacket(t0, d, 0); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	r, err := NewFileReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != 3 || len(got[1].Data) != len(big) || got[1].VLANs[0].VID != 5 || !bytes.Equal(got[2].Data, small) {
		t.Errorf("jumbo: %d frames", len(got))
	}
}

func TestOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pcapng")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := NewPcapngWriter(f, PcapngOptions{})
	writeTestFrames(t, w, testFrames()[:3], nil, nil)
	f.Close()
	r, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n := len(readAll(t, r)); n != 3 {
		t.Errorf("%d frames", n)
	}
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing.pcap")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
