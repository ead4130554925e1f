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
	t = withMACs(t)

	// The capture starts first so it sees the reflection probe too.
	var pc *parentCapture
	if !o.NoCapture {
		var err error
		pc, err = startCapture(ctx, t.Parent, len(t.Endpoints), o.OnFrame)
		if err != nil {
			return nil, fmt.Errorf("%w: capture on parent %s: %w", ErrEnvironment, rep.Parent, err)
		}
		defer pc.close()
	}

	refl, err := switchReflects(ctx, &t, o.ReflectWait, rep)
	if err != nil {
		return nil, err
	}

	exp := Model(t)
	rep.Endpoints = exp.Endpoints
	if len(exp.Pairs) == 0 {
		return nil, fmt.Errorf("%w: %w on %s: %d endpoint(s) and the parent has no address of its own (give the host stack an address, or add endpoints)",
			ErrEnvironment, ErrNoPair, rep.Parent, len(t.Endpoints))
	}

	pace := &pacer{floor: probeWait(o.Wait, refl.RTT), fixed: o.Wait > 0}
	results := runProbes(ctx, exp, pace, o.Parallel)
	rep.Wait = pace.budget()

	var frames []*capture.Frame
	if pc != nil {
		// Let the last answers' reflected copies reach the capture.
		var st capture.Stats
		frames, st, err = pc.finish(ctx, captureGrace(refl.RTT, time.Duration(pace.slowst.Load())))
		if err != nil {
			return nil, fmt.Errorf("capture on parent %s: %w", rep.Parent, err)
		}
		rep.Capture = &CaptureInfo{Frames: len(frames), KernelDrops: st.KernelDrops}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify %s: %w", rep.Parent, err)
	}

	ev := &evidence{exp: exp, frames: frames, spare: refl.MAC, captured: pc != nil}
	if rep.Capture != nil {
		ev.drops = rep.Capture.KernelDrops
	}
	if len(exp.Promisc) > 0 {
		ev.promisc = readPromisc(ctx, t.Parent.NetNS, exp.Promisc)
	}
	if err := rep.judge(exp, results, ev, o.MinPairs); err != nil {
		return nil, err
	}
	rep.Duration = time.Since(started)
	return rep, nil
}

// withMACs returns t with the MACs it leaves out (the parent's, an
// endpoint's) read from the kernel: the MAC checks need every one. The
// caller's Endpoints are not written to.
func withMACs(t Topology) Topology {
	if len(t.Parent.MAC) == 0 {
		if mac, err := interfaceMAC(t.Parent.NetNS, t.Parent.Name); err == nil {
			t.Parent.MAC = mac
		}
	}
	t.Endpoints = append([]Endpoint(nil), t.Endpoints...)
	for i, ep := range t.Endpoints {
		if len(ep.MAC) == 0 {
			if mac, err := interfaceMAC(ep.NetNS, ep.Interface); err == nil {
				t.Endpoints[i].MAC = mac
			}
		}
	}
	return t
}

// switchReflects settles whether the switch sends frames back out of the
// port they came in on: as the topology says, or detected with the
// reflection probe (within reflectWait, 0 for 200 ms), whose round trip and
// spare MAC the run uses later. A detected answer is written into
// t.Switch.Reflects for the model; both go into rep.
func switchReflects(ctx context.Context, t *Topology, reflectWait time.Duration, rep *Report) (reflection, error) {
	var refl reflection
	if t.Switch.Reflects != nil {
		rep.SwitchReflects, rep.ReflectsSource = *t.Switch.Reflects, "configured"
		rep.ReflectDetail = "given by the topology"
		if t.Switch.ReflectsFrom != "" {
			rep.ReflectDetail = t.Switch.ReflectsFrom
		}
		return refl, nil
	}
	wait := reflectWait
	if wait <= 0 {
		wait = 200 * time.Millisecond
	}
	refl, err := detectReflection(ctx, t.Parent.NetNS, t.Parent.Name, wait)
	if err != nil {
		return refl, fmt.Errorf("%w: detect whether the switch reflects on %s: %w", ErrEnvironment, rep.Parent, err)
	}
	rep.SwitchReflects, rep.ReflectsSource, rep.ReflectDetail = refl.Reflects, "detected", refl.Detail
	r := refl.Reflects
	t.Switch.Reflects = &r
	return refl, nil
}

// probeWait is the least wait of a probe: the one given (Options.Wait), or
// 20 switch round trips within 150 ms and 1 s, or 250 ms when the
// reflection probe measured none.
func probeWait(given, rtt time.Duration) time.Duration {
	if given > 0 {
		return given
	}
	if rtt > 0 {
		return min(max(20*rtt, 150*time.Millisecond), time.Second)
	}
	return 250 * time.Millisecond
}

// judge fills the report from the probes' results and the evidence: each
// pair against the model, then the checks, and OK when every check passed.
// A run that probed no pair is refused, never passed.
func (rep *Report) judge(exp *Expectation, results []probeResult, ev *evidence, minPairs int) error {
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
		return fmt.Errorf("%w: probed none of the %d pairs on %s (%s)", ErrEnvironment, rep.PairsTotal, rep.Parent, notProbed)
	}
	rep.Checks = runChecks(exp, rep.Pairs, results, ev)
	if minPairs > 0 {
		rep.Checks = append(rep.Checks, checkMinPairs(rep.PairsProbed, minPairs))
	}
	rep.OK = true
	for _, c := range rep.Checks {
		if !c.OK {
			rep.OK = false
		}
	}
	return nil
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
