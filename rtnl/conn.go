package rtnl

import (
	"context"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

const (
	// DefaultReadBuffer is the receive buffer (SO_RCVBUF) a Conn asks for:
	// it bounds how many ACKs one batch chunk may queue before we read them.
	// As root the kernel limit (rmem_max) is bypassed with SO_RCVBUFFORCE.
	DefaultReadBuffer = 4 << 20
	// DefaultTimeout bounds each wait for a kernel reply when the caller's
	// context has no deadline: the kernel always answers, so hitting it
	// means something is badly wrong, not that the request is slow.
	DefaultTimeout = 60 * time.Second
)

// DialOptions configure Dial. The zero value dials in the calling thread's
// network namespace with the defaults above.
type DialOptions struct {
	// NetNS is an open file descriptor of the network namespace to work in;
	// 0 means the calling thread's. The socket stays bound to that namespace
	// for its lifetime; the descriptor may be closed once Dial returns.
	NetNS int
	// ReadBuffer is the socket receive buffer in bytes; 0 = DefaultReadBuffer.
	ReadBuffer int
	// Timeout bounds each wait for a reply when the context has no
	// deadline; 0 = DefaultTimeout.
	Timeout time.Duration
}

// Conn is an rtnetlink socket in one network namespace. It adds to
// netlink.Conn what vmlink needs everywhere: an ACK on every request,
// context deadlines on every read, replies matched by sequence number (so a
// late answer to an abandoned request is never taken for the current one),
// dumps retried on NLM_F_DUMP_INTR, pipelined batches and typed errors.
//
// A Conn is safe for concurrent use; requests are serialised.
type Conn struct {
	mu      sync.Mutex
	sock    socket
	seq     uint32
	timeout time.Duration
	// chunk is how many requests Batch sends per sendmsg (see batch.go).
	chunk int
	// staleDump is the sequence number of a dump abandoned half-read (its
	// context expired); the kernel refuses a new dump on this socket until
	// the old one has been read to its NLMSG_DONE. 0 when none.
	staleDump uint32
	// dumpRetries counts dumps restarted for NLM_F_DUMP_INTR (for tests
	// and curiosity).
	dumpRetries int
}

// socket is the seam between Conn and the kernel: production uses netlink.Conn
// for sending and reads datagrams itself (see nlSocket); unit tests plug in a
// fake kernel built on nltest.Func.
type socket interface {
	// SendMessages sends msgs in one sendmsg; headers' Sequence are set.
	SendMessages(msgs []netlink.Message) error
	// Receive returns every message of the next datagram, NLMSG_DONE and
	// NLMSG_ERROR included. With nonblock it returns unix.EAGAIN instead of
	// waiting when nothing is queued.
	Receive(nonblock bool) ([]netlink.Message, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// Dial opens an rtnetlink socket in the namespace opts.NetNS, in Strict mode
// (extended ACKs carrying the kernel's error text, and strict checking of
// dump requests). CapAcknowledge is deliberately left off: without it an
// error ACK echoes the whole request, which the extack offset points into.
func Dial(opts *DialOptions) (*Conn, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	nc, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: opts.NetNS, Strict: true})
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	s, err := newNLSocket(nc)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	want := opts.ReadBuffer
	if want <= 0 {
		want = DefaultReadBuffer
	}
	// The kernel doubles the value and, without privileges, caps it at
	// rmem_max; read back what we got and size batch chunks from that.
	if err := nc.SetReadBuffer(want); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("dial rtnetlink: set receive buffer to %d bytes: %w", want, err)
	}
	got, err := nc.ReadBuffer()
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("dial rtnetlink: read receive buffer size: %w", err)
	}
	c := newConn(s, opts.Timeout)
	c.chunk = chunkForBuffer(got)
	return c, nil
}

// DialNetNS dials inside the named network namespace NAME, as `ip -n NAME`
// does (/run/netns/NAME). opts.NetNS is ignored; the other options apply.
func DialNetNS(name string, opts *DialOptions) (*Conn, error) {
	ns, err := netns.Open(name)
	if err != nil {
		return nil, fmt.Errorf("dial rtnetlink: %w", err)
	}
	// The socket keeps the namespace; the handle is not needed after Dial.
	defer ns.Close()
	o := DialOptions{}
	if opts != nil {
		o = *opts
	}
	o.NetNS = ns.FD()
	return Dial(&o)
}

// newConn wraps a socket; tests use it with a fake kernel.
func newConn(s socket, timeout time.Duration) *Conn {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Conn{
		sock:    s,
		timeout: timeout,
		chunk:   MaxBatchChunk,
		// Start from the clock like iproute2 does, so two Conns of one
		// process rarely share sequence numbers (it would not matter: each
		// socket has its own port id).
		seq: uint32(time.Now().UnixNano()),
	}
}

// Close closes the socket.
func (c *Conn) Close() error {
	return c.sock.Close()
}

// nextSeq returns the next sequence number, never 0 (which netlink.Conn
// would replace, and which the kernel uses for unsolicited messages).
func (c *Conn) nextSeq() uint32 {
	c.seq++
	if c.seq == 0 {
		c.seq++
	}
	return c.seq
}

// Execute sends one request with NLM_F_REQUEST|NLM_F_ACK added to flags and
// returns the kernel's answers (for a GET, the object; for a mutation,
// nothing) once the ACK arrives. A kernel refusal is an *OpError.
func (c *Conn) Execute(ctx context.Context, typ netlink.HeaderType, flags netlink.HeaderFlags, body encoding.BinaryMarshaler) ([]netlink.Message, error) {
	return c.execute(ctx, typ, flags, body, nil)
}

// execute is Execute with a hint context for the error.
func (c *Conn) execute(ctx context.Context, typ netlink.HeaderType, flags netlink.HeaderFlags, body encoding.BinaryMarshaler, hc *HintContext) ([]netlink.Message, error) {
	data, err := marshal(body)
	if err != nil {
		return nil, &OpError{Op: MessageTypeString(typ), Err: fmt.Errorf("encode request: %w", err)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.watch(ctx)()

	// An expired context sends nothing: the caller must not have to guess
	// whether a request it gave up on was applied.
	if err := ctx.Err(); err != nil {
		return nil, &OpError{Op: MessageTypeString(typ), Err: err}
	}
	seq := c.nextSeq()
	req := netlink.Message{
		Header: netlink.Header{Type: typ, Flags: flags | netlink.Request | netlink.Acknowledge, Sequence: seq},
		Data:   data,
	}
	if err := c.sock.SendMessages([]netlink.Message{req}); err != nil {
		return nil, &OpError{Op: MessageTypeString(typ), Err: fmt.Errorf("send: %w", err)}
	}
	var answers []netlink.Message
	for {
		msgs, err := c.receive(ctx, false)
		if err != nil {
			return nil, &OpError{Op: MessageTypeString(typ), Err: err}
		}
		for _, m := range msgs {
			if m.Header.Sequence != seq {
				continue // a late reply to an abandoned request
			}
			switch m.Header.Type {
			case netlink.Error, netlink.Done:
				// The ACK (errno 0) or the refusal ends the exchange; a
				// Done ends it too if the caller asked for a dump.
				if err := replyError(m); err != nil {
					return nil, newOpError(typ, err, hc)
				}
				return answers, nil
			default:
				answers = append(answers, m)
			}
		}
	}
}

// marshal encodes an optional body.
func marshal(body encoding.BinaryMarshaler) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	return body.MarshalBinary()
}

// watch makes a cancellation of ctx interrupt a blocked read (a deadline in
// ctx is applied by receive itself). The returned func must be called before
// the next request: it waits for a cancellation that is already running, so
// a late "deadline in the past" never lands on the next request's read.
func (c *Conn) watch(ctx context.Context) func() {
	if ctx.Done() == nil {
		return func() {}
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.sock.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired
		}
	}
}

// receive reads one datagram, bounded by ctx and c.timeout. It also notices
// the end of an abandoned dump.
func (c *Conn) receive(ctx context.Context, nonblock bool) ([]netlink.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dl := time.Now().Add(c.timeout)
	ctxDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl, ctxDeadline = d, true
	}
	if err := c.sock.SetReadDeadline(dl); err != nil {
		return nil, fmt.Errorf("set read deadline: %w", err)
	}
	// A cancellation between the check above and SetReadDeadline would be
	// overwritten by our deadline: look again (see watch).
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	msgs, err := c.sock.Receive(nonblock)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			if ctxDeadline {
				// The socket deadline fired a hair before ctx's timer.
				return nil, context.DeadlineExceeded
			}
			return nil, fmt.Errorf("no reply from the kernel within %v: %w", c.timeout, err)
		}
		return nil, fmt.Errorf("receive: %w", err)
	}
	if c.staleDump != 0 {
		for _, m := range msgs {
			if m.Header.Sequence == c.staleDump && (m.Header.Type == netlink.Done || m.Header.Type == netlink.Error) {
				c.staleDump = 0
			}
		}
	}
	return msgs, nil
}

// replyError returns the error an NLMSG_ERROR or NLMSG_DONE message carries,
// nil for an ACK (errno 0) or any other message. The value is the same
// *netlink.OpError netlink.Conn.Receive builds (errno, extack message and
// offset, sequence): we read datagrams ourselves because Receive hides
// NLMSG_DONE, and with it the NLM_F_DUMP_INTR the kernel may set only there
// (netlink_dump_done), and drops the rest of a datagram after an error.
func replyError(m netlink.Message) error {
	var tlvs []byte
	switch m.Header.Type {
	case netlink.Error:
		// struct nlmsgerr { int error; struct nlmsghdr msg; } then, with
		// NLM_F_ACK_TLVS, the extack attributes after the echoed request
		// (its header only if NLM_F_CAPPED).
		if len(m.Data) < 4 {
			return &netlink.OpError{Op: "receive", Err: errors.New("short NLMSG_ERROR"), Sequence: m.Header.Sequence}
		}
		if m.Header.Flags&netlink.AcknowledgeTLVs != 0 && len(m.Data) >= 4+16 {
			off := 4 + 16
			if m.Header.Flags&netlink.Capped == 0 {
				off = 4 + int(binary.NativeEndian.Uint32(m.Data[4:8]))
			}
			if off <= len(m.Data) {
				tlvs = m.Data[nlAlign(off):]
			}
		}
	case netlink.Done:
		// A dump's NLMSG_DONE carries an int errno (0 = success), then
		// extack attributes with NLM_F_ACK_TLVS.
		if len(m.Data) < 4 {
			return nil
		}
		if m.Header.Flags&netlink.AcknowledgeTLVs != 0 {
			tlvs = m.Data[4:]
		}
	default:
		return nil
	}
	code := int32(binary.NativeEndian.Uint32(m.Data[:4]))
	if code == 0 {
		return nil
	}
	oe := &netlink.OpError{Op: "receive", Err: unix.Errno(-code), Sequence: m.Header.Sequence}
	if len(tlvs) > 0 {
		if ad, err := netlink.NewAttributeDecoder(tlvs); err == nil {
			for ad.Next() {
				switch ad.Type() {
				case unix.NLMSGERR_ATTR_MSG:
					oe.Message = ad.String()
				case unix.NLMSGERR_ATTR_OFFS:
					oe.Offset = int(ad.Uint32())
				}
			}
			// Malformed extack attributes must not hide the errno: keep
			// what was decoded, like netlink.Conn does.
			_ = ad.Err()
		}
	}
	return oe
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

// peekBuffer is the kernel's cap on dump skb sizing (SKB_WITH_OVERHEAD(32768)
// rounds below 32 KiB; offering the full 32 KiB reaches the cap).
const peekBuffer = 32 << 10

// nlSocket is the production socket: netlink.Conn sends (and owns the
// namespace, buffer and option plumbing), datagrams are read through its
// raw connection so NLMSG_DONE stays visible.
type nlSocket struct {
	nc *netlink.Conn
	rc syscall.RawConn
	// peek receives the MSG_PEEK copy of each datagram. Its size matters:
	// the kernel sizes a dump's skbs from the largest buffer recvmsg was
	// given (max_recvmsg_len, capped at 32 KiB). netlink.Conn peeks with an
	// empty buffer, so dumps come two links per datagram; with 32 KiB they
	// come ~20 to a datagram and a 10,000-link dump is several times faster.
	peek []byte
}

func newNLSocket(nc *netlink.Conn) (*nlSocket, error) {
	rc, err := nc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw connection: %w", err)
	}
	return &nlSocket{nc: nc, rc: rc, peek: make([]byte, peekBuffer)}, nil
}

func (s *nlSocket) SendMessages(msgs []netlink.Message) error {
	_, err := s.nc.SendMessages(msgs)
	return err
}

func (s *nlSocket) SetReadDeadline(t time.Time) error { return s.nc.SetReadDeadline(t) }
func (s *nlSocket) Close() error                      { return s.nc.Close() }

// Receive peeks at the next datagram's size, reads it whole into a buffer of
// that size (a dump skb can exceed any fixed buffer when min_dump_alloc is
// large) and splits it into messages.
func (s *nlSocket) Receive(nonblock bool) ([]netlink.Message, error) {
	n, _, err := s.recvmsg(s.peek, unix.MSG_PEEK|unix.MSG_TRUNC, nonblock)
	if err != nil {
		return nil, err
	}
	b := make([]byte, nlAlign(n))
	n, rflags, err := s.recvmsg(b, 0, nonblock)
	if err != nil {
		return nil, err
	}
	if rflags&unix.MSG_TRUNC != 0 {
		return nil, fmt.Errorf("datagram truncated to %d bytes", len(b))
	}
	return parseMessages(b[:nlAlign(n)])
}

func (s *nlSocket) recvmsg(b []byte, flags int, nonblock bool) (int, int, error) {
	var (
		n, rflags int
		err       error
	)
	if nonblock {
		flags |= unix.MSG_DONTWAIT
	}
	rerr := s.rc.Read(func(fd uintptr) bool {
		for {
			n, _, rflags, _, err = unix.Recvmsg(int(fd), b, nil, flags)
			if err != unix.EINTR {
				break
			}
		}
		// Wait for readability on EAGAIN unless the caller wants to know.
		return nonblock || err != unix.EAGAIN
	})
	if rerr != nil {
		return 0, 0, rerr
	}
	if err != nil {
		return 0, 0, os.NewSyscallError("recvmsg", err)
	}
	return n, rflags, nil
}

// parseMessages splits a datagram into netlink messages.
func parseMessages(b []byte) ([]netlink.Message, error) {
	var msgs []netlink.Message
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, fmt.Errorf("malformed netlink message: length %d with %d bytes left", l, len(b))
		}
		// b's length is aligned (Receive sizes it so), hence so is end.
		end := min(nlAlign(l), len(b))
		var m netlink.Message
		if err := m.UnmarshalBinary(b[:end]); err != nil {
			return nil, fmt.Errorf("malformed netlink message: %w", err)
		}
		msgs = append(msgs, m)
		b = b[end:]
	}
	return msgs, nil
}
