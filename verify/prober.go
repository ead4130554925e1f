package verify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/packet"
)

// The probing engine.
//
// Every pair is probed from its From endpoint's own packet socket: one
// socket per endpoint, opened once inside its namespace, sends the ARP
// request (IPv6: neighbour solicitation) and then the ICMP echo request as
// whole Ethernet frames, and one goroutine per socket reads the answers
// and hands each to the probe it belongs to. The target's kernel answers
// both through its own stack.
//
// Why not the kernel's own echo from the sender (a raw ICMP socket per
// probe, as before): every kernel-sent echo needs a neighbour entry on
// both sides, and the kernel's neighbour table is one table for the whole
// machine, every namespace included, capped at
// net.ipv4.neigh.default.gc_thresh3 (1024 by default) fresh entries: an
// entry younger than 5 s cannot be reclaimed (neigh_forced_gc). 40
// endpoints on a parent are 1,640 ordered pairs and as many entries;
// beyond the cap neigh_create fails ("neighbor table overflow!",
// /proc/net/stat/arp_cache table_fulls), the target's ARP code then does
// not even answer (arp_process replies only when neigh_event_ns
// succeeded) and its echo replies are dropped, so a third of a 40-endpoint
// parent was reported blocked. Our own frames need no entry on the sender;
// the target's one entry per pair (created by our ARP request, used by its
// echo reply) is deleted as soon as the pair is judged unless it was there
// before the run, and the pairs in flight are bounded by the room left in
// the table (neighBudget). The host's, VLANs' and ipvlans' own pairs still
// go through the kernel (probeFamily): a packet socket on a parent sees
// frames the macvlan rx_handler then keeps from its stack, and an ipvlan
// forwards a packet socket's frames along another path than its stack's. A run that still saw
// the table overflow, a socket drop frames, or answers arrive later than
// its wait, probes its unanswered pairs again before calling
// them blocked.

// probeStage is where one family's probe of a pair is.
type probeStage uint8

const (
	stageResolve probeStage = iota + 1 // ARP / neighbour solicitation sent
	stageEcho                          // echo request sent
	stageDone
)

// attempts is how often a stage sends its request before the probe is
// judged: at 0, 1/3 and 2/3 of the wait.
const attempts = 3

// famProbe is one address family's probe of one ordered pair.
type famProbe struct {
	pair     int
	src, dst netip.Addr
	res      *probeResult
	stage    probeStage
	sent     int       // requests sent in this stage
	start    time.Time // when this stage began
	mac      net.HardwareAddr
	key      replyKey
	token    bool // holds a neighbour-budget token
	// seq0 offsets the echo sequence numbers: a pair probed again after
	// its echo went out once counts on from the first pass, so the wire
	// check's sequence 1 stays the first pass's.
	seq0 int
	// unicast is where an ARP request goes when the broadcast phase
	// listened on the target's interface, and heard whether the sender's
	// broadcasts reach it; nil: broadcast.
	unicast net.HardwareAddr
	heard   bool
	// resolveOnly: the sender is a macvtap (its stack never receives),
	// so resolution is the whole probe.
	resolveOnly bool
}

// replyKey tells which probe an answer is for.
type replyKey struct {
	kind uint8 // 1 ARP, 2 NA, 3 echo reply v4, 4 echo reply v6
	peer netip.Addr
	id   uint16
}

// probeSender is one endpoint's probe socket and the probes it runs.
type probeSender struct {
	ep     Endpoint
	index  int    // in exp.Endpoints
	oob    []byte // control messages of one read
	ifi    *net.Interface
	conn   *packet.Conn
	probes []*famProbe
}

// engine runs every probe of one Run.
type engine struct {
	exp     *Expectation
	pace    *pacer
	base    uint16
	budget  *tokens
	results []probeResult
	neigh   *neighCleaner
	// perSender caps one endpoint's probes in flight.
	perSender int
	// heard[to][from] says that a broadcast from endpoint from reached
	// endpoint to's interface (see broadcasts); a pair's ARP request then
	// goes unicast.
	heard map[int]map[int]bool
	macs  map[int]net.HardwareAddr // endpoints' interface MACs, by index
}

// tokens is a counting semaphore that is only ever tried, never waited
// on: a sender's loop must keep reading while it has no token.
type tokens struct {
	mu   sync.Mutex
	free int
}

func (t *tokens) try() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.free <= 0 {
		return false
	}
	t.free--
	return true
}

func (t *tokens) put() {
	t.mu.Lock()
	t.free++
	t.mu.Unlock()
}

// newEchoBase is a run's first echo identifier: random, so two runs (or
// someone's ping) do not mistake each other's replies; pair i uses base+i.
func newEchoBase() uint16 { return uint16(rand.IntN(1 << 15)) }

// probeAll probes the pairs idx of exp (all when idx is nil), at most
// parallel in flight (0: as the neighbour tables allow), and writes each
// result to results[i]; a pair probed again finds its last result there.
// It reports whether the evidence of an unanswered probe is in doubt: the
// neighbour table overflowed, or a probe socket dropped frames, meanwhile.
func probeAll(ctx context.Context, exp *Expectation, pace *pacer, parallel int, base uint16, results []probeResult, idx []int) (doubt string) {
	if idx == nil {
		idx = make([]int, len(exp.Pairs))
		for i := range idx {
			idx[i] = i
		}
	}
	budget := neighBudget()
	if parallel > 0 {
		budget = min(budget, parallel)
	}
	e := &engine{exp: exp, pace: pace, base: base, budget: &tokens{free: budget},
		results: results, perSender: max(8, budget/2)}
	fulls0, canSee := neighOverflows()
	e.neigh = newNeighCleaner(ctx, exp)
	defer func() {
		e.neigh.close(ctx)
		if fulls, _ := neighOverflows(); canSee && fulls > fulls0 && doubt == "" {
			doubt = fmt.Sprintf("the kernel's neighbour table refused %d new entries (neighbor table overflow) during the probes", fulls-fulls0)
		}
	}()

	senders, legacy := e.assign(idx)
	openSenders(senders)
	e.broadcasts(ctx, senders)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		dropped []string
	)
	for _, s := range senders {
		if s.conn == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.conn.Close()
			e.run(ctx, s)
			if st, err := s.conn.Stats(); err == nil && st.Drops > 0 {
				mu.Lock()
				dropped = append(dropped, fmt.Sprintf("%s (%d)", EndpointID(s.ep), st.Drops))
				mu.Unlock()
			}
		}()
	}
	e.probeStacks(ctx, &wg, legacy, budget)
	wg.Wait()
	if len(dropped) > 0 {
		doubt = "probe sockets dropped frames: " + strings.Join(dropped, ", ")
	}
	return doubt
}

// assign splits the pairs idx between the two ways of probing: most go to
// their sender's packet socket (senders, by endpoint index, each with its
// probes; the targets get a socket too, to listen in the broadcast
// phase), the rest (legacy) through the kernel's stack, see probeStacks.
// A pair with nothing to probe gets its result right away.
func (e *engine) assign(idx []int) (senders map[int]*probeSender, legacy []int) {
	exp := e.exp
	senders = map[int]*probeSender{}
	for _, i := range idx {
		p := exp.Pairs[i]
		from, to := exp.Endpoints[p.From], exp.Endpoints[p.To]
		if noARP(from) || noARP(to) || from.Kind == KindHost || from.Kind == KindVLAN || from.Kind == KindIPVlan {
			legacy = append(legacy, i)
			continue
		}
		fps, r := e.plan(i, from, to)
		if len(fps) == 0 {
			e.results[i] = r
			continue
		}
		for _, k := range []int{p.From, p.To} {
			if senders[k] == nil {
				senders[k] = &probeSender{ep: exp.Endpoints[k], index: k}
			}
		}
		senders[p.From].probes = append(senders[p.From].probes, fps...)
	}
	return senders, legacy
}

// openSenders opens every sender's socket; a sender whose socket cannot be
// opened fails its probes with the reason.
func openSenders(senders map[int]*probeSender) {
	for _, s := range senders {
		if err := s.open(); err != nil {
			for _, fp := range s.probes {
				fp.res.Observed, fp.res.Detail = ProbeError, err.Error()
			}
			s.probes = nil
		}
	}
}

// probeStacks starts the pairs probeFamily probes through the kernel's
// stack, in wg: one goroutine (and OS thread) per pair, at most budget at
// once. Only the host's, VLANs' and ipvlans' pairs and L3 ipvlan ends go
// here: an ipvlan's own frames from a packet socket take another path
// than its stack's (6.1 forwards them to the parent instead of the
// sibling), so they would not show what the stack does.
func (e *engine) probeStacks(ctx context.Context, wg *sync.WaitGroup, pairs []int, budget int) {
	sem := make(chan struct{}, max(1, budget))
	for _, i := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				e.results[i] = probeResult{Observed: ProbeError, Detail: ctx.Err().Error()}
				return
			}
			defer func() { <-sem }()
			p := e.exp.Pairs[i]
			e.results[i] = probePair(ctx, e.exp.Endpoints[p.From], e.exp.Endpoints[p.To], e.base+uint16(i), e.pace)
		}()
	}
}

// plan sets up pair i's result and the family probes it needs.
func (e *engine) plan(i int, from, to Endpoint) ([]*famProbe, probeResult) {
	src4, ok4 := firstIPv4(from)
	dst4, okd4 := firstIPv4(to)
	src6, ok6 := firstIPv6(from)
	dst6, okd6 := firstIPv6(to)
	has4, has6 := ok4 && okd4, ok6 && okd6
	id := e.base + uint16(i)
	switch {
	case !has4 && !has6:
		return nil, probeResult{Observed: NotProbed, Detail: fmt.Sprintf("%s (%s) and %s (%s) share no address family to probe in",
			EndpointID(from), families(ok4, ok6), EndpointID(to), families(okd4, okd6))}
	case to.Kind == KindMacvtap:
		return nil, probeResult{Observed: NotProbed, Detail: fmt.Sprintf("%s is a macvtap: its frames go to the tap queue (a VM), not to a stack that could answer", EndpointID(to))}
	}
	prev := e.results[i]
	e.results[i] = probeResult{ICMPID: id}
	res := &e.results[i]
	var fps []*famProbe
	add := func(res *probeResult, src, dst netip.Addr) {
		res.ICMPID = id
		res.Family = 4
		if src.Is6() {
			res.Family = 6
		}
		fp := &famProbe{pair: i, src: src, dst: dst, res: res, resolveOnly: from.Kind == KindMacvtap}
		for _, p := range []*probeResult{&prev, prev.V6} {
			if p != nil && p.Family == res.Family && p.ICMPTried {
				fp.seq0 = attempts
			}
		}
		fps = append(fps, fp)
	}
	switch {
	case has4 && has6:
		res.V6 = &probeResult{}
		add(res, src4, dst4)
		add(res.V6, src6, dst6)
	case has4:
		add(res, src4, dst4)
	default:
		add(res, src6, dst6)
	}
	return fps, probeResult{}
}

// tick bounds a sender's read while it waits for a token.
const tick = 5 * time.Millisecond

// run is one sender's loop: start probes while tokens allow, send and
// resend their requests, read answers, and judge a stage unanswered only
// after a read found the socket empty past the stage's end, so an answer
// that arrived in time but waited for this goroutine still counts.
func (e *engine) run(ctx context.Context, s *probeSender) {
	active := map[replyKey]*famProbe{}
	queue := s.probes
	buf := make([]byte, 2048)
	for len(queue) > 0 || len(active) > 0 {
		if ctx.Err() != nil {
			for _, fp := range append(queue, mapValues(active)...) {
				fp.res.Observed, fp.res.Detail = ProbeError, ctx.Err().Error()
				e.release(fp)
			}
			return
		}
		// Start what the budget allows; a probe whose key another active
		// probe holds (two targets sharing an address) waits its turn.
		for i := 0; i < len(queue) && len(active) < e.perSender; {
			fp := queue[i]
			k := replyKey{kind: resolveKind(fp.dst), peer: fp.dst}
			if _, busy := active[k]; busy {
				i++
				continue
			}
			if !e.budget.try() {
				break
			}
			fp.token = true
			queue = append(queue[:i:i], queue[i+1:]...)
			e.chooseUnicast(s, fp)
			fp.stage, fp.key, fp.start, fp.sent = stageResolve, k, time.Now(), 0
			active[k] = fp
			if err := e.send(s, fp); err != nil {
				e.finish(active, fp, ProbeError, err.Error())
			}
		}
		// Resends that are due; the earliest next event.
		now := time.Now()
		b := e.pace.budget()
		next := now.Add(time.Second)
		if len(queue) > 0 {
			next = now.Add(tick)
		}
		for _, fp := range active {
			if fp.sent < attempts {
				due := fp.start.Add(time.Duration(fp.sent) * b / attempts)
				if !now.Before(due) {
					if err := e.send(s, fp); err != nil {
						e.finish(active, fp, ProbeError, err.Error())
						continue
					}
					due = fp.start.Add(time.Duration(fp.sent) * b / attempts)
					if fp.sent == attempts {
						due = fp.start.Add(b)
					}
				}
				next = earliest(next, due)
			} else {
				next = earliest(next, fp.start.Add(b))
			}
		}
		if d, ok := ctx.Deadline(); ok {
			next = earliest(next, d)
		}
		_ = s.conn.SetReadDeadline(next)
		n, at, err := s.read(buf)
		switch {
		case err == nil:
			e.answer(s, active, buf[:n], at)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Go reports an expired deadline without looking at the
			// socket: read what is queued first, then every stage past
			// its end with no answer is unanswered.
			now := time.Now()
			for {
				n, at, ok := s.drainOne(buf)
				if !ok {
					break
				}
				e.answer(s, active, buf[:n], at)
			}
			b := e.pace.budget()
			for _, fp := range active {
				if fp.sent >= attempts && !now.Before(fp.start.Add(b)) {
					e.unanswered(active, fp, b)
				}
			}
		default:
			for _, fp := range mapValues(active) {
				e.finish(active, fp, ProbeError, fmt.Sprintf("read on %s: %v", EndpointID(s.ep), err))
			}
		}
	}
}

func mapValues(m map[replyKey]*famProbe) []*famProbe {
	out := make([]*famProbe, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func resolveKind(dst netip.Addr) uint8 {
	if dst.Is6() {
		return 2
	}
	return 1
}

// send sends fp's current request once more.
func (e *engine) send(s *probeSender, fp *famProbe) error {
	var frame []byte
	to := ethernetBroadcast
	switch fp.stage {
	case stageResolve:
		if fp.dst.Is6() {
			frame, to = neighborSolicitation(s.ifi.HardwareAddr, fp.src, fp.dst)
		} else {
			frame = arpRequestFrame(s.ifi.HardwareAddr, fp.src, fp.dst)
			if fp.unicast != nil {
				copy(frame[0:6], fp.unicast)
				to = fp.unicast
			}
		}
	case stageEcho:
		frame, to = echoRequest(s.ifi.HardwareAddr, fp.mac, fp.src, fp.dst, fp.res.ICMPID, fp.seq0+fp.sent+1), fp.mac
	}
	fp.sent++
	if _, err := s.conn.WriteTo(frame, &packet.Addr{HardwareAddr: to}); err != nil {
		return fmt.Errorf("probe from %s: send to %s: %w", EndpointID(s.ep), fp.dst, err)
	}
	return nil
}

// answer hands one received frame to the probe it answers, if any.
// at is when the kernel received the frame: the wait the pacer learns
// from is the network's and the targets' time, not how late this
// goroutine got to the socket (a late read is harmless: a stage is judged
// only after the socket is drained).
func (e *engine) answer(s *probeSender, active map[replyKey]*famProbe, f []byte, at time.Time) {
	k, mac, ok := parseReply(f)
	if !ok {
		return
	}
	fp := active[k]
	if fp == nil {
		return
	}
	if k.kind <= 2 && !fp.src.IsValid() {
		return
	}
	if k.kind == 1 && !arpTargetIs(f, fp.src) {
		return
	}
	if at.IsZero() {
		at = time.Now()
	}
	e.pace.answered(max(0, at.Sub(fp.start)))
	e.pace.saw(time.Since(fp.start))
	what := "ARP"
	if fp.dst.Is6() {
		what = "neighbour advertisement"
	}
	switch fp.stage {
	case stageResolve:
		if fp.unicast != nil && !fp.heard {
			// Unicast passes, and the broadcast phase did not hear the
			// sender's broadcasts there (lost, late, or they do not
			// pass): ask again the way ARP does, broadcast.
			fp.unicast, fp.start, fp.sent = nil, time.Now(), 0
			if err := e.send(s, fp); err != nil {
				e.finish(active, fp, ProbeError, err.Error())
			}
			return
		}
		fp.res.ARP, fp.res.ARPMAC = true, mac
		if fp.resolveOnly {
			// The macvtap's own stack never receives: its frames go to
			// the tap queue. Resolution is the whole probe.
			e.finish(active, fp, Reachable, fmt.Sprintf("%s reply from %s (%s)", what, fp.dst, mac))
			return
		}
		delete(active, fp.key)
		fp.mac, fp.stage, fp.start, fp.sent = mac, stageEcho, time.Now(), 0
		fp.key = replyKey{kind: 3, peer: fp.dst, id: fp.res.ICMPID}
		if fp.dst.Is6() {
			fp.key.kind = 4
		}
		active[fp.key] = fp
		fp.res.ICMPTried = true
		if err := e.send(s, fp); err != nil {
			e.finish(active, fp, ProbeError, err.Error())
		}
	case stageEcho:
		fp.res.ICMP = true
		e.finish(active, fp, Reachable, fmt.Sprintf("%s reply from %s (%s), echo reply", what, fp.dst, fp.mac))
	}
}

// unanswered judges a stage that got no answer within b.
func (e *engine) unanswered(active map[replyKey]*famProbe, fp *famProbe, b time.Duration) {
	what := "ARP"
	if fp.dst.Is6() {
		what = "neighbour advertisement"
	}
	if fp.stage == stageResolve {
		e.finish(active, fp, Blocked, fmt.Sprintf("no %s reply from %s within %v (%d requests)", what, fp.dst, b.Round(time.Millisecond), attempts))
		return
	}
	e.finish(active, fp, Blocked, fmt.Sprintf("%s reply from %s (%s) but no echo reply within %v (%d requests)", what, fp.dst, fp.mac, b.Round(time.Millisecond), attempts))
}

// finish records fp's verdict, deletes the neighbour entry its target
// made for us, and frees its token.
func (e *engine) finish(active map[replyKey]*famProbe, fp *famProbe, r Reach, detail string) {
	delete(active, fp.key)
	fp.stage = stageDone
	fp.res.Observed, fp.res.Detail = r, detail
	p := e.exp.Pairs[fp.pair]
	if fp.res.ARP {
		// Our request made the target's kernel create (or refresh) an
		// entry for our address; the token comes back once it is gone.
		e.neigh.forget(e.exp.Endpoints[p.To], fp.src, func() { e.release(fp) })
		return
	}
	e.release(fp)
}

func (e *engine) release(fp *famProbe) {
	if fp.token {
		fp.token = false
		e.budget.put()
	}
}

// chooseUnicast sends fp's ARP requests unicast to the target's MAC when
// the broadcast phase listened on the target's interface; fp.heard then
// says whether the sender's broadcasts get there.
func (e *engine) chooseUnicast(s *probeSender, fp *famProbe) {
	p := e.exp.Pairs[fp.pair]
	to := e.exp.Endpoints[p.To]
	h, listened := e.heard[p.To]
	// Only a leaf link's socket hears what its stack gets: on a parent (the
	// host, a VLAN that is a lower) the taps run before the macvlan
	// rx_handler, which may keep a frame from the stack.
	if fp.dst.Is6() || !listened || to.Kind != KindMacvlan {
		return
	}
	// A frame to the target's MAC reaches it only on the target's own
	// segment; across VLANs the answer comes from another interface of
	// its namespace (arp_ignore 0), which only a broadcast reaches.
	if !slices.Equal(e.exp.Endpoints[p.From].VLANs, to.VLANs) {
		return
	}
	if mac := e.macs[p.To]; len(mac) == 6 {
		fp.unicast, fp.heard = mac, h[s.index]
	}
}
