package verify

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vmlink/vmlink/internal/netns"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// probeFilter accepts the frames a probe socket wants: unicast to mac,
// ARP, IPv4 or IPv6. Everybody's broadcasts (every sibling's ARP requests
// reach every bridge-mode macvlan) stay in the kernel.
func probeFilter(mac net.HardwareAddr) ([]bpf.RawInstruction, error) {
	m := probeMatch(mac)
	// Never our interface's own transmissions: a parent's socket would
	// otherwise hear every child's broadcast leave. (To the last
	// instruction of m, which refuses.)
	return bpf.Assemble(append([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: uint8(len(m) - 1)},
	}, m...))
}

// probeMatch is probeFilter's test of the frame's bytes.
func probeMatch(mac net.HardwareAddr) []bpf.Instruction {
	hi := binary.BigEndian.Uint32(mac[0:4])
	lo := uint32(binary.BigEndian.Uint16(mac[4:6]))
	return []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 0, Size: 4},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0xffffffff, SkipTrue: 7},
		/* 2 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: hi, SkipTrue: 11},
		/* 3 */ bpf.LoadAbsolute{Off: 4, Size: 2},
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: lo, SkipTrue: 9},
		/* 5 */ bpf.LoadAbsolute{Off: 12, Size: 2},
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_ARP, SkipTrue: 6},
		/* 7 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_IP, SkipTrue: 5},
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.ETH_P_IPV6, SkipTrue: 4, SkipFalse: 5},
		// broadcast: ARP only (the broadcast phase's probes)
		/* 9 */ bpf.LoadAbsolute{Off: 4, Size: 2},
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0xffff, SkipTrue: 3},
		/* 11 */ bpf.LoadAbsolute{Off: 12, Size: 2},
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.ETH_P_ARP, SkipTrue: 1},
		/* 13 */ bpf.RetConstant{Val: 1 << 16},
		/* 14 */ bpf.RetConstant{Val: 0},
	}
}

// probeSocketBuffer is a probe socket's receive buffer: room for every
// answer a sender has in flight, many times over.
const probeSocketBuffer = 1 << 20

// open opens the sender's packet socket inside its namespace.
func (s *probeSender) open() error {
	return netns.DoIn(s.ep.NetNS, func() error {
		ifi, err := net.InterfaceByName(s.ep.Interface)
		if err != nil {
			return fmt.Errorf("probe from %s: find %s: %w", EndpointID(s.ep), s.ep.Interface, err)
		}
		if len(ifi.HardwareAddr) != 6 {
			return fmt.Errorf("probe from %s: %s has no Ethernet address", EndpointID(s.ep), s.ep.Interface)
		}
		filter, err := probeFilter(ifi.HardwareAddr)
		if err != nil {
			return fmt.Errorf("probe from %s: assemble filter: %w", EndpointID(s.ep), err)
		}
		c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: filter})
		if err != nil {
			return fmt.Errorf("probe from %s: open packet socket on %s: %w", EndpointID(s.ep), s.ep.Interface, err)
		}
		if rc, err := c.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, probeSocketBuffer) != nil {
					_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, probeSocketBuffer)
				}
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
			})
		}
		s.ifi, s.conn, s.oob = ifi, c, make([]byte, 128)
		return nil
	})
}

// drainOne reads one queued frame without waiting, past any deadline.
func (s *probeSender) drainOne(buf []byte) (int, time.Time, bool) {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return 0, time.Time{}, false
	}
	n, at := -1, time.Time{}
	_ = rc.Control(func(fd uintptr) {
		var rerr error
		n, at, rerr = recvStamped(int(fd), buf, s.oob, unix.MSG_DONTWAIT)
		if rerr != nil {
			n = -1
		}
	})
	return n, at, n >= 0
}

// read reads one frame, waiting until the read deadline, with the time
// the kernel received it.
func (s *probeSender) read(buf []byte) (int, time.Time, error) {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return 0, time.Time{}, err
	}
	var (
		n    int
		at   time.Time
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		n, at, rerr = recvStamped(int(fd), buf, s.oob, 0)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	return n, at, rerr
}

// recvStamped receives one frame and its SO_TIMESTAMPNS stamp (zero when
// there is none).
func recvStamped(fd int, buf, oob []byte, flags int) (int, time.Time, error) {
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, flags)
	if err != nil {
		return 0, time.Time{}, err
	}
	var at time.Time
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				at = time.Unix(int64(binary.NativeEndian.Uint64(m.Data[0:8])), int64(binary.NativeEndian.Uint64(m.Data[8:16])))
			}
		}
	}
	return n, at, nil
}
