package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/ndp"
	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify/capture"
)

// pacer decides how long a probe waits for an answer before it counts as
// blocked: at least floor, and at least four times the slowest answer any
// probe of the same run has had so far. Every probe runs at once, so the
// answers that do come tell how slow this machine and this network are (an
// emulated CPU in the VM tier is a hundred times slower than the host): a
// negative is "nothing came back within a few of this run's round trips",
// not a fixed guess.
type pacer struct {
	floor time.Duration
	// fixed makes floor the wait, whatever the answers' pace (--wait).
	fixed  bool
	slowst atomic.Int64
	// seen is the slowest answer as this process saw it: the kernel's
	// receive stamp the engine learns from (prober.go) does not count the
	// time a frame waited in a deferred softirq (ksoftirqd on a busy
	// machine) before it reached the socket; this does (and this process's
	// own delays too).
	seen atomic.Int64
}

// saw records how long an answer took to reach us.
func (p *pacer) saw(d time.Duration) { raise(&p.seen, d) }

func raise(v *atomic.Int64, d time.Duration) {
	for {
		cur := v.Load()
		if int64(d) <= cur || v.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// budget is the current wait.
func (p *pacer) budget() time.Duration {
	if p.fixed {
		return p.floor
	}
	return max(p.floor, 4*time.Duration(p.slowst.Load()))
}

// answered records how long an answer took.
func (p *pacer) answered(d time.Duration) { raise(&p.slowst, d) }

// next returns the read deadline of a wait loop that started at start and
// resends at most once, halfway: the earliest of the end, the pending
// resend, and a short tick so a budget that grew is noticed. done says
// the budget is spent; resendNow that the resend is due.
func (p *pacer) next(ctx context.Context, start time.Time, resent bool) (deadline time.Time, done, resendNow bool) {
	now := time.Now()
	b := p.budget()
	end := start.Add(b)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	if !now.Before(end) || ctx.Err() != nil {
		return end, true, false
	}
	if !resent && !now.Before(start.Add(b/2)) {
		return end, false, true
	}
	deadline = earliest(end, now.Add(25*time.Millisecond))
	if !resent {
		deadline = earliest(deadline, start.Add(b/2))
	}
	return deadline, false, false
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// maxDrain bounds the reads a probe makes after its budget is spent.
const maxDrain = 64

// awaitReply is every probe's send-and-wait loop: send once, read until
// the pacer's budget is spent (sending again once when the pacer says so),
// then drain what is already queued — an answer that arrived in time may
// still sit in the socket when this goroutine was slow to run — with at
// most maxDrain reads, and give up. read reads one frame before deadline
// and says whether it was the answer; os.ErrDeadlineExceeded from read is
// a quiet wait, any other error ends the probe. An answer also tells the
// pacer how long it took.
func awaitReply(ctx context.Context, pace *pacer, send func(resend bool) error, read func(deadline time.Time) (bool, error)) (bool, error) {
	start := time.Now()
	if err := send(false); err != nil {
		return false, err
	}
	resent, last, drained := false, false, 0
	for {
		dl, done, resendNow := pace.next(ctx, start, resent)
		if done {
			if drained++; drained > maxDrain {
				return false, nil
			}
			last, dl = true, time.Now().Add(time.Millisecond)
		} else if resendNow {
			resent = true
			if err := send(true); err != nil {
				return false, err
			}
			continue
		}
		answered, err := read(dl)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if last {
				return false, nil
			}
			continue
		}
		if err != nil {
			return false, err
		}
		if answered {
			pace.answered(time.Since(start))
			return true, nil
		}
	}
}

// probeResult is what one probe from one endpoint to another found.
type probeResult struct {
	Observed Reach
	// Family is the address family probed: 4 or 6 (0: not probed).
	Family int
	// ARP says whether the target answered our ARP request (IPv6: our
	// neighbour solicitation), and with which MAC.
	ARP    bool
	ARPMAC net.HardwareAddr
	// ICMPTried says an echo request was sent; ICMP that a reply came.
	ICMPTried, ICMP bool
	ICMPID          uint16
	Detail          string
	// V6 is the IPv6 probe of a pair probed in both families (this one
	// then is the IPv4 probe).
	V6 *probeResult
}

// firstIPv4 returns an endpoint's first IPv4 address.
func firstIPv4(ep Endpoint) (netip.Addr, bool) {
	for _, p := range ep.Addrs {
		if p.Addr().Is4() {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// firstIPv6 returns an endpoint's first IPv6 address that is not
// link-local (every interface has one of those; the topology's own
// addresses are the ones to probe).
func firstIPv6(ep Endpoint) (netip.Addr, bool) {
	for _, p := range ep.Addrs {
		if a := p.Addr(); a.Is6() && !a.Is4In6() && !a.IsLinkLocalUnicast() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// probePair asks, from inside from's namespace, whether to answers, in
// every address family both have: IPv4 and IPv6 at once when both have
// both (the result is the IPv4 probe with the IPv6 one in V6), so a
// dual-stack pair costs no more time than a single-stack one.
func probePair(ctx context.Context, from, to Endpoint, icmpID uint16, pace *pacer) probeResult {
	src4, ok4 := firstIPv4(from)
	dst4, okd4 := firstIPv4(to)
	src6, ok6 := firstIPv6(from)
	dst6, okd6 := firstIPv6(to)
	has4, has6 := ok4 && okd4, ok6 && okd6
	switch {
	case !has4 && !has6:
		return probeResult{Observed: NotProbed, Detail: fmt.Sprintf("%s (%s) and %s (%s) share no address family to probe in",
			EndpointID(from), families(ok4, ok6), EndpointID(to), families(okd4, okd6))}
	case to.Kind == KindMacvtap:
		return probeResult{Observed: NotProbed, Detail: fmt.Sprintf("%s is a macvtap: its frames go to the tap queue (a VM), not to a stack that could answer", EndpointID(to))}
	case !has6:
		return probeFamily(ctx, from, to, src4, dst4, icmpID, pace)
	case !has4:
		return probeFamily(ctx, from, to, src6, dst6, icmpID, pace)
	}
	var r6 probeResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		r6 = probeFamily(ctx, from, to, src6, dst6, icmpID, pace)
	}()
	r := probeFamily(ctx, from, to, src4, dst4, icmpID, pace)
	<-done
	r.V6 = &r6
	return r
}

func families(v4, v6 bool) string {
	switch {
	case v4 && v6:
		return "IPv4 and IPv6"
	case v4:
		return "IPv4 only"
	case v6:
		return "IPv6 only"
	}
	return "no address"
}

// probeFamily probes one family the way the engine (prober.go) does not:
// for a sender whose interface is a parent of other links (the host stack
// on the parent, a VLAN that is a lower), where a packet socket also sees
// the frames the macvlan rx_handler takes away from the stack after the
// taps, and for L3 ipvlan ends. An ARP request through mdlayher/arp
// (IPv6: a neighbour solicitation) on from's interface, from our own
// packet socket so the kernel's neighbour cache neither helps nor hides
// anything; then, when it was answered, one ICMP echo through the
// kernel's stack (which resolves the neighbour itself, exercising the same
// paths again). A probe waits for each answer as long as pace says; a
// missing answer is Blocked.
func probeFamily(ctx context.Context, from, to Endpoint, src, dst netip.Addr, icmpID uint16, pace *pacer) probeResult {
	r := probeResult{ICMPID: icmpID, Family: 4}
	resolve, what := arpProbe, "ARP"
	if src.Is6() {
		r.Family, resolve, what = 6, ndpProbe, "neighbour advertisement"
	}
	if noARP(from) || noARP(to) {
		// An L3 ipvlan has IFF_NOARP: it neither asks nor answers ARP
		// (nor NDP), so the echo through the kernel's routing is the
		// whole probe.
		err := netns.DoIn(from.NetNS, func() error {
			r.ICMPTried = true
			got, err := echoProbe(ctx, from.Interface, src, dst, icmpID, pace)
			if err != nil {
				return err
			}
			r.ICMP = got
			if got {
				r.Observed, r.Detail = Reachable, fmt.Sprintf("echo reply from %s (no neighbour resolution: an L3 ipvlan end)", dst)
			} else {
				r.Observed, r.Detail = Blocked, fmt.Sprintf("no echo reply from %s within %v (no neighbour resolution: an L3 ipvlan end)", dst, pace.budget().Round(time.Millisecond))
			}
			return nil
		})
		if err != nil {
			r.Observed, r.Detail = ProbeError, err.Error()
		}
		return r
	}
	err := netns.DoIn(from.NetNS, func() error {
		mac, err := resolve(ctx, from.Interface, src, dst, pace)
		if err != nil {
			return err
		}
		if mac == nil {
			r.Observed, r.Detail = Blocked, fmt.Sprintf("no %s reply from %s within %v", what, dst, pace.budget().Round(time.Millisecond))
			return nil
		}
		r.ARP, r.ARPMAC = true, mac
		if from.Kind == KindMacvtap {
			// The macvtap's own stack never receives: its frames go to the
			// tap queue. Resolution from our packet socket is the whole
			// probe.
			r.Observed, r.Detail = Reachable, fmt.Sprintf("%s reply from %s (%s)", what, dst, mac)
			return nil
		}
		r.ICMPTried = true
		got, err := echoProbe(ctx, from.Interface, src, dst, icmpID, pace)
		if err != nil {
			return err
		}
		r.ICMP = got
		if got {
			r.Observed, r.Detail = Reachable, fmt.Sprintf("%s reply from %s (%s), echo reply", what, dst, mac)
		} else {
			r.Observed, r.Detail = Blocked, fmt.Sprintf("%s reply from %s (%s) but no echo reply within %v", what, dst, mac, pace.budget().Round(time.Millisecond))
		}
		return nil
	})
	if err != nil {
		r.Observed, r.Detail = ProbeError, err.Error()
	}
	return r
}

// noARP reports whether an endpoint's interface has IFF_NOARP: an ipvlan
// in L3 or L3S mode (ipvlan_set_port_mode sets the flag; L3 is the
// kernel's default mode).
func noARP(ep Endpoint) bool {
	if ep.Kind != KindIPVlan {
		return false
	}
	m, err := endpointModes(ep)
	return err == nil && m.ipvlan != rtnl.IPVlanModeL2
}

// listenRaw opens a raw packet socket for ethertype proto on the interface
// named ifname, in the calling thread's namespace.
func listenRaw(ifname string, proto int) (*net.Interface, *packet.Conn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, nil, fmt.Errorf("find %s: %w", ifname, err)
	}
	c, err := packet.Listen(ifi, packet.Raw, proto, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("open packet socket on %s: %w", ifname, err)
	}
	return ifi, c, nil
}

// arpProbe sends an ARP request for dst from ifname (with source address
// src) and returns the MAC that answered, or nil when nobody did within the
// pacer's budget. The request is repeated once halfway, in case the first
// was lost.
func arpProbe(ctx context.Context, ifname string, src, dst netip.Addr, pace *pacer) (net.HardwareAddr, error) {
	ifi, pc, err := listenRaw(ifname, unix.ETH_P_ARP)
	if err != nil {
		return nil, fmt.Errorf("arp probe: %w", err)
	}
	c, err := arp.New(ifi, pc)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("arp probe on %s: %w", ifname, err)
	}
	defer c.Close()
	req, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, src, ethernetBroadcast, dst)
	if err != nil {
		return nil, fmt.Errorf("arp probe: build request for %s: %w", dst, err)
	}
	send := func(resend bool) error {
		if err := c.WriteTo(req, ethernetBroadcast); err != nil {
			what := "send"
			if resend {
				what = "resend"
			}
			return fmt.Errorf("arp probe: %s request for %s on %s: %w", what, dst, ifname, err)
		}
		return nil
	}
	var answer net.HardwareAddr
	read := func(dl time.Time) (bool, error) {
		if err := c.SetReadDeadline(dl); err != nil {
			return false, fmt.Errorf("arp probe: set deadline: %w", err)
		}
		p, _, err := c.Read()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return false, err
			}
			var ne net.Error
			if errors.As(err, &ne) {
				return false, fmt.Errorf("arp probe: read on %s: %w", ifname, err)
			}
			return false, nil // a frame that is not Ethernet/IPv4 ARP is not ours
		}
		if p.Operation == arp.OperationReply && p.SenderIP == dst && p.TargetIP == src {
			answer = p.SenderHardwareAddr
			return true, nil
		}
		return false, nil
	}
	if _, err := awaitReply(ctx, pace, send, read); err != nil {
		return nil, err
	}
	return answer, nil
}

var ethernetBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ndpProbe is arpProbe for IPv6: a neighbour solicitation for dst from
// ifname (source address src, with our MAC as the source link-layer
// option) to dst's solicited-node multicast group, from our own packet
// socket; it returns the MAC of the neighbour advertisement for dst, or
// nil when none came within the pacer's budget (resent once halfway).
func ndpProbe(ctx context.Context, ifname string, src, dst netip.Addr, pace *pacer) (net.HardwareAddr, error) {
	ifi, c, err := listenRaw(ifname, unix.ETH_P_IPV6)
	if err != nil {
		return nil, fmt.Errorf("ndp probe: %w", err)
	}
	defer c.Close()
	frame, group := neighborSolicitation(ifi.HardwareAddr, src, dst)
	send := func(bool) error {
		if _, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: group}); err != nil {
			return fmt.Errorf("ndp probe: send solicitation for %s on %s: %w", dst, ifname, err)
		}
		return nil
	}
	buf := make([]byte, 2048)
	var answer net.HardwareAddr
	read := func(dl time.Time) (bool, error) {
		if err := c.SetReadDeadline(dl); err != nil {
			return false, fmt.Errorf("ndp probe: set deadline: %w", err)
		}
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return false, err
			}
			return false, fmt.Errorf("ndp probe: read on %s: %w", ifname, err)
		}
		answer = neighborAdvertisementFor(buf[:n], dst)
		return answer != nil, nil
	}
	if _, err := awaitReply(ctx, pace, send, read); err != nil {
		return nil, err
	}
	return answer, nil
}

// neighborSolicitation builds the Ethernet frame of a neighbour
// solicitation (RFC 4861 4.3) for target from src with our MAC, and the
// multicast MAC it goes to.
func neighborSolicitation(mac net.HardwareAddr, src, target netip.Addr) (frame []byte, group net.HardwareAddr) {
	t := target.As16()
	var dst [16]byte // ff02::1:ffXX:XXXX, the solicited-node group
	dst[0], dst[1], dst[11], dst[12] = 0xff, 0x02, 0x01, 0xff
	copy(dst[13:], t[13:])
	group = net.HardwareAddr{0x33, 0x33, 0xff, t[13], t[14], t[15]}

	msg := make([]byte, 0, 32)
	msg = append(msg, 135, 0, 0, 0, 0, 0, 0, 0) // type, code, checksum, reserved
	msg = append(msg, t[:]...)
	msg = append(msg, 1, 1) // source link-layer address option, 8 bytes
	msg = append(msg, mac[:6]...)
	s := src.As16()
	binary.BigEndian.PutUint16(msg[2:], ndp.Checksum(s, dst, msg))

	frame = make([]byte, 0, 14+40+len(msg))
	frame = append(frame, group...)
	frame = append(frame, mac[:6]...)
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_IPV6)
	frame = append(frame, 0x60, 0, 0, 0) // version 6, traffic class 0, flow 0
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(msg)))
	frame = append(frame, 58, 255) // next header ICMPv6, hop limit 255 (RFC 4861)
	frame = append(frame, s[:]...)
	frame = append(frame, dst[:]...)
	return append(frame, msg...), group
}

// neighborAdvertisementFor returns the sender MAC of an Ethernet frame
// that is a neighbour advertisement for target, or nil.
func neighborAdvertisementFor(f []byte, target netip.Addr) net.HardwareAddr {
	const eth, ip6 = 14, 40
	if len(f) < eth+ip6+24 || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_IPV6 || f[eth+6] != 58 || f[eth+ip6] != 136 {
		return nil
	}
	if netip.AddrFrom16([16]byte(f[eth+ip6+8:eth+ip6+24])) != target {
		return nil
	}
	return net.HardwareAddr(append([]byte(nil), f[6:12]...))
}

// echoMagic starts the payload of our echo requests, so a capture can tell
// them from anybody else's.
var echoMagic = []byte("vmlink-verify")

// echoProbe sends one ICMP echo request from src (bound to ifname, so the
// kernel's routing cannot pick another interface of the namespace) to dst
// and waits, as long as pace says, for the reply with the same identifier.
func echoProbe(ctx context.Context, ifname string, src, dst netip.Addr, id uint16, pace *pacer) (bool, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
		}); err != nil {
			return err
		}
		return serr
	}}
	network, proto := "ip4:icmp", 1
	var echoReq, echoRep icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		// The kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets.
		network, proto = "ip6:ipv6-icmp", 58
		echoReq, echoRep = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	conn, err := lc.ListenPacket(ctx, network, src.String())
	if err != nil {
		if errors.Is(err, unix.EADDRNOTAVAIL) && src.Is6() {
			return false, fmt.Errorf("icmp probe: %s on %s is not usable yet (tentative: duplicate address detection still running, or it failed): %w", src, ifname, err)
		}
		return false, fmt.Errorf("icmp probe: open raw socket on %s (%s): %w", ifname, src, err)
	}
	defer conn.Close()
	payload := binary.BigEndian.AppendUint16(append([]byte(nil), echoMagic...), id)
	send := func(seq int) error {
		msg := icmp.Message{Type: echoReq, Body: &icmp.Echo{ID: int(id), Seq: seq, Data: payload}}
		b, err := msg.Marshal(nil)
		if err != nil {
			return fmt.Errorf("icmp probe: build echo: %w", err)
		}
		if _, err := conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			// EHOSTUNREACH comes back when the kernel gave up resolving
			// the neighbour: an unanswered probe, not a broken one.
			if errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH) {
				return nil
			}
			return fmt.Errorf("icmp probe: send echo to %s: %w", dst, err)
		}
		return nil
	}
	// One echo (sequence 1, the one the wire check counts); a second
	// (sequence 2) halfway if the first went unanswered, in case the first
	// waited in the kernel's neighbour queue behind a lost ARP exchange.
	sendSeq := func(resend bool) error {
		if resend {
			return send(2)
		}
		return send(1)
	}
	buf := make([]byte, 1500)
	read := func(dl time.Time) (bool, error) {
		if err := conn.SetReadDeadline(dl); err != nil {
			return false, fmt.Errorf("icmp probe: set deadline: %w", err)
		}
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return false, err
			}
			if errors.Is(err, unix.EHOSTUNREACH) {
				return false, nil
			}
			return false, fmt.Errorf("icmp probe: read on %s: %w", ifname, err)
		}
		ip, ok := peer.(*net.IPAddr)
		if !ok || !ip.IP.Equal(dst.AsSlice()) {
			return false, nil
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != echoRep {
			return false, nil
		}
		e, ok := m.Body.(*icmp.Echo)
		return ok && e.ID == int(id) && bytes.HasPrefix(e.Data, echoMagic), nil
	}
	return awaitReply(ctx, pace, sendSeq, read)
}

// reflectEtherType is IEEE's "local experimental" ethertype: no stack
// handles it, so the reflection probe reaches nobody's protocol handlers.
const reflectEtherType = 0x88b5

// spareMAC returns a random locally administered unicast MAC that no
// interface of a topology uses, for the reflection probe.
func spareMAC() capture.MAC {
	var m capture.MAC
	_, _ = rand.Read(m[:])
	m[0] = 0x02 // locally administered, unicast
	m[1] = 0x76 // "v"
	return m
}

// reflection is what the reflection probe found.
type reflection struct {
	Reflects bool
	RTT      time.Duration
	MAC      capture.MAC
	Detail   string
}

// detectReflection sends a broadcast frame of the local experimental
// ethertype from a spare MAC out of the parent and waits up to wait for it
// to come back in. Only a switch that sends frames back out of the port they
// came in on (hairpin, reflective relay) returns it: the parent never
// receives its own transmissions otherwise. Broadcast rather than unicast,
// so that a real NIC's address filter does not drop the returning copy.
func detectReflection(ctx context.Context, ns, parent string, wait time.Duration) (reflection, error) {
	r := reflection{MAC: spareMAC()}
	err := netns.DoIn(ns, func() error {
		_, c, err := listenRaw(parent, reflectEtherType)
		if err != nil {
			return err
		}
		defer c.Close()
		var nonce [8]byte
		_, _ = rand.Read(nonce[:])
		frame := make([]byte, 0, 60)
		frame = append(frame, ethernetBroadcast...)
		frame = append(frame, r.MAC[:]...)
		frame = binary.BigEndian.AppendUint16(frame, reflectEtherType)
		frame = append(frame, echoMagic...)
		frame = append(frame, nonce[:]...)
		for len(frame) < 60 {
			frame = append(frame, 0)
		}
		end := time.Now().Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(end) {
			end = d
		}
		buf := make([]byte, 2048)
		for attempt := 0; attempt < 2; attempt++ {
			sent := time.Now()
			if _, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: ethernetBroadcast}); err != nil {
				return fmt.Errorf("send reflection probe on %s: %w", parent, err)
			}
			// The first attempt gets half the budget; a lost frame gets
			// a second chance.
			dl := end
			if attempt == 0 {
				dl = sent.Add(time.Until(end) / 2)
			}
			if err := c.SetReadDeadline(dl); err != nil {
				return fmt.Errorf("set deadline: %w", err)
			}
			for {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						break
					}
					return fmt.Errorf("read reflection probe on %s: %w", parent, err)
				}
				if n >= 14+len(echoMagic)+8 && bytes.Equal(buf[6:12], r.MAC[:]) && bytes.Equal(buf[14+len(echoMagic):14+len(echoMagic)+8], nonce[:]) {
					r.Reflects, r.RTT = true, time.Since(sent)
					r.Detail = fmt.Sprintf("a frame from %s left %s and came back after %v", r.MAC, parent, r.RTT.Round(time.Microsecond))
					return nil
				}
			}
		}
		r.Detail = fmt.Sprintf("a frame from %s left %s twice and did not come back within %v", r.MAC, parent, wait)
		return nil
	})
	return r, err
}
