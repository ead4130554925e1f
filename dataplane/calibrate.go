package dataplane

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/vmlink/vmlink/internal/netns"
)

// LoopbackRTT measures n UDP round trips over the loopback of the named
// namespace ("" is the caller's) and returns their median: how fast this
// machine's network stack turns a datagram around. It is the yardstick for
// how long a probe should wait for an answer — under an emulated CPU (the
// VM tier) every answer takes tens of times longer than here — measured
// without any assumption about which endpoints can reach which.
func LoopbackRTT(ctx context.Context, ns string, n int) (time.Duration, error) {
	if n <= 0 {
		n = 1
	}
	var pc net.PacketConn
	listen := func() (err error) {
		pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
		return err
	}
	var err error
	if ns == "" {
		err = listen()
	} else {
		var h *netns.NS
		if h, err = netns.Open(ns); err == nil {
			err = h.Do(listen)
			h.Close()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("measure loopback round trips in %s: %w", nsLabel(ns), err)
	}
	defer pc.Close()
	// One socket talks to itself: send, receive, repeat; the socket stays
	// in the namespace it was opened in.
	self := pc.LocalAddr()
	buf := make([]byte, 64)
	rtts := make([]time.Duration, 0, n)
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	pc.SetReadDeadline(deadline)
	for range n {
		start := time.Now()
		if _, err := pc.WriteTo([]byte("vmlink rtt"), self); err != nil {
			return 0, fmt.Errorf("measure loopback round trips: %w", err)
		}
		if _, _, err := pc.ReadFrom(buf); err != nil {
			return 0, fmt.Errorf("measure loopback round trips: %w", err)
		}
		rtts = append(rtts, time.Since(start))
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2], nil
}

// Probe wait bounds: the floor is what verify uses on a fast machine; the
// ceiling keeps a lab on a very slow machine from taking minutes.
const (
	minProbeWait = 250 * time.Millisecond
	maxProbeWait = 5 * time.Second
	// waitPerRTT is how many loopback round trips a probe waits: an ARP
	// resolution plus an ICMP exchange through macvlan, VLAN and bridge
	// code, with every probe of the run in flight at once, costs a few
	// thousand loopback round trips on an emulated CPU (measured in the VM
	// tier: slowest answers of 200–300 ms, loopback round trips of 40–110
	// µs; here 5 µs, which keeps the floor).
	waitPerRTT = 10000
)

// ProbeWait turns a loopback round trip (LoopbackRTT) into the time a
// probe waits for an answer before it counts as blocked: waitPerRTT round
// trips, within [250 ms, 5 s].
func ProbeWait(rtt time.Duration) time.Duration {
	return min(max(time.Duration(waitPerRTT)*rtt, minProbeWait), maxProbeWait)
}
