package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// dumpFile runs Dump over an in-memory pcap of n shared frames.
func dumpFile(t *testing.T, n int, o DumpOptions) (string, *Tally) {
	t.Helper()
	r, err := NewFileReader(bytes.NewReader(benchPcap(t, n)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tally, err := Dump(context.Background(), r, &out, o)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), tally
}

// The pipelined path (files) must print exactly what the serial one does,
// across batch boundaries, with filters and counts.
func TestDumpPipelinedEqualsSerial(t *testing.T) {
	n := 3*chunkRecords + 17
	for _, o := range []DumpOptions{
		{},
		{JSON: true},
		{Count: chunkRecords + 3},
		{Filter: Filter{VLAN: u16p(10)}},
		{Filter: Filter{EtherType: etp(EtherTypeIPv6)}, Count: 5},
	} {
		o.Location = time.UTC
		serial := o
		serial.Live = true
		got, gt := dumpFile(t, n, o)
		want, wt := dumpFile(t, n, serial)
		if got != want {
			t.Errorf("%+v: pipelined output differs from serial", o)
		}
		if gt.Frames != wt.Frames || uint64(strings.Count(got, "\n")) != gt.Frames {
			t.Errorf("%+v: tallies %d/%d, %d lines", o, gt.Frames, wt.Frames, strings.Count(got, "\n"))
		}
		if o.Count > 0 && gt.Frames != uint64(o.Count) {
			t.Errorf("%+v: %d frames, want Count", o, gt.Frames)
		}
	}
}

func TestDumpOutput(t *testing.T) {
	frames := testFrames()
	out, tally := dumpFile(t, len(frames), DumpOptions{Location: time.UTC})
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(frames) {
		t.Fatalf("%d lines for %d frames", len(lines), len(frames))
	}
	for i, tf := range frames {
		if tf.summary != "" && !strings.HasSuffix(lines[i], " "+tf.summary) {
			t.Errorf("line %d = %q, want … %s", i, lines[i], tf.summary)
		}
	}
	// The tally: seven untagged frames, one of each tagged stack.
	want := map[string]uint64{"untagged": 6, "802.1Q 10": 1, "802.1ad 100 / 802.1Q 10": 1, "802.1ad 200": 1,
		"802.1Q 0": 2, "802.1Q 20": 1, "802.1Q 30": 1, "802.1Q-9100 300 / 802.1Q 10": 0}
	got := map[string]uint64{}
	for _, s := range tally.stackCounts() {
		got[s.Stack.String()] = s.Frames
	}
	for k, v := range want {
		if v != 0 && got[k] != v {
			t.Errorf("stack %q: %d frames, want %d (all: %v)", k, got[k], v, got)
		}
	}
	if m := tally.ofMAC(macB); m == nil || m.Frames != 1 {
		t.Errorf("MAC B: %+v", m)
	}

	// JSON: one valid object per line, owners from Owners.
	owners := Owners{}
	owners.add(macA, "mv1", "ns1")
	out, _ = dumpFile(t, 2, DumpOptions{JSON: true, Owners: owners})
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var obj struct {
			Time      time.Time `json:"time"`
			Dir       string    `json:"dir"`
			Src, Dst  string
			VLANs     []Tag `json:"vlans"`
			EtherType int   `json:"ethertype"`
			Summary   string
			Owner     string
		}
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, line)
		}
		if obj.Owner != "ns1/mv1" || obj.Src != "02:00:00:00:00:01" || obj.EtherType != 0x0806 || obj.Dir != "unknown" {
			t.Errorf("line %d: %+v", i, obj)
		}
		if !obj.Time.Equal(t0.Add(time.Duration(i) * time.Microsecond)) {
			t.Errorf("line %d time %v", i, obj.Time)
		}
	}
}

// A write error ends Dump with that error, and the reading goroutine ends.
func TestDumpWriteError(t *testing.T) {
	r, _ := NewFileReader(bytes.NewReader(benchPcap(t, 5000)))
	_, err := Dump(context.Background(), r, failWriter{}, DumpOptions{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("err %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestJSONEscaping(t *testing.T) {
	var f Frame
	_ = NewDecoder().Decode(testFrames()[0].data, &f)
	line := appendJSON(nil, &f, "we\"ird\\name\n\x01é")
	var obj struct{ Owner string }
	if err := json.Unmarshal(line, &obj); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	if obj.Owner != "we\"ird\\name\n\x01é" {
		t.Errorf("owner round trip: %q", obj.Owner)
	}
}

func TestOwners(t *testing.T) {
	o := Owners{}
	o.add(macA, "mv1", "ns1")
	o.add(macA, "h0", "")
	o.add(macA, "mv1", "ns1")
	o.add(MAC{}, "lo", "")
	o.add(bcast, "x", "")
	if got := o.Owner(macA); got != "h0,ns1/mv1" {
		t.Errorf("shared MAC: %q", got)
	}
	if len(o) != 1 || o.Owner(macB) != "" {
		t.Errorf("owners %v", o)
	}
}

// The address cache must not change what a line says.
func TestAddrCacheMatchesUncached(t *testing.T) {
	d := NewDecoder()
	lf := lineFormatter{Location: time.UTC}
	var f Frame
	for i := 0; i < 5000; i++ {
		ip := ipv4ICMPEcho()
		ip[12], ip[13], ip[14], ip[15] = byte(i), byte(i>>3), byte(i*7), byte(i>>8)
		ip[19] = byte(i * 13)
		data := cat(eth(macB, macA), be16(0x0800), ip)
		if i%2 == 1 {
			data = cat(eth(mcv6, macA), be16(0x86dd), ipv6Echo())
			data[14+8+15] = byte(i)
			data[14+24+13] = byte(i >> 4)
		}
		if err := d.Decode(data, &f); err != nil {
			t.Fatal(err)
		}
		line := string(lf.appendLine(nil, &f))
		if !strings.HasSuffix(line, " "+f.Summary()+"\n") {
			t.Fatalf("frame %d: cached %q, uncached %q", i, line, f.Summary())
		}
	}
}

// dumpBoth runs Dump over file in parallel and serially.
func dumpBoth(t *testing.T, file []byte, o DumpOptions) (par, ser string, perr, serr error) {
	t.Helper()
	run := func(live bool) (string, error) {
		r, err := NewFileReader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		oo := o
		oo.Live = live
		oo.Location = time.UTC
		_, err = Dump(context.Background(), r, &out, oo)
		return out.String(), err
	}
	par, perr = run(false)
	ser, serr = run(true)
	return
}

func TestDumpParallelPcapng(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewPcapngWriter(&buf, PcapngOptions{})
	var frames []testFrame
	for len(frames) < 3*chunkRecords+5 {
		frames = append(frames, testFrames()...)
	}
	writeTestFrames(t, w, frames, func(i int) string { return "c" }, func(i int) Direction { return Direction(i%6 + 1) })
	par, ser, perr, serr := dumpBoth(t, buf.Bytes(), DumpOptions{JSON: true})
	if perr != nil || serr != nil || par != ser || strings.Count(par, "\n") != len(frames) {
		t.Errorf("pcapng: errors %v/%v, equal %v, %d lines", perr, serr, par == ser, strings.Count(par, "\n"))
	}
}

func TestDumpParallelJumboAndTruncated(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewPcapWriter(&buf, 0)
	small := testFrames()[1].data
	big := cat(eth(macB, macA), tagBytes(EtherType8021Q, 5, 0, false), be16(0x88b5), make([]byte, 3*chunkBytes))
	for i := 0; i < 5000; i++ {
		d := small
		if i == 2500 {
			d = big
		}
		if err := w.WritePacket(t0, d, 0); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	par, ser, perr, serr := dumpBoth(t, buf.Bytes(), DumpOptions{})
	if perr != nil || serr != nil || par != ser || strings.Count(par, "\n") != 5000 {
		t.Errorf("jumbo: errors %v/%v, equal %v, %d lines", perr, serr, par == ser, strings.Count(par, "\n"))
	}
	// Cut in the middle of the last record: both paths print every whole
	// record, then report the truncation.
	cut := buf.Bytes()[:buf.Len()-7]
	par, ser, perr, serr = dumpBoth(t, cut, DumpOptions{})
	if perr == nil || serr == nil || !strings.Contains(perr.Error(), "truncated") {
		t.Errorf("truncated: errors %v / %v", perr, serr)
	}
	if par != ser || strings.Count(par, "\n") != 4999 {
		t.Errorf("truncated: equal %v, %d lines", par == ser, strings.Count(par, "\n"))
	}
}
