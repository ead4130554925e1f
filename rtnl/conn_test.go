package rtnl

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// fakeKernel is a socket whose kernel side is an nltest.Func. Unlike
// nltest.Dial's socket it hands out one datagram per Receive with nothing
// hidden (NLMSG_DONE included), which is what Conn reads: every reply
// message is its own datagram, except runs of multi-part messages, which are
// packed perDatagram to a datagram as the kernel packs dump skbs.
type fakeKernel struct {
	fn          nltest.Func
	perDatagram int

	queue [][]netlink.Message
	sends [][]netlink.Message
	// mu guards deadline, which Conn's cancellation watcher sets from
	// another goroutine.
	mu       sync.Mutex
	deadline time.Time
	sendErr  error
	// recvErrs are returned, in order, by Receive before the queue is read.
	recvErrs []error
	// onEmpty runs when Receive finds nothing queued, before it gives up;
	// it may queue more (or cancel a context).
	onEmpty func(k *fakeKernel)
	closed  bool
}

func newFake(t *testing.T, fn nltest.Func) (*Conn, *fakeKernel) {
	t.Helper()
	k := &fakeKernel{fn: fn, perDatagram: 2}
	return newConn(k, 0), k
}

func (k *fakeKernel) SendMessages(msgs []netlink.Message) error {
	if k.sendErr != nil {
		return k.sendErr
	}
	// Like netlink.Conn.SendMessages: fill in lengths and our port id.
	cp := make([]netlink.Message, len(msgs))
	for i, m := range msgs {
		m.Header.Length = uint32(unix.NLMSG_HDRLEN + len(m.Data))
		m.Header.PID = nltest.PID
		cp[i] = m
	}
	k.sends = append(k.sends, cp)
	replies, err := k.fn(cp)
	if err != nil {
		return err
	}
	k.enqueue(replies)
	return nil
}

// enqueue turns replies into datagrams.
func (k *fakeKernel) enqueue(replies []netlink.Message) {
	var multi []netlink.Message
	flush := func() {
		for len(multi) > 0 {
			n := min(k.perDatagram, len(multi))
			k.queue = append(k.queue, multi[:n:n])
			multi = multi[n:]
		}
	}
	for _, m := range replies {
		if m.Header.Flags&netlink.Multi != 0 {
			multi = append(multi, m)
			if m.Header.Type == netlink.Done {
				flush()
			}
			continue
		}
		flush()
		k.queue = append(k.queue, []netlink.Message{m})
	}
	flush()
}

func (k *fakeKernel) Receive(nonblock bool) ([]netlink.Message, error) {
	if len(k.recvErrs) > 0 {
		err := k.recvErrs[0]
		k.recvErrs = k.recvErrs[1:]
		return nil, err
	}
	if len(k.queue) == 0 && k.onEmpty != nil {
		k.onEmpty(k)
	}
	if len(k.queue) == 0 {
		if nonblock {
			return nil, os.NewSyscallError("recvmsg", unix.EAGAIN)
		}
		// Nothing will ever come: this is where the read deadline fires.
		return nil, os.ErrDeadlineExceeded
	}
	d := k.queue[0]
	k.queue = k.queue[1:]
	return d, nil
}

func (k *fakeKernel) SetReadDeadline(t time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.deadline = t
	return nil
}

func (k *fakeKernel) readDeadline() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.deadline
}

func (k *fakeKernel) Close() error { k.closed = true; return nil }

// ackFor is the kernel's NLMSG_ERROR answer to req (errno 0 = ACK), laid out
// as netlink_ack does without NETLINK_CAP_ACK: struct nlmsgerr with the whole
// request echoed on errors (its header only on success), then, if msg is
// set, the extack attributes under NLM_F_ACK_TLVS.
func ackFor(req netlink.Message, errno unix.Errno, msg string) netlink.Message {
	hdr := make([]byte, 16)
	binary.NativeEndian.PutUint32(hdr[0:], req.Header.Length)
	binary.NativeEndian.PutUint16(hdr[4:], uint16(req.Header.Type))
	binary.NativeEndian.PutUint16(hdr[6:], uint16(req.Header.Flags))
	binary.NativeEndian.PutUint32(hdr[8:], req.Header.Sequence)
	binary.NativeEndian.PutUint32(hdr[12:], req.Header.PID)
	data := errnoBytes(errno)
	data = append(data, hdr...)
	var flags netlink.HeaderFlags
	if errno != 0 {
		data = append(data, req.Data...)
		for len(data)%4 != 0 {
			data = append(data, 0)
		}
	} else {
		flags |= netlink.Capped
	}
	if msg != "" {
		flags |= netlink.AcknowledgeTLVs
		data = append(data, nltest.MustMarshalAttributes([]netlink.Attribute{
			{Type: unix.NLMSGERR_ATTR_MSG, Data: append([]byte(msg), 0)},
		})...)
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.Error, Flags: flags, Sequence: req.Header.Sequence, PID: nltest.PID},
		Data:   data,
	}
}

// rawBody is a request body given as bytes.
type rawBody []byte

func (b rawBody) MarshalBinary() ([]byte, error) { return b, nil }

type badBody struct{}

func (badBody) MarshalBinary() ([]byte, error) { return nil, errors.New("bad body") }

func TestExecuteAddsRequestAckAndWaitsForAck(t *testing.T) {
	want := netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl
	c, k := newFake(t, nltest.CheckRequest(
		[]netlink.HeaderType{unix.RTM_NEWLINK},
		[]netlink.HeaderFlags{want},
		func(reqs []netlink.Message) ([]netlink.Message, error) {
			return []netlink.Message{ackFor(reqs[0], 0, "")}, nil
		}))
	answers, err := c.Execute(context.Background(), unix.RTM_NEWLINK, netlink.Create|netlink.Excl, rawBody{1, 2, 3, 4})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if len(answers) != 0 {
		t.Errorf("answers = %v, want none for a mutation", answers)
	}
	if got := k.sends[0][0].Data; !slices.Equal(got, []byte{1, 2, 3, 4}) {
		t.Errorf("sent body %x, want 01020304", got)
	}
	if k.sends[0][0].Header.Sequence == 0 {
		t.Error("request sent with sequence 0")
	}
}

func TestExecuteReturnsAnswersBeforeAck(t *testing.T) {
	c, _ := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		ans := netlink.Message{
			Header: netlink.Header{Type: unix.RTM_NEWLINK, Sequence: reqs[0].Header.Sequence},
			Data:   []byte{9, 9, 9, 9},
		}
		return []netlink.Message{ans, ackFor(reqs[0], 0, "")}, nil
	})
	answers, err := c.Execute(context.Background(), unix.RTM_GETLINK, 0, nil)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if len(answers) != 1 || answers[0].Header.Type != unix.RTM_NEWLINK || !slices.Equal(answers[0].Data, []byte{9, 9, 9, 9}) {
		t.Fatalf("answers = %+v, want the one RTM_NEWLINK", answers)
	}
}

func TestExecuteSkipsLateRepliesToOtherRequests(t *testing.T) {
	c, _ := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		stale := reqs[0]
		stale.Header.Sequence--
		return []netlink.Message{
			ackFor(stale, unix.EEXIST, "stale"), // answer to an abandoned request
			ackFor(reqs[0], 0, ""),
		}, nil
	})
	if _, err := c.Execute(context.Background(), unix.RTM_NEWLINK, 0, nil); err != nil {
		t.Fatalf("Execute took a stale refusal for its own: %v", err)
	}
}

func TestExecuteKernelRefusal(t *testing.T) {
	c, _ := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		return []netlink.Message{ackFor(reqs[0], unix.EOPNOTSUPP, "Unknown device type")}, nil
	})
	_, err := c.execute(context.Background(), unix.RTM_NEWLINK, netlink.Create, rawBody{0, 0, 0, 0}, &HintContext{Kind: "vlan", Name: "eth0.10"})
	if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("err = %v, want EOPNOTSUPP reachable with errors.Is", err)
	}
	var oe *OpError
	if !errors.As(err, &oe) {
		t.Fatalf("err is %T, want *OpError", err)
	}
	if oe.Op != "RTM_NEWLINK" || oe.Errno != unix.EOPNOTSUPP || oe.Message != "Unknown device type" {
		t.Errorf("OpError = %+v", oe)
	}
	if oe.Hint != "kernel has no 802.1Q VLAN support (load module 8021q)" {
		t.Errorf("Hint = %q", oe.Hint)
	}
	var ne *netlink.OpError
	if !errors.As(err, &ne) {
		t.Errorf("the *netlink.OpError is not reachable from %v", err)
	}
	want := "RTM_NEWLINK: operation not supported: Unknown device type (kernel has no 802.1Q VLAN support (load module 8021q))"
	if err.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", err.Error(), want)
	}
}

func TestExecuteEncodeError(t *testing.T) {
	c, k := newFake(t, func([]netlink.Message) ([]netlink.Message, error) {
		t.Fatal("a request that failed to encode reached the kernel")
		return nil, nil
	})
	_, err := c.Execute(context.Background(), unix.RTM_NEWLINK, 0, badBody{})
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != "RTM_NEWLINK" || oe.Errno != 0 {
		t.Fatalf("err = %#v, want an *OpError without errno", err)
	}
	if len(k.sends) != 0 {
		t.Fatal("sent something")
	}
}

func TestExecuteSendError(t *testing.T) {
	c, k := newFake(t, nil)
	k.sendErr = os.NewSyscallError("sendmsg", unix.ENOBUFS)
	_, err := c.Execute(context.Background(), unix.RTM_NEWLINK, 0, nil)
	if !errors.Is(err, unix.ENOBUFS) {
		t.Fatalf("err = %v, want ENOBUFS", err)
	}
}

func TestExecuteDeadlineFromContext(t *testing.T) {
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		return []netlink.Message{ackFor(reqs[0], 0, "")}, nil
	})
	dl := time.Now().Add(10 * time.Second) // well inside DefaultTimeout
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	if _, err := c.Execute(ctx, unix.RTM_NEWLINK, 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := k.readDeadline(); !got.Equal(dl) {
		t.Errorf("socket read deadline %v, want the context's %v", got, dl)
	}
}

func TestExecuteNoReplyTimesOut(t *testing.T) {
	// The kernel never answers: the fake's "deadline fires" at once.
	c, _ := newFake(t, func([]netlink.Message) ([]netlink.Message, error) { return nil, nil })
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, err := c.Execute(ctx, unix.RTM_NEWLINK, 0, nil)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want the reply timeout (os.ErrDeadlineExceeded)", err)
	}
	var oe *OpError
	if !errors.As(err, &oe) || !oe.Timeout() {
		t.Errorf("err = %v, want an *OpError whose Timeout() is true", err)
	}

	// With the context's deadline the nearer one, the error is the context's.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	_, err = c.Execute(ctx2, unix.RTM_NEWLINK, 0, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestExecuteCancelInterruptsRead(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, k := newFake(t, func([]netlink.Message) ([]netlink.Message, error) { return nil, nil })
	k.onEmpty = func(k *fakeKernel) {
		// Cancel while the read is about to block; the watcher must move
		// the socket deadline into the past to wake it.
		cancel()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && !k.deadlineIsPast() {
			time.Sleep(time.Millisecond)
		}
	}
	_, err := c.Execute(ctx, unix.RTM_NEWLINK, 0, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !k.deadlineIsPast() {
		t.Error("cancellation did not set a past read deadline")
	}
}

func (k *fakeKernel) deadlineIsPast() bool {
	d := k.readDeadline()
	return !d.IsZero() && d.Before(time.Unix(2, 0))
}

func TestReplyError(t *testing.T) {
	req := netlink.Message{
		Header: netlink.Header{Length: 20, Type: unix.RTM_NEWLINK, Flags: netlink.Request, Sequence: 7, PID: 1},
		Data:   []byte{1, 2, 3, 4},
	}
	tests := []struct {
		name    string
		m       netlink.Message
		errno   unix.Errno
		message string
	}{
		{name: "ack", m: ackFor(req, 0, "")},
		{name: "ack with warning", m: ackFor(req, 0, "some warning")},
		{name: "refusal", m: ackFor(req, unix.EEXIST, ""), errno: unix.EEXIST},
		{name: "refusal with extack", m: ackFor(req, unix.EINVAL, "Invalid VLAN id"), errno: unix.EINVAL, message: "Invalid VLAN id"},
		{
			name: "capped refusal with extack",
			m: func() netlink.Message {
				m := ackFor(req, 0, "") // header only, as with CAP_ACK
				copy(m.Data[0:4], errnoBytes(unix.ENODEV))
				m.Header.Flags = netlink.Capped | netlink.AcknowledgeTLVs
				m.Data = append(m.Data, nltest.MustMarshalAttributes([]netlink.Attribute{
					{Type: unix.NLMSGERR_ATTR_MSG, Data: []byte("no device\x00")},
					{Type: unix.NLMSGERR_ATTR_OFFS, Data: binary.NativeEndian.AppendUint32(nil, 20)},
				})...)
				return m
			}(),
			errno: unix.ENODEV, message: "no device",
		},
		{
			name: "done without error",
			m:    netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi}, Data: []byte{0, 0, 0, 0}},
		},
		{
			name: "done with error and extack",
			m: netlink.Message{
				Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi | netlink.AcknowledgeTLVs},
				Data: append(errnoBytes(unix.EOPNOTSUPP),
					nltest.MustMarshalAttributes([]netlink.Attribute{{Type: unix.NLMSGERR_ATTR_MSG, Data: []byte("filter not supported\x00")}})...),
			},
			errno: unix.EOPNOTSUPP, message: "filter not supported",
		},
		{name: "data message", m: netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWLINK}, Data: []byte{0xff, 0xff, 0xff, 0xff}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := replyError(tt.m)
			if tt.errno == 0 {
				if err != nil {
					t.Fatalf("replyError = %v, want nil", err)
				}
				return
			}
			var ne *netlink.OpError
			if !errors.As(err, &ne) {
				t.Fatalf("replyError = %v (%T), want *netlink.OpError", err, err)
			}
			if !errors.Is(err, tt.errno) || ne.Message != tt.message {
				t.Errorf("replyError = %v (message %q), want %v with message %q", err, ne.Message, tt.errno, tt.message)
			}
		})
	}
}

func TestParseMessages(t *testing.T) {
	// Build the datagram by hand as the kernel lays it out: each message
	// padded to 4 bytes, the header's length unpadded.
	var dg []byte
	hdr := func(l uint32, typ, flags uint16, seq uint32) []byte {
		h := binary.NativeEndian.AppendUint32(nil, l)
		h = binary.NativeEndian.AppendUint16(h, typ)
		h = binary.NativeEndian.AppendUint16(h, flags)
		h = binary.NativeEndian.AppendUint32(h, seq)
		return binary.NativeEndian.AppendUint32(h, 0)
	}
	dg = append(dg, hdr(21, 16, 0, 1)...)
	dg = append(dg, 1, 2, 3, 4, 5, 0, 0, 0)
	dg = append(dg, hdr(20, uint16(netlink.Done), uint16(netlink.Multi), 1)...)
	dg = append(dg, 0, 0, 0, 0)
	msgs, err := parseMessages(dg)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || !slices.Equal(msgs[0].Data, []byte{1, 2, 3, 4, 5}) || msgs[1].Header.Type != netlink.Done {
		t.Fatalf("parsed %+v", msgs)
	}
	if _, err := parseMessages(hdr(40, 16, 0, 1)); err == nil {
		t.Error("a length beyond the datagram parsed")
	}
	if _, err := parseMessages(hdr(8, 16, 0, 1)); err == nil {
		t.Error("a length below the header size parsed")
	}
}

func FuzzParseMessages(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		b = b[:len(b)&^3] // Receive always hands over an aligned buffer
		msgs, err := parseMessages(b)
		if err != nil {
			return
		}
		for _, m := range msgs {
			if int(m.Header.Length) != unix.NLMSG_HDRLEN+len(m.Data) {
				t.Fatalf("message length %d but %d data bytes", m.Header.Length, len(m.Data))
			}
			_ = replyError(m) // must not panic on any input
		}
	})
}

func TestCloseClosesSocket(t *testing.T) {
	c, k := newFake(t, nil)
	if err := c.Close(); err != nil || !k.closed {
		t.Fatalf("Close = %v, closed = %v", err, k.closed)
	}
}

// errnoBytes is the kernel's negative errno as the int of struct nlmsgerr.
func errnoBytes(e unix.Errno) []byte {
	return binary.NativeEndian.AppendUint32(nil, uint32(-int32(e)))
}

func TestExpiredContextSendsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, k := newFake(t, func([]netlink.Message) ([]netlink.Message, error) {
		t.Fatal("a request was sent with an expired context")
		return nil, nil
	})
	if _, err := c.Execute(ctx, unix.RTM_NEWLINK, 0, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Execute: %v, want context.Canceled", err)
	}
	if _, err := c.Dump(ctx, unix.RTM_GETLINK, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Dump: %v, want context.Canceled", err)
	}
	errs, err := c.Batch(ctx, []Request{{Type: unix.RTM_NEWLINK}, {Type: unix.RTM_NEWLINK}})
	if !errors.Is(err, context.Canceled) || len(errs) != 2 || !errors.Is(errs[1], context.Canceled) {
		t.Errorf("Batch: %v, %v; want context.Canceled for all", errs, err)
	}
	if len(k.sends) != 0 {
		t.Errorf("%d sends", len(k.sends))
	}
}
