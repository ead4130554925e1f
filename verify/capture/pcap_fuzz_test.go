package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// readCapture reads a capture file both ways `vmlink capture -r` does: frame by
// frame (Next, and Dump's serial path) and in parallel chunks (Dump on a
// file). Neither may panic, and both must agree on how many frames the file
// holds when it reads cleanly.
func readCapture(t *testing.T, data []byte) {
	ctx := context.Background()
	r, err := NewFileReader(bytes.NewReader(data))
	if err != nil {
		return
	}
	serial := 0
	var serr error
	for serial < 1<<16 {
		if _, serr = r.Next(ctx); serr != nil {
			break
		}
		serial++
	}
	r, err = NewFileReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("second open failed where the first succeeded: %v", err)
	}
	tally, perr := Dump(ctx, r, io.Discard, DumpOptions{Location: time.UTC})
	if tally == nil {
		t.Fatal("Dump returned no tally")
	}
	if errors.Is(serr, io.EOF) && perr == nil && tally.Frames != uint64(serial) {
		t.Fatalf("parallel read %d frames, serial %d", tally.Frames, serial)
	}
}

func pcapSeed(t testing.TB, frames ...[]byte) []byte {
	var buf bytes.Buffer
	w, err := NewPcapWriter(&buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := w.WritePacket(t0.Add(time.Duration(i)*time.Millisecond), f, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pcapngSeed(t testing.TB, frames ...[]byte) []byte {
	var buf bytes.Buffer
	w, err := NewPcapngWriter(&buf, PcapngOptions{Iface: "h0", Filter: "vlan 10"})
	if err != nil {
		t.Fatal(err)
	}
	dec := NewDecoder()
	for i, b := range frames {
		var f Frame
		_ = dec.decodeCaptured(b, len(b), &f)
		f.Time, f.Dir = t0.Add(time.Duration(i)*time.Millisecond), DirOutgoing
		if err := w.WriteFrame(&f, "mv1 (ns1)"); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteStats(t0, 3, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func seedFrames() [][]byte {
	var out [][]byte
	for _, f := range testFrames() {
		out = append(out, f.data)
	}
	return out
}

// hugeRecordPcap is a pcap whose second record claims more than
// maxCaptureLen captured bytes: the reader must refuse it without handing
// the half-read chunk to a worker (that sliced out of range).
func hugeRecordPcap(t testing.TB) []byte {
	b := pcapSeed(t, seedFrames()[0], seedFrames()[1])
	first := 24 + 16 + len(seedFrames()[0])
	binary.LittleEndian.PutUint32(b[first+8:], maxCaptureLen+1)
	return b
}

func TestReadHugeRecord(t *testing.T) {
	for name, data := range map[string][]byte{
		"second record too long": hugeRecordPcap(t),
		"first record too long": func() []byte {
			b := pcapSeed(t, seedFrames()[0])
			binary.LittleEndian.PutUint32(b[24+8:], maxCaptureLen+1)
			return b
		}(),
		"record cut short": pcapSeed(t, seedFrames()...)[:24+16+10],
	} {
		t.Run(name, func(t *testing.T) {
			r, err := NewFileReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Dump(context.Background(), r, io.Discard, DumpOptions{Location: time.UTC})
			if err == nil {
				t.Fatal("Dump read a corrupt file without an error")
			}
		})
	}
}

func FuzzReadPcap(f *testing.F) {
	f.Add(pcapSeed(f, seedFrames()...))
	f.Add(hugeRecordPcap(f))
	be := pcapSeed(f, seedFrames()[0])
	f.Add(be[:24])
	f.Fuzz(readCapture)
}

func FuzzReadPcapng(f *testing.F) {
	f.Add(pcapngSeed(f, seedFrames()...))
	f.Add(pcapngSeed(f))
	f.Fuzz(readCapture)
}

// capture -r of a pcapng of ours names each source MAC's owner from the
// packet comments the writer recorded, in the pipelined and serial reads.
func TestSummaryOwnersFromPcapngComments(t *testing.T) {
	data := pcapngSeed(t, seedFrames()...)
	for _, live := range []bool{false, true} {
		r, err := NewFileReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		tally, err := Dump(context.Background(), r, io.Discard, DumpOptions{Location: time.UTC, Live: live})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := tally.WriteSummary(&b, nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b.Bytes(), []byte("mv1 (ns1)")) || bytes.Contains(b.Bytes(), []byte("  -  ")) {
			t.Errorf("live=%v: the summary does not name the recorded owner:\n%s", live, b.String())
		}
	}
}
