package verify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify/capture"
)

// ErrEnvironment marks a failure of the environment rather than of the
// topology: no privileges, a parent or namespace that does not exist. The
// CLI exits 3 for it.
var ErrEnvironment = errors.New("the environment prevents the check")

// ErrNoPair marks a run refused because its topology has no ordered pair
// to probe (one endpoint and a parent without an address). It comes with
// ErrEnvironment: a verifier that probed nothing never passes.
var ErrNoPair = errors.New("no pair to probe")

// ErrTopology marks a topology that cannot be judged as given (a missing
// name, an unknown kind). The CLI exits 2 for it.
var ErrTopology = errors.New("invalid topology")

// Options tune Run. The zero value is ready to use.
type Options struct {
	// Wait is how long a probe waits for each answer (three requests,
	// a third of it apart) before it counts as blocked, exactly. 0 derives
	// a least wait from the switch round trip the reflection probe
	// measured (20 round trips, within 150 ms to 1 s), or 250 ms when
	// nothing came back to measure, that grows to four times the slowest
	// answer of the run (see pacer), and probes unanswered pairs again
	// when answers reached us later than that.
	Wait time.Duration
	// ReflectWait bounds the reflection probe; 0 means 200 ms.
	ReflectWait time.Duration
	// Parallel caps the pairs in flight at once; 0 means as many as the
	// kernel's neighbour tables have room for (half the room left below
	// gc_thresh3, 16 to 512): each pair in flight holds one entry in its
	// target's table until it is judged.
	Parallel int
	// NoCapture skips the capture on the parent and so the wire checks
	// (VLAN tags, MAC sources, wire evidence).
	NoCapture bool
	// OnFrame, when set, is called with every frame captured on the
	// parent (a copy that stays valid), e.g. to write a pcapng.
	OnFrame func(*capture.Frame)
	// MinPairs, when positive, adds the check pairs-probed: it fails a
	// run that probed fewer ordered pairs (a CI guard against a topology
	// that silently shrank).
	MinPairs int
}

// Validate checks a topology before anything touches the system.
func (t Topology) Validate() error {
	if t.Parent.Name == "" {
		return fmt.Errorf("%w: Parent.Name is empty: name the interface the endpoints sit on", ErrTopology)
	}
	seen := map[string]bool{}
	for i, ep := range WithHost(t) {
		if ep.Interface == "" {
			return fmt.Errorf("%w: endpoint %d (%q) has no Interface: name its interface", ErrTopology, i, ep.Name)
		}
		switch ep.Kind {
		case KindHost, KindMacvlan, KindMacvtap, KindIPVlan, KindVLAN, KindOutside:
		default:
			return fmt.Errorf("%w: endpoint %s has Kind %q: use host, macvlan, macvtap, ipvlan, vlan or outside", ErrTopology, EndpointID(ep), ep.Kind)
		}
		if _, err := endpointModes(ep); err != nil {
			return fmt.Errorf("%w: endpoint %s has %w", ErrTopology, EndpointID(ep), err)
		}
		id := EndpointID(ep)
		if seen[id] {
			return fmt.Errorf("%w: endpoint %s is listed twice", ErrTopology, id)
		}
		seen[id] = true
	}
	return nil
}

// Run verifies a live topology: it detects whether the switch reflects
// (unless t.Switch.Reflects says), captures on the parent, probes every
// ordered pair of endpoints in parallel from inside their namespaces, and
// checks (a) VLAN tags, (b) source MACs, (c) reachability against the
// model, (d) host-to-macvlan isolation and (e) the wire evidence of each
// answered probe. A Report is returned whenever the probes ran, also when
// a check failed (Report.OK false); an error means the check could not be
// made (ErrTopology, ErrEnvironment).
func Run(ctx context.Context, t Topology, o Options) (*Report, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if len(t.Endpoints) == 0 {
		// Never a vacuous pass: nothing found is not "everything matches".
		return nil, fmt.Errorf("%w: no macvlan, macvtap, ipvlan or VLAN endpoint on %s in %s", ErrEnvironment,
			EndpointID(Endpoint{NetNS: t.Parent.NetNS, Interface: t.Parent.Name}), t.Search)
	}
	started := time.Now()
	rep := &Report{Parent: EndpointID(Endpoint{NetNS: t.Parent.NetNS, Interface: t.Parent.Name})}
	if len(t.Parent.MAC) == 0 {
		if mac, err := interfaceMAC(t.Parent.NetNS, t.Parent.Name); err == nil {
			t.Parent.MAC = mac
		}
	}
	// The MAC checks need every endpoint's MAC; read the ones not given.
	t.Endpoints = append([]Endpoint(nil), t.Endpoints...)
	for i, ep := range t.Endpoints {
		if len(ep.MAC) == 0 {
			if mac, err := interfaceMAC(ep.NetNS, ep.Interface); err == nil {
				t.Endpoints[i].MAC = mac
			}
		}
	}

	// The capture starts first so it sees the reflection probe too.
	var (
		capt     *capture.Capture
		frames   []*capture.Frame
		captErr  error
		captDone = make(chan struct{})
	)
	captCtx, stopCapture := context.WithCancel(ctx)
	defer stopCapture()
	if !o.NoCapture {
		var err error
		capt, err = capture.Open(ctx, capture.Options{NetNS: t.Parent.NetNS, Iface: t.Parent.Name, NoPromisc: true,
			BufferSize: captureBuffer(len(t.Endpoints))})
		if err != nil {
			return nil, fmt.Errorf("%w: capture on parent %s: %w", ErrEnvironment, rep.Parent, err)
		}
		defer capt.Close()
		go func() {
			defer close(captDone)
			for f, err := range capt.Frames(captCtx) {
				if err != nil {
					captErr = err
					return
				}
				c := f.Clone()
				frames = append(frames, c)
				if o.OnFrame != nil {
					o.OnFrame(c)
				}
			}
		}()
	} else {
		close(captDone)
	}

	var refl reflection
	switch {
	case t.Switch.Reflects != nil:
		rep.SwitchReflects, rep.ReflectsSource = *t.Switch.Reflects, "configured"
		rep.ReflectDetail = "given by the topology"
		if t.Switch.ReflectsFrom != "" {
			rep.ReflectDetail = t.Switch.ReflectsFrom
		}
	default:
		wait := o.ReflectWait
		if wait <= 0 {
			wait = 200 * time.Millisecond
		}
		var err error
		refl, err = detectReflection(ctx, t.Parent.NetNS, t.Parent.Name, wait)
		if err != nil {
			return nil, fmt.Errorf("%w: detect whether the switch reflects on %s: %w", ErrEnvironment, rep.Parent, err)
		}
		rep.SwitchReflects, rep.ReflectsSource, rep.ReflectDetail = refl.Reflects, "detected", refl.Detail
		r := refl.Reflects
		t.Switch.Reflects = &r
	}

	exp := Model(t)
	rep.Endpoints = exp.Endpoints
	if len(exp.Pairs) == 0 {
		return nil, fmt.Errorf("%w: %w on %s: %d endpoint(s) and the parent has no address of its own (give the host stack an address, or add endpoints)",
			ErrEnvironment, ErrNoPair, rep.Parent, len(t.Endpoints))
	}

	wait := o.Wait
	if wait <= 0 {
		wait = 250 * time.Millisecond
		if refl.RTT > 0 {
			wait = min(max(20*refl.RTT, 150*time.Millisecond), time.Second)
		}
	}
	pace := &pacer{floor: wait, fixed: o.Wait > 0}
	results := runProbes(ctx, exp, pace, o.Parallel)
	rep.Wait = pace.budget()

	// Let the last answers' reflected copies reach the capture.
	if capt != nil {
		grace := captureGrace(refl.RTT, time.Duration(pace.slowst.Load()))
		select {
		case <-time.After(grace):
		case <-ctx.Done():
		}
		stopCapture()
		<-captDone
		if captErr != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("capture on parent %s: %w", rep.Parent, captErr)
		}
		st, _ := capt.Stats()
		rep.Capture = &CaptureInfo{Frames: len(frames), KernelDrops: st.KernelDrops}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify %s: %w", rep.Parent, err)
	}

	ev := &evidence{exp: exp, frames: frames, spare: refl.MAC, captured: capt != nil}
	if rep.Capture != nil {
		ev.drops = rep.Capture.KernelDrops
	}
	if len(exp.Promisc) > 0 {
		ev.promisc = readPromisc(ctx, t.Parent.NetNS, exp.Promisc)
	}
	rep.Pairs = comparePairs(exp, results, ev)
	rep.PairsTotal = len(rep.Pairs)
	var notProbed string
	for _, p := range rep.Pairs {
		if p.Observed != NotProbed {
			rep.PairsProbed++
		} else if notProbed == "" {
			notProbed = fmt.Sprintf("%s→%s: %s", p.FromName, p.ToName, p.Probe)
		}
	}
	if rep.PairsProbed == 0 {
		return nil, fmt.Errorf("%w: probed none of the %d pairs on %s (%s)", ErrEnvironment, rep.PairsTotal, rep.Parent, notProbed)
	}
	rep.Checks = runChecks(exp, rep.Pairs, results, ev)
	if o.MinPairs > 0 {
		rep.Checks = append(rep.Checks, checkMinPairs(rep.PairsProbed, o.MinPairs))
	}
	rep.OK = true
	for _, c := range rep.Checks {
		if !c.OK {
			rep.OK = false
		}
	}
	rep.Duration = time.Since(started)
	return rep, nil
}

// Bounds of the capture's grace after the last probe.
const (
	minCaptureGrace = 20 * time.Millisecond
	maxCaptureGrace = time.Second
)

// captureBuffer sizes the capture's socket buffer for a parent with n
// endpoints: every ordered pair puts about eight frames on the parent
// (ARP request and reply, echo and reply, some seen twice), each taking
// about a kilobyte of buffer, and under load the reader falls behind the
// probes; within the default 4 MiB and 64 MiB.
func captureBuffer(n int) int {
	return min(max(capture.DefaultBufferSize, (n+1)*n*8<<10), 64<<20)
}

// captureGrace is how long the capture keeps running after the last probe
// ended, so that the reflected copies of the last frames, and the frames
// still queued on the capture's socket, are counted: four switch round
// trips (rtt, from the reflection probe; 0 when unknown) or the slowest
// answer any probe had, whichever is longer, within 20 ms and 1 s. Like the
// probes' waits it scales with how slow this run's machine and network
// are: under emulation (the VM tier) a fixed 20 ms missed the reflected
// echo of a VEPA pair ("out 1 in 0").
func captureGrace(rtt, slowest time.Duration) time.Duration {
	return min(max(minCaptureGrace, 4*rtt, slowest), maxCaptureGrace)
}

// reprobeRounds bounds how often unanswered pairs are probed again when
// the evidence against them is in doubt.
const reprobeRounds = 2

// runProbes probes every ordered pair, at most parallel in flight (0: as
// the kernel's neighbour tables have room for). A pair counts as blocked
// only on clean evidence: when the neighbour table overflowed or a probe
// socket dropped frames during a pass, its unanswered pairs are probed
// again, with a quarter of the pairs in flight; a doubt that persists is
// written into their details.
func runProbes(ctx context.Context, exp *Expectation, pace *pacer, parallel int) []probeResult {
	results := make([]probeResult, len(exp.Pairs))
	base := newEchoBase()
	doubt := probeAll(ctx, exp, pace, parallel, base, results, nil)
	for round := 0; round < reprobeRounds && ctx.Err() == nil; round++ {
		// Overflows and drops call for fewer pairs in flight; a slow
		// machine only for a longer wait.
		if doubt != "" {
			parallel = max(minNeighBudget, neighBudget()/4)
		}
		if b, seen := pace.budget(), time.Duration(pace.seen.Load()); doubt == "" && seen > b && !pace.fixed {
			// Some answers reached us later than the wait the pairs were
			// given (the machine is busy): an unanswered pair may be one
			// of those. Ask them again, waiting as long as that.
			doubt = fmt.Sprintf("answers took up to %v to arrive, longer than the %v wait", seen.Round(time.Millisecond), b.Round(time.Millisecond))
			pace.floor = max(pace.floor, seen)
		}
		if doubt == "" {
			break
		}
		var again []int
		for i, r := range results {
			if unanswered(r) {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			return results
		}
		doubt = probeAll(ctx, exp, pace, parallel, base, results, again)
	}
	if doubt != "" {
		for i, r := range results {
			if unanswered(r) {
				results[i].Detail += " (in doubt: " + doubt + ")"
			}
		}
	}
	return results
}

// unanswered reports whether a pair's probe (either family) got no answer.
func unanswered(r probeResult) bool {
	return r.Observed == Blocked || r.V6 != nil && r.V6.Observed == Blocked
}

// readPromisc reads IFLA_PROMISCUITY of every lower the rules name, in the
// parent's namespace. Our own capture does not count: it never sets
// promiscuous mode (capture.Options.NoPromisc).
func readPromisc(ctx context.Context, ns string, rules []PromiscRule) map[string]promiscReading {
	out := map[string]promiscReading{}
	fail := func(err error) map[string]promiscReading {
		for _, r := range rules {
			out[r.Port] = promiscReading{Err: err}
		}
		return out
	}
	c, err := dialRtnl(ns)
	if err != nil {
		return fail(fmt.Errorf("netlink in namespace %s: %w", nsWord(ns), err))
	}
	defer c.Close()
	for _, r := range rules {
		if _, done := out[r.Port]; done {
			continue
		}
		m, err := c.GetLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: r.Port}})
		switch {
		case err != nil:
			out[r.Port] = promiscReading{Err: err}
		case m.Attrs.Promiscuity == nil:
			out[r.Port] = promiscReading{Err: errors.New("the kernel sent no IFLA_PROMISCUITY")}
		default:
			out[r.Port] = promiscReading{Count: *m.Attrs.Promiscuity}
		}
	}
	return out
}

// interfaceMAC reads an interface's MAC inside a namespace.
func interfaceMAC(ns, name string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := netns.DoIn(ns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	return mac, err
}
