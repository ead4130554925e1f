package rtnl

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// batchReqs returns n RTM_NEWLINK requests whose body's first byte is i%256
// and second i/256, so the fake kernel can tell which request it answers.
func batchReqs(n int) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{Type: unix.RTM_NEWLINK, Flags: netlink.Create | netlink.Excl, Body: rawBody{byte(i), byte(i >> 8), 0, 0}}
	}
	return reqs
}

func reqIndex(m netlink.Message) int { return int(m.Data[0]) | int(m.Data[1])<<8 }

func TestBatchChunksWithConsecutiveSequences(t *testing.T) {
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		var acks []netlink.Message
		for _, r := range reqs {
			acks = append(acks, ackFor(r, 0, ""))
		}
		return acks, nil
	})
	errs, err := c.Batch(context.Background(), batchReqs(600))
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 600 || slices.IndexFunc(errs, func(e error) bool { return e != nil }) >= 0 {
		t.Fatalf("errs = %v, want 600 nils", errs)
	}
	var sizes []int
	var prev uint32
	for i, send := range k.sends {
		sizes = append(sizes, len(send))
		for j, m := range send {
			if m.Header.Flags != netlink.Request|netlink.Acknowledge|netlink.Create|netlink.Excl {
				t.Fatalf("send %d message %d flags %v", i, j, m.Header.Flags)
			}
			if (i > 0 || j > 0) && m.Header.Sequence != prev+1 {
				t.Fatalf("send %d message %d: sequence %d after %d", i, j, m.Header.Sequence, prev)
			}
			prev = m.Header.Sequence
		}
	}
	if want := []int{256, 256, 88}; !slices.Equal(sizes, want) {
		t.Errorf("requests per sendmsg %v, want %v", sizes, want)
	}
}

func TestBatchMatchesOutOfOrderAcksAndErrors(t *testing.T) {
	c, _ := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		var acks []netlink.Message
		// Reverse order, every third refused, stale and foreign messages
		// interleaved: only sequence numbers may decide.
		for i := len(reqs) - 1; i >= 0; i-- {
			r := reqs[i]
			switch reqIndex(r) % 3 {
			case 0:
				acks = append(acks, ackFor(r, unix.EEXIST, ""))
			default:
				acks = append(acks, ackFor(r, 0, ""))
			}
			stale := r
			stale.Header.Sequence -= 10000
			acks = append(acks, ackFor(stale, unix.ENODEV, "stale"))
			acks = append(acks, netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWLINK, Sequence: r.Header.Sequence}, Data: []byte{0, 0, 0, 0}})
		}
		return acks, nil
	})
	reqs := batchReqs(300)
	reqs[3].Hint = &HintContext{Name: "mv3", Kind: "macvlan"}
	errs, err := c.Batch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if i%3 == 0 {
			if !errors.Is(e, unix.EEXIST) {
				t.Errorf("errs[%d] = %v, want EEXIST", i, e)
			}
		} else if e != nil {
			t.Errorf("errs[%d] = %v, want nil", i, e)
		}
	}
	var oe *OpError
	if !errors.As(errs[3], &oe) || oe.Hint != `a link named "mv3" already exists` {
		t.Errorf("errs[3] = %v, want the request's hint context used", errs[3])
	}
}

func TestBatchMissingAck(t *testing.T) {
	c, _ := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		var acks []netlink.Message
		for _, r := range reqs {
			if reqIndex(r) == 5 {
				continue // lost
			}
			acks = append(acks, ackFor(r, 0, ""))
		}
		return acks, nil
	})
	errs, err := c.Batch(context.Background(), batchReqs(300))
	if err == nil {
		t.Fatal("Batch reported no transport failure with an ACK missing")
	}
	if !errors.Is(errs[5], ErrNoAck) || !errors.Is(errs[5], os.ErrDeadlineExceeded) {
		t.Errorf("errs[5] = %v, want ErrNoAck after the read deadline", errs[5])
	}
	for i, e := range errs[:256] {
		if i != 5 && e != nil {
			t.Errorf("errs[%d] = %v, want nil (its ACK came)", i, e)
		}
	}
	// The second chunk was never sent.
	for i := 256; i < 300; i++ {
		if errs[i] == nil {
			t.Fatalf("errs[%d] = nil for a request never sent", i)
		}
	}
}

func TestBatchReceiveBufferOverflow(t *testing.T) {
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		var acks []netlink.Message
		for _, r := range reqs {
			if reqIndex(r) >= 8 {
				continue // dropped by the full socket
			}
			acks = append(acks, ackFor(r, 0, ""))
		}
		return acks, nil
	})
	k.recvErrs = []error{os.NewSyscallError("recvmsg", unix.ENOBUFS)}
	errs, err := c.Batch(context.Background(), batchReqs(10))
	if !errors.Is(err, unix.ENOBUFS) {
		t.Fatalf("err = %v, want ENOBUFS", err)
	}
	for i, e := range errs {
		if i < 8 && e != nil {
			t.Errorf("errs[%d] = %v, want nil", i, e)
		}
		if i >= 8 && (!errors.Is(e, ErrNoAck) || !errors.Is(e, unix.ENOBUFS)) {
			t.Errorf("errs[%d] = %v, want ErrNoAck wrapping ENOBUFS", i, e)
		}
	}
}

func TestBatchChunkLimits(t *testing.T) {
	ackAll := func(reqs []netlink.Message) ([]netlink.Message, error) {
		var acks []netlink.Message
		for _, r := range reqs {
			acks = append(acks, ackFor(r, 0, ""))
		}
		return acks, nil
	}
	t.Run("bytes", func(t *testing.T) {
		c, k := newFake(t, ackAll)
		reqs := make([]Request, 10)
		for i := range reqs {
			reqs[i] = Request{Type: unix.RTM_NEWLINK, Body: make(rawBody, 20<<10)}
		}
		if _, err := c.Batch(context.Background(), reqs); err != nil {
			t.Fatal(err)
		}
		for _, s := range k.sends {
			size := 0
			for _, m := range s {
				size += int(m.Header.Length)
			}
			if size > maxChunkBytes {
				t.Errorf("a sendmsg of %d bytes, limit %d", size, maxChunkBytes)
			}
		}
		if len(k.sends) != 4 { // 3+3+3+1 requests of 20 KiB
			t.Errorf("%d sends, want 4", len(k.sends))
		}
	})
	t.Run("receive buffer", func(t *testing.T) {
		c, k := newFake(t, ackAll)
		c.chunk = chunkForBuffer(212992) // the kernel's default rmem
		if _, err := c.Batch(context.Background(), batchReqs(300)); err != nil {
			t.Fatal(err)
		}
		if got := len(k.sends[0]); got != 104 {
			t.Errorf("first chunk %d requests, want 104 for a 208 KiB buffer", got)
		}
	})
}

func TestChunkForBuffer(t *testing.T) {
	for _, tt := range []struct{ rcvbuf, want int }{
		{0, 1}, {1000, 1}, {4096, 2}, {212992, 104}, {425984, 208}, {8 << 20, MaxBatchChunk},
	} {
		if got := chunkForBuffer(tt.rcvbuf); got != tt.want {
			t.Errorf("chunkForBuffer(%d) = %d, want %d", tt.rcvbuf, got, tt.want)
		}
	}
}

func TestBatchEncodeErrorSendsNothing(t *testing.T) {
	c, k := newFake(t, nil)
	reqs := batchReqs(3)
	reqs[2].Body = badBody{}
	if _, err := c.Batch(context.Background(), reqs); err == nil {
		t.Fatal("no error for a request that cannot be encoded")
	}
	if len(k.sends) != 0 {
		t.Fatal("requests were sent although one failed to encode")
	}
}

func TestBatchRefusesDumps(t *testing.T) {
	c, k := newFake(t, nil)
	reqs := batchReqs(2)
	reqs = append(reqs, Request{Type: unix.RTM_GETLINK, Flags: netlink.Dump})
	if _, err := c.Batch(context.Background(), reqs); err == nil || len(k.sends) != 0 {
		t.Fatalf("err = %v, %d sends; want a refusal before sending", err, len(k.sends))
	}
}

func TestBatchSendFailure(t *testing.T) {
	c, k := newFake(t, nil)
	k.sendErr = os.NewSyscallError("sendmsg", unix.EMSGSIZE)
	errs, err := c.Batch(context.Background(), batchReqs(3))
	if !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("err = %v, want EMSGSIZE", err)
	}
	for i, e := range errs {
		if !errors.Is(e, ErrNoAck) {
			t.Errorf("errs[%d] = %v, want ErrNoAck", i, e)
		}
	}
}

func TestBatchEmpty(t *testing.T) {
	c, k := newFake(t, nil)
	errs, err := c.Batch(context.Background(), nil)
	if err != nil || len(errs) != 0 || len(k.sends) != 0 {
		t.Fatalf("Batch(nil) = %v, %v with %d sends", errs, err, len(k.sends))
	}
}
