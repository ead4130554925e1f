package rtnl

import (
	"context"
	"encoding"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const (
	// MaxBatchChunk is the most requests Batch puts in one sendmsg. The
	// kernel handles a whole sendmsg before returning and queues every ACK
	// on our socket meanwhile, so a chunk's ACKs must fit the receive
	// buffer; beyond a few hundred the syscall savings are negligible.
	MaxBatchChunk = 256
	// maxChunkBytes bounds one sendmsg: netlink refuses a datagram larger
	// than the socket's send buffer (EMSGSIZE), 208 KiB by default.
	maxChunkBytes = 64 << 10
	// ackBudget is the receive-buffer memory one ACK may take: its skb's
	// true size. An error ACK echoes the request (no CapAcknowledge) and
	// carries the extack text, so allow a generous 2 KiB.
	ackBudget = 2 << 10
)

// ErrNoAck marks a request whose ACK never came: the batch's context expired
// or the socket failed before it arrived. Whether the kernel applied the
// request is unknown.
var ErrNoAck = errors.New("no acknowledgement from the kernel")

// chunkForBuffer sizes batch chunks so their ACKs fit a receive buffer of
// rcvbuf bytes (as SO_RCVBUF reports it: the kernel's doubled value).
func chunkForBuffer(rcvbuf int) int {
	n := rcvbuf / ackBudget
	return max(1, min(n, MaxBatchChunk))
}

// Request is one message of a Batch. NLM_F_REQUEST|NLM_F_ACK are added.
type Request struct {
	Type  netlink.HeaderType
	Flags netlink.HeaderFlags
	Body  encoding.BinaryMarshaler
	// Hint, if set, sharpens the hint of this request's error.
	Hint *HintContext
}

// Batch pipelines reqs: it encodes them all first (an encoding error sends
// nothing), then sends them with consecutive sequence numbers, many per
// sendmsg, and matches every ACK to its request by sequence number. The
// kernel runs each request on its own, in order, and carries on after a
// refusal, so errs[i] is the outcome of reqs[i]: nil, an *OpError from the
// kernel, or ErrNoAck (wrapped) when the context expired or the socket
// failed first. The second result reports that transport failure (nil when
// every request got its answer, refusals included).
//
// Requests go out in chunks of at most MaxBatchChunk (fewer when the
// receive buffer is small), each chunk's ACKs read before the next is sent,
// so ACKs never overflow the socket. ACKs an overflow lost anyway surface
// as ErrNoAck wrapping ENOBUFS.
func (c *Conn) Batch(ctx context.Context, reqs []Request) ([]error, error) {
	errs := make([]error, len(reqs))
	msgs := make([]netlink.Message, len(reqs))
	for i, r := range reqs {
		// rtnetlink GET types are 2 mod 4 (RTM_GETLINK 18, RTM_GETADDR 22…);
		// a dump ends in NLMSG_DONE, not an ACK, and cannot share a batch.
		if r.Type%4 == 2 && r.Flags&netlink.Dump == netlink.Dump {
			return nil, fmt.Errorf("batch request %d (%s): dumps cannot be batched, use Dump", i, MessageTypeString(r.Type))
		}
		data, err := marshal(r.Body)
		if err != nil {
			return nil, fmt.Errorf("encode batch request %d (%s): %w", i, MessageTypeString(r.Type), err)
		}
		msgs[i] = netlink.Message{
			Header: netlink.Header{Type: r.Type, Flags: r.Flags | netlink.Request | netlink.Acknowledge},
			Data:   data,
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.watch(ctx)()

	for start := 0; start < len(msgs); {
		end := start
		size := 0
		for end < len(msgs) && end-start < c.chunk {
			l := unix.NLMSG_HDRLEN + nlAlign(len(msgs[end].Data))
			if end > start && size+l > maxChunkBytes {
				break
			}
			size += l
			end++
		}
		if err := c.batchChunk(ctx, reqs[start:end], msgs[start:end], errs[start:end]); err != nil {
			for i := end; i < len(msgs); i++ {
				errs[i] = fmt.Errorf("%s not sent: %w", MessageTypeString(reqs[i].Type), err)
			}
			return errs, err
		}
		start = end
	}
	return errs, nil
}

// batchChunk sends one chunk in a single sendmsg and collects its ACKs into
// errs. It returns a non-nil error only when the transport failed; then
// every request without an ACK has an ErrNoAck error.
func (c *Conn) batchChunk(ctx context.Context, reqs []Request, msgs []netlink.Message, errs []error) error {
	if err := ctx.Err(); err != nil {
		for i, r := range reqs {
			errs[i] = &OpError{Op: MessageTypeString(r.Type), Err: fmt.Errorf("not sent: %w", err)}
		}
		return err
	}
	first := c.nextSeq()
	for i := range msgs {
		if i > 0 {
			c.nextSeq()
		}
		msgs[i].Header.Sequence = first + uint32(i)
	}
	if err := c.sock.SendMessages(msgs); err != nil {
		err = fmt.Errorf("send %d requests: %w", len(msgs), err)
		for i, r := range reqs {
			errs[i] = &OpError{Op: MessageTypeString(r.Type), Err: fmt.Errorf("%w: %w", ErrNoAck, err)}
		}
		return err
	}
	got := make([]bool, len(msgs))
	pending := len(msgs)
	overflow := false
	for pending > 0 {
		// Once the socket reported an overflow, everything the kernel did
		// not drop is already queued (it answers a sendmsg synchronously):
		// read what is there and stop.
		in, err := c.receive(ctx, overflow)
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) && !overflow {
				overflow = true
				continue
			}
			if overflow && errors.Is(err, unix.EAGAIN) {
				err = fmt.Errorf("receive buffer overflowed, ACKs were dropped: %w", unix.ENOBUFS)
			}
			for i, r := range reqs {
				if !got[i] {
					errs[i] = &OpError{Op: MessageTypeString(r.Type), Err: fmt.Errorf("%w: %w", ErrNoAck, err)}
				}
			}
			return err
		}
		for _, m := range in {
			i := int(m.Header.Sequence - first) // wraps to huge for older seqs
			if i < 0 || i >= len(msgs) || m.Header.Type != netlink.Error || got[i] {
				// A stale reply, or a GET's answer: only ACKs matter here.
				continue
			}
			got[i] = true
			pending--
			if err := replyError(m); err != nil {
				errs[i] = newOpError(reqs[i].Type, err, reqs[i].Hint)
			}
		}
	}
	return nil
}
