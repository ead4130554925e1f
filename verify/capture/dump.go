package capture

import (
	"bufio"
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"time"
)

// FrameSource yields decoded frames: a live *Capture or a *FileReader.
// Next returns io.EOF at the end of a file, or ctx's error.
type FrameSource interface {
	Next(ctx context.Context) (*Frame, error)
}

// DumpOptions control Dump.
type DumpOptions struct {
	// JSON writes one JSON object per frame (appendJSON) instead of a
	// tcpdump-style line (lineFormatter).
	JSON bool
	// Filter is applied to each decoded frame. A live capture already
	// filtered in the kernel; applying it again is harmless.
	Filter Filter
	// Count stops after this many frames were written; 0: no limit.
	Count int
	// Owners names the owner of each source MAC in JSON; a frame's own
	// comment (a pcapng of ours) is used when Owners does not know the MAC.
	Owners Owners
	// Location is the clock of text lines; nil means time.Local.
	Location *time.Location
	// Live flushes after every frame, for someone watching a capture.
	// Otherwise a file (without Count) is decoded and formatted in chunks
	// on every CPU and written in file order.
	Live bool
}

// Dump writes the frames of src to w until src ends (io.EOF), ctx ends or
// o.Count frames were written, and returns the tally of what it wrote. ctx
// ending is not an error: it is how a live capture stops.
func Dump(ctx context.Context, src FrameSource, w io.Writer, o DumpOptions) (*Tally, error) {
	out := bufio.NewWriterSize(w, 256<<10)
	tally := &Tally{}
	var err error
	if r, ok := src.(*FileReader); ok && !o.Live && o.Count == 0 {
		err = dumpParallel(ctx, r, out, o, tally)
	} else {
		err = dumpSerial(ctx, src, out, o, tally)
	}
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	return tally, err
}

// ended reports whether err is a normal end of the frames.
func ended(ctx context.Context, err error) bool {
	return errors.Is(err, io.EOF) || ctx.Err() != nil
}

// dumper formats frames; one per Dump.
type dumper struct {
	o  DumpOptions
	lf lineFormatter
}

func (d *dumper) appendFrame(b []byte, f *Frame) []byte {
	if !d.o.JSON {
		return d.lf.appendLine(b, f)
	}
	who := d.o.Owners.Owner(f.Src)
	if who == "" {
		who = f.Comment
	}
	return appendJSON(b, f, who)
}

func dumpSerial(ctx context.Context, src FrameSource, out *bufio.Writer, o DumpOptions, tally *Tally) error {
	d := &dumper{o: o, lf: lineFormatter{Location: o.Location}}
	match := !o.Filter.IsZero()
	for n := 0; o.Count == 0 || n < o.Count; {
		f, err := src.Next(ctx)
		if err != nil {
			if ended(ctx, err) {
				return nil
			}
			return err
		}
		if match && !o.Filter.Match(f) {
			continue
		}
		n++
		tally.Add(f)
		if _, err := out.Write(d.appendFrame(out.AvailableBuffer(), f)); err != nil {
			return err
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// chunkRecords is how many file records travel to a worker at once:
// enough to make the hand-over cost nothing per frame.
const chunkRecords = 2048

// rawRecord is one file record inside a chunk, not yet decoded.
type rawRecord struct {
	off, capLen, wireLen int32
	time                 time.Time
	dir                  Direction
	comment              string
}

// chunk is a run of records copied out of the file, and then the text a
// worker made of them. A classic pcap chunk is a slice of the file itself
// (whole records, headers included: recs is empty); a pcapng chunk holds
// each record's bytes and what its blocks said about it in recs.
type chunk struct {
	seq  int
	pcap bool
	recs []rawRecord
	data []byte // pcap: whole records; pcapng: the records' bytes, back to back
	out  []byte // formatted frames
	err  error  // the reader's error after these records (io.EOF at the end)
}

// dumpWorker decodes, filters, tallies and formats chunks.
type dumpWorker struct {
	dumper
	dec   *Decoder
	frame Frame
	tally Tally
	match bool
}

func (w *dumpWorker) run(c *chunk, r *FileReader) {
	c.out = c.out[:0]
	f := &w.frame
	if c.pcap {
		// The reader checked that the chunk holds whole records.
		f.Dir, f.Comment, f.IfIndex = DirUnknown, "", 0
		for b := c.data; len(b) >= 16; {
			capLen, wireLen := r.pcapLens(b)
			f.Time = r.pcapTime(b)
			_ = w.dec.decodeCaptured(b[16:16+capLen], wireLen, f)
			w.emit(c, f)
			b = b[16+capLen:]
		}
		return
	}
	for i := range c.recs {
		rec := &c.recs[i]
		f.Time, f.Dir, f.Comment, f.IfIndex = rec.time, rec.dir, rec.comment, 0
		_ = w.dec.decodeCaptured(c.data[rec.off:rec.off+rec.capLen], int(rec.wireLen), f)
		w.emit(c, f)
	}
}

func (w *dumpWorker) emit(c *chunk, f *Frame) {
	if w.match && !w.o.Filter.Match(f) {
		return
	}
	w.tally.Add(f)
	c.out = w.appendFrame(c.out, f)
}

// chunkBytes is the size of a classic pcap chunk read from the file.
const chunkBytes = 256 << 10

// fillPcapChunk reads whole pcap records into c: carry (the partial record
// the previous chunk ended with) and then as much of the file as fits. It
// returns the new carry. Reading big blocks straight into the chunk skips
// the per-record copy, which would make the reader the bottleneck.
func fillPcapChunk(r *FileReader, c *chunk, carry []byte) ([]byte, error) {
	c.pcap = true
	c.data = append(c.data[:0], carry...)
	if cap(c.data) < chunkBytes {
		c.data = append(make([]byte, 0, chunkBytes), c.data...)
	}
	n, err := r.readBlock(c.data[len(c.data):cap(c.data)])
	c.data = c.data[:len(c.data)+n]
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	// Keep whole records; the rest goes to the next chunk.
	off := 0
	for off+16 <= len(c.data) {
		capLen, _ := r.pcapLens(c.data[off:])
		if capLen > maxCaptureLen {
			c.data = c.data[:off] // a worker decodes only whole records
			return nil, corruptRecord(r.n+1, capLen)
		}
		if off+16+capLen > len(c.data) {
			if off == 0 && err == nil { // one record bigger than the chunk
				c.data = append(make([]byte, 0, 16+capLen+chunkBytes), c.data...)
				m, rerr := r.readBlock(c.data[len(c.data) : 16+capLen])
				c.data = c.data[:len(c.data)+m]
				if rerr != nil {
					c.data = c.data[:0]
					return nil, truncatedErr(rerr)
				}
				continue
			}
			break
		}
		off += 16 + capLen
		r.n++
	}
	rest := c.data[off:]
	c.data = c.data[:off]
	if err != nil && len(rest) > 0 {
		if errors.Is(err, io.EOF) {
			return nil, truncatedErr(io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	return append([]byte(nil), rest...), err
}

// dumpParallel reads a file on one goroutine, decodes and formats chunks
// of it on one worker per CPU, and writes their text in file order on the
// calling goroutine. Decoding and formatting cost about the same and are
// the whole cost of `vmlink capture -r`, so with two CPUs this about halves
// the wall time. Workers share nothing but the read-only options; each
// keeps its own Decoder and Tally, merged at the end.
func dumpParallel(ctx context.Context, r *FileReader, out *bufio.Writer, o DumpOptions, tally *Tally) error {
	nw := max(2, min(runtime.GOMAXPROCS(0), 8))
	// Buffers are allocated once at their working size: growing them
	// while the file streams through would make garbage, and the
	// collector would then compete with the workers for the CPUs.
	free := make(chan *chunk, nw+2)
	for i := 0; i < cap(free); i++ {
		free <- &chunk{data: make([]byte, 0, chunkBytes), out: make([]byte, 0, 3*chunkBytes)}
	}
	todo := make(chan *chunk, cap(free))
	done := make(chan *chunk, cap(free))
	stop := make(chan struct{})

	go func() { // the reader
		defer close(todo)
		var carry []byte
		for seq := 0; ; seq++ {
			var c *chunk
			select {
			case c = <-free:
			case <-stop:
				return
			}
			c.seq, c.recs, c.data, c.err = seq, c.recs[:0], c.data[:0], ctx.Err()
			if c.err == nil && r.format == FormatPcap {
				carry, c.err = fillPcapChunk(r, c, carry)
			}
			if c.err == nil && !c.pcap && c.recs == nil {
				c.recs = make([]rawRecord, 0, chunkRecords)
			}
			for c.err == nil && !c.pcap && len(c.recs) < chunkRecords {
				if c.err = r.nextRecord(); c.err != nil {
					break
				}
				c.recs = append(c.recs, rawRecord{
					off: int32(len(c.data)), capLen: int32(len(r.data)), wireLen: int32(r.wireLen),
					time: r.frame.Time, dir: r.frame.Dir, comment: r.frame.Comment,
				})
				c.data = append(c.data, r.data...)
			}
			todo <- c // buffered for every chunk there is: never blocks
			if c.err != nil {
				return
			}
		}
	}()

	workers := make([]*dumpWorker, nw)
	var wg sync.WaitGroup
	for i := range workers {
		w := &dumpWorker{dumper: dumper{o: o, lf: lineFormatter{Location: o.Location}}, dec: NewDecoder(), match: !o.Filter.IsZero()}
		workers[i] = w
		wg.Go(func() {
			for c := range todo {
				w.run(c, r)
				done <- c
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	// Write in file order; chunks finish out of order.
	var err error
	next := 0
	pending := map[int]*chunk{}
	for c := range done {
		pending[c.seq] = c
		for err == nil {
			c, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if _, werr := out.Write(c.out); werr != nil {
				err = werr
				close(stop)
			} else if c.err != nil && !ended(ctx, c.err) {
				err = c.err
			}
			free <- c
		}
	}
	if err == nil && len(pending) > 0 {
		err = errors.New("dump: chunks lost between reader and writer") // cannot happen
	}
	for _, w := range workers {
		tally.merge(&w.tally)
	}
	return err
}
