package verify

import (
	"context"
	"time"

	"github.com/vmlink/vmlink/verify/capture"
)

// parentCapture is a run's capture on the parent: every frame from the
// first probe to a grace after the last, copied for the checks and handed
// to Options.OnFrame as it arrives.
type parentCapture struct {
	c      *capture.Capture
	cancel context.CancelFunc
	done   chan struct{}
	frames []*capture.Frame
	err    error
}

// startCapture opens the capture on the parent of a topology with n
// endpoints (never promiscuous: the promiscuity checks read the parent's
// own) and collects its frames until finish.
func startCapture(ctx context.Context, p Parent, n int, onFrame func(*capture.Frame)) (*parentCapture, error) {
	cctx, cancel := context.WithCancel(ctx)
	c, err := capture.Open(ctx, capture.Options{NetNS: p.NetNS, Iface: p.Name, NoPromisc: true,
		BufferSize: captureBuffer(n)})
	if err != nil {
		cancel()
		return nil, err
	}
	pc := &parentCapture{c: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(pc.done)
		for f, err := range c.Frames(cctx) {
			if err != nil {
				pc.err = err
				return
			}
			fc := f.Clone()
			pc.frames = append(pc.frames, fc)
			if onFrame != nil {
				onFrame(fc)
			}
		}
	}()
	return pc, nil
}

// finish lets the capture run for grace more (or until ctx ends), stops it
// and returns its frames and counters. A capture error is returned only
// while ctx lives: a cancelled run reports its cancellation instead.
func (pc *parentCapture) finish(ctx context.Context, grace time.Duration) ([]*capture.Frame, capture.Stats, error) {
	select {
	case <-time.After(grace):
	case <-ctx.Done():
	}
	pc.cancel()
	<-pc.done
	if pc.err != nil && ctx.Err() == nil {
		return nil, capture.Stats{}, pc.err
	}
	st, _ := pc.c.Stats()
	return pc.frames, st, nil
}

// close closes the socket, then stops the collecting goroutine.
func (pc *parentCapture) close() {
	pc.c.Close()
	pc.cancel()
}

// Bounds of the capture's grace after the last probe.
const (
	minCaptureGrace = 20 * time.Millisecond
	maxCaptureGrace = time.Second
)

// captureBuffer sizes the capture's socket buffer for a parent with n
// endpoints: every ordered pair puts about eight frames on the parent
// (ARP request and reply, echo and reply, some seen twice), each taking
// about a kilobyte of buffer, and under load the reader falls behind the
// probes; within the default 4 MiB and 64 MiB.
func captureBuffer(n int) int {
	return min(max(capture.DefaultBufferSize, (n+1)*n*8<<10), 64<<20)
}

// captureGrace is how long the capture keeps running after the last probe
// ended, so that the reflected copies of the last frames, and the frames
// still queued on the capture's socket, are counted: four switch round
// trips (rtt, from the reflection probe; 0 when unknown) or the slowest
// answer any probe had, whichever is longer, within 20 ms and 1 s. Like the
// probes' waits it scales with how slow this run's machine and network
// are: under emulation (the VM tier) a fixed 20 ms missed the reflected
// echo of a VEPA pair ("out 1 in 0").
func captureGrace(rtt, slowest time.Duration) time.Duration {
	return min(max(minCaptureGrace, 4*rtt, slowest), maxCaptureGrace)
}
