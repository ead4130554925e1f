package verify

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// broadcasts is the broadcast phase. A broadcast ARP request for every
// pair would be N² broadcasts on a parent with N endpoints, each handed to
// every other endpoint (macvlan_broadcast clones it for each bridge-mode
// sibling): a million frames through the kernel for 100 endpoints, which
// this 2-core machine took two minutes to deliver. So every endpoint
// broadcasts one ARP probe (RFC 5227: sender address 0.0.0.0, target its
// own address, which nobody answers and which makes no neighbour entry),
// sent up to three times, every endpoint's socket notes whose probes came
// in, and the pairs then ask unicast: a pair is reachable only when the
// sender's broadcasts reach the target (ARP resolution starts with one)
// and the target answers.
func (e *engine) broadcasts(ctx context.Context, senders map[int]*probeSender) {
	e.heard = map[int]map[int]bool{}
	e.macs = map[int]net.HardwareAddr{}
	ph := &broadcastPhase{who: map[station]int{}, want: map[[2]int]bool{}, done: make(chan struct{})}
	for k, s := range senders {
		if s.conn == nil {
			continue
		}
		e.macs[k] = s.ifi.HardwareAddr
		if a, ok := firstIPv4(s.ep); ok {
			ph.who[station{[6]byte(s.ifi.HardwareAddr), a}] = k
		}
	}
	for k, s := range senders {
		for _, fp := range s.probes {
			if to := e.exp.Pairs[fp.pair].To; fp.dst.Is4() && senders[to].conn != nil {
				ph.want[[2]int{to, k}] = true
			}
		}
	}
	if len(ph.want) == 0 {
		return
	}
	ph.b = e.pace.budget()
	ph.start = time.Now()
	var wg sync.WaitGroup
	for k, s := range senders {
		if s.conn == nil {
			continue
		}
		local := map[int]bool{}
		e.heard[k] = local
		wg.Add(1)
		go func() {
			defer wg.Done()
			ph.run(ctx, k, s, local)
		}()
	}
	wg.Wait()
}

// station is an endpoint as its ARP probe names it.
type station struct {
	mac [6]byte
	ip  netip.Addr
}

// broadcastPhase is what the senders of the broadcast phase share.
type broadcastPhase struct {
	who   map[station]int // the endpoint a probe comes from
	want  map[[2]int]bool // the (to, from) pairs to hear: the phase ends when all were heard
	start time.Time
	b     time.Duration // how long the phase lasts at most
	mu    sync.Mutex
	heard int // how many of want were heard
	done  chan struct{}
}

// run is sender k's part of the phase: it broadcasts its ARP probe up to
// attempts times, spread over the phase, and notes in local whose probes
// its socket heard, until every wanted pair was heard or the phase is over
// (then it takes in what is still queued).
func (ph *broadcastPhase) run(ctx context.Context, k int, s *probeSender, local map[int]bool) {
	var frame []byte
	if a, ok := firstIPv4(s.ep); ok {
		frame = arpRequestFrame(s.ifi.HardwareAddr, netip.IPv4Unspecified(), a)
	}
	start, b := ph.start, ph.b
	buf := make([]byte, 2048)
	for sent := 0; ; {
		now := time.Now()
		select {
		case <-ph.done:
			return
		case <-ctx.Done():
			return
		default:
		}
		if !now.Before(start.Add(b)) {
			for n, _, ok := s.drainOne(buf); ok; n, _, ok = s.drainOne(buf) {
				ph.record(buf[:n], k, local)
			}
			return
		}
		next := earliest(start.Add(b), now.Add(tick))
		if frame != nil && sent < attempts {
			due := start.Add(time.Duration(sent) * b / attempts)
			if !now.Before(due) {
				_, _ = s.conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethernetBroadcast})
				sent++
				due = start.Add(time.Duration(sent) * b / attempts)
			}
			if sent < attempts {
				next = earliest(next, due)
			}
		}
		_ = s.conn.SetReadDeadline(next)
		n, _, err := s.read(buf)
		if err == nil {
			ph.record(buf[:n], k, local)
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}

// record notes frame f that sender k heard when it is another endpoint's
// ARP probe, and ends the phase when that was the last wanted pair.
func (ph *broadcastPhase) record(f []byte, k int, local map[int]bool) {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_ARP || binary.BigEndian.Uint16(f[20:22]) != 1 ||
		netip.AddrFrom4([4]byte(f[28:32])) != netip.IPv4Unspecified() {
		return
	}
	from, ok := ph.who[station{[6]byte(f[22:28]), netip.AddrFrom4([4]byte(f[38:42]))}]
	if !ok || from == k || local[from] {
		return
	}
	local[from] = true
	if ph.want[[2]int{k, from}] {
		ph.mu.Lock()
		if ph.heard++; ph.heard == len(ph.want) {
			close(ph.done)
		}
		ph.mu.Unlock()
	}
}
