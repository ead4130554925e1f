package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/vmlink/vmlink/internal/netns"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Options say where and what to capture.
type Options struct {
	// NetNS is the interface's network namespace: a name as `ip -n` takes
	// (/run/netns/NAME) or a path such as /proc/PID/ns/net. "" is the
	// caller's own namespace.
	NetNS string
	// Iface is the interface to capture on, typically the parent of the
	// VLAN and macvlan links under test. Required.
	Iface string
	// Filter is compiled to classic BPF (bpfLive) and attached to the socket
	// before it is bound, so no unfiltered frame is ever queued.
	Filter Filter
	// Snaplen is the number of bytes kept per frame; 0 means 262144, enough
	// for any MTU plus tags and for GRO-merged frames on veth.
	Snaplen int
	// NoPromisc leaves the interface's promiscuity alone. By default the
	// capture joins PACKET_MR_PROMISC, which the kernel undoes itself when
	// the socket closes, however the process ends. A check that reads the
	// parent's own promiscuity (passthru, nopromisc) should set NoPromisc.
	NoPromisc bool
	// BufferSize is the socket receive buffer; 0 means 4 MiB.
	BufferSize int
}

// DefaultBufferSize is the socket receive buffer of a capture whose
// Options.BufferSize is 0; a caller expecting more frames sizes up from it.
const DefaultBufferSize = 4 << 20

const (
	defaultSnaplen = 262144
	// pollInterval bounds every blocking read: Next re-checks its context
	// at least this often, even when the context has no deadline.
	pollInterval = 100 * time.Millisecond
)

// Stats are a capture's counters.
type Stats struct {
	Frames        uint64 // frames returned by Next
	KernelPackets uint64 // frames that passed the filter in the kernel, drops included (tp_packets)
	KernelDrops   uint64 // frames the kernel dropped because our socket buffer was full (tp_drops)
}

// Capture is a live capture on one interface: an AF_PACKET socket (all
// protocols, both directions) with PACKET_AUXDATA, so that the outer VLAN
// tag the kernel moved into skb metadata is put back in each frame with its
// real TPID (802.1Q or 802.1ad), PCP and DEI. VLAN 0 priority tags are kept,
// a QinQ inner tag stays inline behind the restored outer one, and each
// frame carries its direction (sll_pkttype).
//
// gopacket's afpacket ring was considered and not used: it drops tags whose
// TCI is 0 (priority 0, VLAN 0) and does not expose sll_pkttype.
type Capture struct {
	file    *os.File // the socket, registered with the runtime poller
	rc      syscall.RawConn
	ifindex int
	mtu     int
	name    string // "netns/iface" for messages

	// receive state, reused by every Next
	buf    []byte // frame lands at buf[4:], leaving room to restore a tag
	oob    []byte
	sa     unix.RawSockaddrLinklayer
	iov    unix.Iovec
	msg    unix.Msghdr
	n      int
	oobn   int
	rerr   error
	readFn func(fd uintptr) bool
	dec    *Decoder
	frame  Frame

	mu     sync.Mutex // guards stats and closed
	stats  Stats
	closed bool
}

// Open opens a capture on opts.Iface inside opts.NetNS. Close it:
// the kernel then also drops the promiscuous membership.
func Open(ctx context.Context, opts Options) (*Capture, error) {
	name := opts.Iface
	if opts.NetNS != "" {
		name = opts.NetNS + "/" + opts.Iface
	}
	wrap := func(err error) error { return fmt.Errorf("capture on %s: %w", name, err) }
	if opts.Iface == "" {
		return nil, wrap(errors.New("no interface given"))
	}
	if len(opts.Iface) >= unix.IFNAMSIZ {
		return nil, wrap(fmt.Errorf("interface name %q longer than %d bytes", opts.Iface, unix.IFNAMSIZ-1))
	}
	if opts.Snaplen == 0 {
		opts.Snaplen = defaultSnaplen
	}
	if opts.Snaplen < 64 || opts.Snaplen > 1<<20 {
		return nil, wrap(fmt.Errorf("snap length %d out of range: use 64-1048576 (0 for the default)", opts.Snaplen))
	}
	if opts.BufferSize == 0 {
		opts.BufferSize = DefaultBufferSize
	}
	prog, err := opts.Filter.compile(bpfLive)
	if err != nil {
		return nil, wrap(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, wrap(err)
	}

	// Only socket(2) depends on the thread's namespace: the socket belongs
	// to the namespace it was created in, and every later call on it
	// (ioctl, bind, setsockopt) acts there.
	fd := -1
	err = netns.DoIn(opts.NetNS, func() error {
		var err error
		// Protocol 0: the socket receives nothing until bind, after the
		// filter is attached.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, wrap(fmt.Errorf("open packet socket: needs CAP_NET_RAW (run as root): %w", err))
		}
		return nil, wrap(fmt.Errorf("open packet socket: %w", err))
	}
	c, err := setupCapture(fd, opts, prog)
	if err != nil {
		unix.Close(fd)
		return nil, wrap(err)
	}
	c.name = name
	file := os.NewFile(uintptr(fd), "packet:"+name)
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, wrap(err)
	}
	c.file, c.rc = file, rc
	return c, nil
}

// setupCapture configures the socket; fd is closed by the caller on error.
func setupCapture(fd int, opts Options, prog []bpf.RawInstruction) (*Capture, error) {
	ifr, err := unix.NewIfreq(opts.Iface)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("no interface %q here: check `ip link`: %w", opts.Iface, err)
		}
		return nil, fmt.Errorf("look up interface %q: %w", opts.Iface, err)
	}
	ifindex := int(ifr.Uint32())
	// Like tcpdump, refuse a down interface: bind would succeed, but the
	// first read would fail with ENETDOWN and no frame can arrive.
	if ifr, err := unix.NewIfreq(opts.Iface); err == nil && unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr) == nil &&
		ifr.Uint16()&unix.IFF_UP == 0 {
		return nil, fmt.Errorf("interface %s is down: bring it up first (ip link set dev %s up)", opts.Iface, opts.Iface)
	}
	mtu := 0
	if ifr, err := unix.NewIfreq(opts.Iface); err == nil && unix.IoctlIfreq(fd, unix.SIOCGIFMTU, ifr) == nil {
		mtu = int(ifr.Uint32())
	}
	if len(prog) > 0 {
		filter := make([]unix.SockFilter, len(prog))
		for i, ins := range prog {
			filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
		}
		fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
			return nil, fmt.Errorf("attach filter %q: %w", opts.Filter, err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return nil, fmt.Errorf("enable PACKET_AUXDATA: %w", err)
	}
	// Kernel receive timestamps; the 64-bit variant where the kernel has it.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, 1) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) // else stamp on read
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opts.BufferSize) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, opts.BufferSize) // capped by rmem_max
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return nil, fmt.Errorf("bind to %s (ifindex %d): %w", opts.Iface, ifindex, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("read socket address: %w", err)
	}
	if ll, ok := sa.(*unix.SockaddrLinklayer); ok && ll.Hatype != unix.ARPHRD_ETHER && ll.Hatype != unix.ARPHRD_LOOPBACK {
		return nil, fmt.Errorf("interface %s is not Ethernet (ARPHRD %d): its frames have no MAC header to check", opts.Iface, ll.Hatype)
	}
	if !opts.NoPromisc {
		mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return nil, fmt.Errorf("enter promiscuous mode: %w", err)
		}
	}
	// Start the drop counters at zero: reading them resets them.
	if _, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err != nil {
		return nil, fmt.Errorf("read packet statistics: %w", err)
	}

	c := &Capture{
		ifindex: ifindex,
		mtu:     mtu,
		buf:     make([]byte, opts.Snaplen+4),
		oob:     make([]byte, 128),
		dec:     NewDecoder(),
	}
	c.readFn = c.recvmsg
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// MTU is the captured interface's MTU when the capture opened (0 if unknown).
func (c *Capture) MTU() int { return c.mtu }

// recvmsg is the poller callback: one recvmsg(2) into c's buffers. It is a
// method value stored once so that reading allocates nothing per frame.
func (c *Capture) recvmsg(fd uintptr) bool {
	c.iov.Base = &c.buf[4]
	c.iov.SetLen(len(c.buf) - 4)
	c.msg = unix.Msghdr{
		Name:    (*byte)(unsafe.Pointer(&c.sa)),
		Namelen: unix.SizeofSockaddrLinklayer,
		Iov:     &c.iov,
		Iovlen:  1,
		Control: &c.oob[0],
	}
	c.msg.SetControllen(len(c.oob))
	n, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), unix.MSG_TRUNC)
	if errno == unix.EAGAIN {
		return false // wait in the poller
	}
	c.n, c.oobn, c.rerr = int(n), int(c.msg.Controllen), nil
	if errno != 0 {
		c.rerr = errno
	}
	return true
}

// Next returns the next frame. It blocks until a frame arrives or ctx ends
// (then it returns ctx's error); every read carries a deadline, the earlier
// of ctx's and pollInterval, so cancellation is noticed promptly. The Frame
// is reused by the next call (see Frame.Clone).
func (c *Capture) Next(ctx context.Context) (*Frame, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dl := time.Now().Add(pollInterval)
		if d, ok := ctx.Deadline(); ok && d.Before(dl) {
			dl = d
		}
		if err := c.file.SetReadDeadline(dl); err != nil {
			return nil, fmt.Errorf("capture on %s: %w", c.name, err)
		}
		err := c.rc.Read(c.readFn)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err == nil {
			err = c.rerr
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil, fmt.Errorf("capture on %s: %w", c.name, err)
			}
			if errors.Is(err, unix.ENETDOWN) {
				return nil, fmt.Errorf("capture on %s: the interface went down or was deleted: %w", c.name, err)
			}
			return nil, fmt.Errorf("capture on %s: read: %w", c.name, err)
		}
		c.fill()
		c.mu.Lock()
		c.stats.Frames++
		c.mu.Unlock()
		return &c.frame, nil
	}
}

// fill builds c.frame from the last recvmsg: the outer tag from
// PACKET_AUXDATA goes back between the source MAC and the type, with the
// TPID the kernel reports (802.1Q when it reports none, as before 3.13).
func (c *Capture) fill() {
	f := &c.frame
	capLen := min(c.n, len(c.buf)-4)
	wire := c.n
	var aux unix.TpacketAuxdata
	haveAux, haveTS := false, false
	var ts time.Time
	for off := 0; off+unix.SizeofCmsghdr <= c.oobn; {
		h := c.oob[off : off+unix.SizeofCmsghdr]
		l := int(binary.NativeEndian.Uint64(h[0:8]))
		level, typ := int32(binary.NativeEndian.Uint32(h[8:12])), int32(binary.NativeEndian.Uint32(h[12:16]))
		if l < unix.SizeofCmsghdr || off+l > c.oobn {
			break
		}
		data := c.oob[off+unix.SizeofCmsghdr : off+l]
		switch {
		case level == unix.SOL_PACKET && typ == unix.PACKET_AUXDATA && len(data) >= sizeofTpacketAuxdata:
			aux = unix.TpacketAuxdata{
				Status:    binary.NativeEndian.Uint32(data[0:4]),
				Len:       binary.NativeEndian.Uint32(data[4:8]),
				Snaplen:   binary.NativeEndian.Uint32(data[8:12]),
				Mac:       binary.NativeEndian.Uint16(data[12:14]),
				Net:       binary.NativeEndian.Uint16(data[14:16]),
				Vlan_tci:  binary.NativeEndian.Uint16(data[16:18]),
				Vlan_tpid: binary.NativeEndian.Uint16(data[18:20]),
			}
			haveAux = true
		case level == unix.SOL_SOCKET && (typ == unix.SO_TIMESTAMPNS_NEW || typ == unix.SO_TIMESTAMPNS) && len(data) >= 16:
			ts = time.Unix(int64(binary.NativeEndian.Uint64(data[0:8])), int64(binary.NativeEndian.Uint64(data[8:16])))
			haveTS = true
		}
		off += (l + 7) &^ 7
	}
	if !haveTS {
		ts = time.Now()
	}
	if haveAux {
		wire = int(aux.Len)
	}
	data := c.buf[4 : 4+capLen]
	if haveAux && aux.Status&unix.TP_STATUS_VLAN_VALID != 0 && capLen >= 12 {
		tpid := uint16(EtherType8021Q)
		if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 && aux.Vlan_tpid != 0 {
			tpid = aux.Vlan_tpid
		}
		copy(c.buf[0:12], c.buf[4:16])
		binary.BigEndian.PutUint16(c.buf[12:14], tpid)
		binary.BigEndian.PutUint16(c.buf[14:16], aux.Vlan_tci)
		data = c.buf[0 : 4+capLen]
		wire += 4
	}
	f.Time = ts
	f.IfIndex = int(c.sa.Ifindex)
	f.Dir = directionFromPktType(c.sa.Pkttype)
	f.Comment = ""
	_ = c.dec.decodeCaptured(data, wire, f) // runts come back Truncated, see decodeCaptured
}

// Frames iterates over frames until ctx ends or an error occurs; a ctx
// ending is not reported as an error. Each Frame is reused by the next
// iteration.
func (c *Capture) Frames(ctx context.Context) iter.Seq2[*Frame, error] {
	return func(yield func(*Frame, error) bool) {
		for {
			f, err := c.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					yield(nil, err)
				}
				return
			}
			if !yield(f, nil) {
				return
			}
		}
	}
}

// collect gathers copies of every frame until ctx ends (the usual way: a
// deadline, or cancel after the probes finished) and returns them. Only a
// failure other than ctx ending is an error.
func (c *Capture) collect(ctx context.Context) ([]*Frame, error) {
	var out []*Frame
	for f, err := range c.Frames(ctx) {
		if err != nil {
			return out, err
		}
		out = append(out, f.Clone())
	}
	return out, nil
}

// Stats returns the counters so far. The kernel's counters reset when read,
// so Capture accumulates them; after Close they are final.
func (c *Capture) Stats() (Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.stats, nil
	}
	if err := c.readKernelStats(); err != nil {
		return c.stats, fmt.Errorf("capture on %s: read packet statistics: %w", c.name, err)
	}
	return c.stats, nil
}

// readKernelStats adds PACKET_STATISTICS to c.stats; c.mu is held.
func (c *Capture) readKernelStats() error {
	var st *unix.TpacketStats
	var gerr error
	err := c.rc.Control(func(fd uintptr) {
		st, gerr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	})
	if err == nil {
		err = gerr
	}
	if err != nil {
		return err
	}
	c.stats.KernelPackets += uint64(st.Packets) // tp_packets already includes tp_drops
	c.stats.KernelDrops += uint64(st.Drops)
	return nil
}

// Close reads the final counters and closes the socket; the kernel drops
// the promiscuous membership with it. A blocked Next returns an error.
func (c *Capture) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	_ = c.readKernelStats() // best effort: the socket goes away regardless
	c.closed = true
	c.mu.Unlock()
	if err := c.file.Close(); err != nil {
		return fmt.Errorf("capture on %s: close: %w", c.name, err)
	}
	return nil
}

// sizeofTpacketAuxdata is sizeof(struct tpacket_auxdata) (linux/if_packet.h).
const sizeofTpacketAuxdata = 20
