package rtnl

import (
	"context"
	"encoding"
	"fmt"

	"github.com/mdlayher/netlink"
)

// MaxDumpAttempts bounds how often Dump restarts a dump the kernel flagged
// NLM_F_DUMP_INTR. Ten consecutive interruptions mean something rewrites the
// table faster than it can be read; better to say so than to loop.
const MaxDumpAttempts = 10

// Dump sends typ with NLM_F_REQUEST|NLM_F_DUMP and returns every object of
// the multi-part answer, NLMSG_DONE excluded.
//
// When the table changes while the kernel walks it, it flags the reply with
// NLM_F_DUMP_INTR (on any message, NLMSG_DONE included): the answer may miss
// or repeat entries, so Dump reads it to the end and starts over, at most
// MaxDumpAttempts times, then fails with ErrDumpInterrupted.
//
// The kernel produces a dump's datagrams as they are read, each sized from
// our read buffer (up to 32 KiB), so a dump of any size never overflows the
// socket; 10,000 links come in a few hundred datagrams.
func (c *Conn) Dump(ctx context.Context, typ netlink.HeaderType, body encoding.BinaryMarshaler) ([]netlink.Message, error) {
	data, err := marshal(body)
	if err != nil {
		return nil, &OpError{Op: MessageTypeString(typ), Err: fmt.Errorf("encode request: %w", err)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.watch(ctx)()

	for attempt := 1; attempt <= MaxDumpAttempts; attempt++ {
		msgs, intr, err := c.dumpOnce(ctx, typ, data)
		if err != nil {
			return nil, err
		}
		if !intr {
			return msgs, nil
		}
		c.dumpRetries++
	}
	return nil, &OpError{Op: MessageTypeString(typ), Err: fmt.Errorf("%d attempts: %w", MaxDumpAttempts, ErrDumpInterrupted)}
}

// dumpOnce runs one dump to its NLMSG_DONE and reports whether any message
// carried NLM_F_DUMP_INTR. Must be called with c.mu held.
func (c *Conn) dumpOnce(ctx context.Context, typ netlink.HeaderType, data []byte) ([]netlink.Message, bool, error) {
	op := MessageTypeString(typ)
	// A dump abandoned earlier blocks new ones (EBUSY) until read to its end.
	for c.staleDump != 0 {
		if _, err := c.receive(ctx, false); err != nil {
			return nil, false, &OpError{Op: op, Err: fmt.Errorf("drain abandoned dump: %w", err)}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, false, &OpError{Op: op, Err: err}
	}
	seq := c.nextSeq()
	req := netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Dump, Sequence: seq},
		Data:   data,
	}
	if err := c.sock.SendMessages([]netlink.Message{req}); err != nil {
		return nil, false, &OpError{Op: op, Err: fmt.Errorf("send: %w", err)}
	}
	var (
		out  []netlink.Message
		intr bool
	)
	for {
		msgs, err := c.receive(ctx, false)
		if err != nil {
			// The kernel still holds the rest of this dump for us.
			c.staleDump = seq
			return nil, false, &OpError{Op: op, Err: err}
		}
		for _, m := range msgs {
			if m.Header.Sequence != seq {
				continue
			}
			if m.Header.Flags&netlink.DumpInterrupted != 0 {
				intr = true
			}
			switch m.Header.Type {
			case netlink.Done, netlink.Error:
				// NLMSG_ERROR: the dump was refused at the start.
				if err := replyError(m); err != nil {
					return nil, false, newOpError(typ, err, nil)
				}
				return out, intr, nil
			default:
				out = append(out, m)
			}
		}
	}
}
