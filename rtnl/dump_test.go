package rtnl

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// dumpReply is a multi-part answer to req: one RTM_NEWLINK per byte of
// items (the byte is the body, to tell objects apart), then NLMSG_DONE.
// intrOn is the index of the message to flag NLM_F_DUMP_INTR (-1 = none;
// len(items) = the NLMSG_DONE).
func dumpReply(req netlink.Message, items []byte, intrOn int) []netlink.Message {
	var out []netlink.Message
	for _, it := range items {
		out = append(out, netlink.Message{
			Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: netlink.Multi, Sequence: req.Header.Sequence},
			Data:   []byte{it, 0, 0, 0},
		})
	}
	out = append(out, netlink.Message{
		Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: req.Header.Sequence},
		Data:   []byte{0, 0, 0, 0},
	})
	if intrOn >= 0 {
		out[intrOn].Header.Flags |= netlink.DumpInterrupted
	}
	return out
}

func bodies(msgs []netlink.Message) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, m.Data[0])
	}
	return b
}

func TestDumpRequestFlagsAndMultipart(t *testing.T) {
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		return dumpReply(reqs[0], []byte{1, 2, 3, 4, 5}, -1), nil
	})
	msgs, err := c.Dump(context.Background(), unix.RTM_GETLINK, rawBody{0, 0, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	if got := bodies(msgs); !slices.Equal(got, []byte{1, 2, 3, 4, 5}) {
		t.Errorf("dump returned %v, want 1..5 without the NLMSG_DONE", got)
	}
	h := k.sends[0][0].Header
	if h.Type != unix.RTM_GETLINK || h.Flags != netlink.Request|netlink.Dump {
		t.Errorf("request header %+v, want RTM_GETLINK with Request|Dump (and no Ack)", h)
	}
	if len(k.sends) != 1 {
		t.Errorf("%d requests sent, want 1", len(k.sends))
	}
}

func TestDumpRetriesWhenInterrupted(t *testing.T) {
	// The first answer is flagged on a data message, the second only on its
	// NLMSG_DONE (as netlink_dump_done does), the third is clean.
	attempt := 0
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		attempt++
		switch attempt {
		case 1:
			return dumpReply(reqs[0], []byte{1, 2, 3}, 1), nil
		case 2:
			return dumpReply(reqs[0], []byte{1, 2, 3, 4}, 4), nil
		default:
			return dumpReply(reqs[0], []byte{7, 8}, -1), nil
		}
	})
	msgs, err := c.Dump(context.Background(), unix.RTM_GETLINK, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := bodies(msgs); !slices.Equal(got, []byte{7, 8}) {
		t.Errorf("dump returned %v, want the third, clean answer [7 8]", got)
	}
	if len(k.sends) != 3 {
		t.Errorf("%d dump requests, want 3", len(k.sends))
	}
	if k.sends[0][0].Header.Sequence == k.sends[1][0].Header.Sequence {
		t.Error("a retry reused the sequence number")
	}
}

func TestDumpGivesUpAfterMaxAttempts(t *testing.T) {
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		return dumpReply(reqs[0], []byte{1}, 0), nil
	})
	_, err := c.Dump(context.Background(), unix.RTM_GETLINK, nil)
	if !errors.Is(err, ErrDumpInterrupted) {
		t.Fatalf("err = %v, want ErrDumpInterrupted", err)
	}
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != "RTM_GETLINK" {
		t.Errorf("err = %#v, want an *OpError for RTM_GETLINK", err)
	}
	if len(k.sends) != MaxDumpAttempts {
		t.Errorf("%d attempts, want %d", len(k.sends), MaxDumpAttempts)
	}
}

func TestDumpErrors(t *testing.T) {
	t.Run("refused at start", func(t *testing.T) {
		c, _ := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
			return []netlink.Message{ackFor(reqs[0], unix.EINVAL, "Invalid values in header for link dump request")}, nil
		})
		_, err := c.Dump(context.Background(), unix.RTM_GETLINK, rawBody{0, 0, 0, 0, 9, 0, 0, 0})
		var oe *OpError
		if !errors.Is(err, unix.EINVAL) || !errors.As(err, &oe) || oe.Message == "" {
			t.Fatalf("err = %v, want EINVAL with the kernel's message", err)
		}
	})
	t.Run("error in NLMSG_DONE", func(t *testing.T) {
		c, _ := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
			r := dumpReply(reqs[0], []byte{1, 2}, -1)
			copy(r[len(r)-1].Data, errnoBytes(unix.EMSGSIZE))
			return r, nil
		})
		if _, err := c.Dump(context.Background(), unix.RTM_GETLINK, nil); !errors.Is(err, unix.EMSGSIZE) {
			t.Fatalf("err = %v, want EMSGSIZE from the NLMSG_DONE", err)
		}
	})
	t.Run("encode", func(t *testing.T) {
		c, k := newFake(t, nil)
		if _, err := c.Dump(context.Background(), unix.RTM_GETLINK, badBody{}); err == nil || len(k.sends) != 0 {
			t.Fatalf("err = %v with %d sends, want an encode error and nothing sent", err, len(k.sends))
		}
	})
}

// TestDumpDrainsAbandonedDump models the kernel's refusal (EBUSY) of a dump
// while another is still unread on the socket: after a dump is abandoned
// half-way, the next one must first read the old one to its end.
func TestDumpDrainsAbandonedDump(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var running []netlink.Message // the unread rest of the kernel's current dump
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		if len(running) > 0 {
			return []netlink.Message{ackFor(reqs[0], unix.EBUSY, "")}, nil
		}
		all := dumpReply(reqs[0], []byte{1, 2, 3, 4, 5, 6}, -1)
		// The kernel queues one skb at a time: hand out the first two
		// messages now and the rest as we read.
		running = all[2:]
		return all[:2], nil
	})
	abandoned := false
	k.onEmpty = func(k *fakeKernel) {
		if !abandoned {
			abandoned = true
			cancel() // abandon the first dump after its first datagram
			return
		}
		if len(running) > 0 {
			n := min(2, len(running))
			k.enqueue(running[:n])
			running = running[n:]
		}
	}
	if _, err := c.Dump(ctx, unix.RTM_GETLINK, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("first dump: err = %v, want context.Canceled", err)
	}
	if c.staleDump == 0 {
		t.Fatal("the abandoned dump was not remembered")
	}
	msgs, err := c.Dump(context.Background(), unix.RTM_GETLINK, nil)
	if err != nil {
		t.Fatalf("second dump: %v", err)
	}
	if got := bodies(msgs); !slices.Equal(got, []byte{1, 2, 3, 4, 5, 6}) {
		t.Errorf("second dump returned %v, want its own 1..6 (nothing of the stale one)", got)
	}
	if c.staleDump != 0 {
		t.Error("staleDump not cleared")
	}
}
