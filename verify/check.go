package verify

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify/capture"
)

// Check names, as reports and JUnit test cases show them.
const (
	CheckVLANTags     = "vlan-tags"        // (a) VLAN frames carry their VID and TPID, no untagged leak
	CheckMACSources   = "mac-sources"      // (b) MACs unique, each a source only for its owner
	CheckReachability = "reachability"     // (c) the matrix equals the model's
	CheckIsolation    = "host-isolation"   // (d) host-to-macvlan isolation holds where the model says
	CheckWire         = "wire-evidence"    // (e) answered probes crossed the parent as the model says
	CheckPromisc      = "passthru-promisc" // a passthru child's lower is promiscuous unless nopromisc
	CheckMinPairs     = "pairs-probed"     // at least --min-pairs ordered pairs were probed
)

// checkMinPairs fails a run that probed fewer than min ordered pairs.
func checkMinPairs(probed, min int) CheckResult {
	c := CheckResult{Name: CheckMinPairs, OK: probed >= min, Detail: fmt.Sprintf("probed %d pairs, at least %d required", probed, min)}
	if !c.OK {
		c.Detail = fmt.Sprintf("probed only %d pairs, at least %d required (--min-pairs)", probed, min)
	}
	return c
}

// evidence is what the capture on the parent saw, indexed for the checks.
type evidence struct {
	exp      *Expectation
	frames   []*capture.Frame
	spare    capture.MAC
	captured bool
	// drops is how many frames the capture's socket dropped: the wire
	// then may lack what happened.
	drops uint64
	// promisc holds the promiscuity of every lower in exp.Promisc.
	promisc map[string]promiscReading

	indexed  bool
	arpReq   map[[2]netip.Addr]*wireCount // (sender, target) → requests
	arpReply map[[2]netip.Addr]*wireCount // (sender, target) → replies
	ndReq    map[[2]netip.Addr]*wireCount // (source, target) → neighbour solicitations
	ndRep    map[[2]netip.Addr]*wireCount // (target, destination) → neighbour advertisements
	echo     map[echoKey]*wireCount       // echo id → our first echo request (sequence 1)
	echoRep  map[echoKey]*wireCount       // echo id → replies to our echo requests
}

// echoKey tells our echo requests apart: ICMP or ICMPv6, and the
// identifier (a pair probed in both families uses one identifier twice).
type echoKey struct {
	v6 bool
	id uint16
}

// wireCount counts frames by direction on the parent.
type wireCount struct{ Out, In int }

func (w *wireCount) add(d capture.Direction) {
	switch {
	case d.Outbound():
		w.Out++
	case d.Inbound():
		w.In++
	}
}

func (ev *evidence) index() {
	if ev.indexed {
		return
	}
	ev.indexed = true
	ev.arpReq = map[[2]netip.Addr]*wireCount{}
	ev.arpReply = map[[2]netip.Addr]*wireCount{}
	ev.ndReq = map[[2]netip.Addr]*wireCount{}
	ev.ndRep = map[[2]netip.Addr]*wireCount{}
	ev.echo = map[echoKey]*wireCount{}
	ev.echoRep = map[echoKey]*wireCount{}
	get := func(m map[[2]netip.Addr]*wireCount, k [2]netip.Addr) *wireCount {
		w := m[k]
		if w == nil {
			w = &wireCount{}
			m[k] = w
		}
		return w
	}
	for _, f := range ev.frames {
		switch f.Net {
		case capture.NetARP:
			k := [2]netip.Addr{f.ARP.SenderIP, f.ARP.TargetIP}
			switch f.ARP.Op {
			case 1:
				get(ev.arpReq, k).add(f.Dir)
			case 2:
				get(ev.arpReply, k).add(f.Dir)
			}
		case capture.NetIPv4, capture.NetIPv6:
			v6 := f.Net == capture.NetIPv6
			req, rep := uint8(8), uint8(0)
			if v6 {
				if f.IP.Proto != 58 {
					continue
				}
				switch f.IP.ICMPType {
				case 135:
					get(ev.ndReq, [2]netip.Addr{f.IP.Src, f.IP.NDTarget}).add(f.Dir)
					continue
				case 136:
					get(ev.ndRep, [2]netip.Addr{f.IP.NDTarget, f.IP.Dst}).add(f.Dir)
					continue
				}
				req, rep = 128, 129
			} else if f.IP.Proto != 1 {
				continue
			}
			if !hasEchoMagic(f) {
				continue
			}
			m := ev.echoRep
			switch {
			case f.IP.ICMPType == req && f.IP.ICMPSeq == 1:
				m = ev.echo
			case f.IP.ICMPType != rep:
				continue
			}
			k := echoKey{v6, f.IP.ICMPID}
			w := m[k]
			if w == nil {
				w = &wireCount{}
				m[k] = w
			}
			w.add(f.Dir)
		}
	}
}

// hasEchoMagic reports whether an ICMP echo frame carries our payload.
func hasEchoMagic(f *capture.Frame) bool {
	// Ethernet+tags, a 20+ byte IPv4 header (IPv6: 40 bytes; our echoes
	// carry no extension headers), 8 bytes of ICMP header.
	off := f.HeaderLen()
	if len(f.Data) < off+20 {
		return false
	}
	if f.Net == capture.NetIPv6 {
		off += 40 + 8
	} else {
		off += int(f.Data[off]&0x0f)*4 + 8
	}
	return len(f.Data) >= off+len(echoMagic) && string(f.Data[off:off+len(echoMagic)]) == string(echoMagic)
}

// pairWire describes what the parent saw of one pair's probe.
func (ev *evidence) pairWire(from, to Endpoint, r probeResult) string {
	if !ev.captured {
		return ""
	}
	ev.index()
	var parts []string
	switch r.Family {
	case 4:
		src, _ := firstIPv4(from)
		dst, _ := firstIPv4(to)
		q := ev.arpReq[[2]netip.Addr{src, dst}]
		a := ev.arpReply[[2]netip.Addr{dst, src}]
		parts = append(parts, fmt.Sprintf("on the parent: ARP request %s, reply %s", q.words(), a.words()))
	case 6:
		src, _ := firstIPv6(from)
		dst, _ := firstIPv6(to)
		q := ev.ndReq[[2]netip.Addr{src, dst}]
		a := ev.ndRep[[2]netip.Addr{dst, src}]
		parts = append(parts, fmt.Sprintf("on the parent: neighbour solicitation %s, advertisement %s", q.words(), a.words()))
	default:
		return ""
	}
	if r.ICMPTried {
		k := echoKey{r.Family == 6, r.ICMPID}
		parts = append(parts, "echo "+ev.echo[k].words()+", echo reply "+ev.echoRep[k].words())
	}
	s := strings.Join(parts, "; ")
	if r.V6 != nil {
		if w := ev.pairWire(from, to, *r.V6); w != "" {
			s += "; IPv6 " + strings.TrimPrefix(w, "on the parent: ")
		}
	}
	return s
}

func (w *wireCount) words() string {
	if w == nil || (w.Out == 0 && w.In == 0) {
		return "not seen"
	}
	return fmt.Sprintf("out %d in %d", w.Out, w.In)
}

// comparePairs sets each cell's expected and observed verdicts side by side.
func comparePairs(exp *Expectation, results []probeResult, ev *evidence) []PairResult {
	out := make([]PairResult, len(exp.Pairs))
	for i, p := range exp.Pairs {
		from, to := exp.Endpoints[p.From], exp.Endpoints[p.To]
		r := results[i]
		pr := PairResult{
			From: EndpointID(from), To: EndpointID(to),
			FromName: displayName(from), ToName: displayName(to),
			Expected: p.Reach, Observed: r.Observed,
			Why: p.Why, Path: p.Path.String(),
			Probe: r.Detail,
		}
		pr.Evidence = ev.pairWire(from, to, r)
		pr.Family = r.Family
		if r.Family == 6 {
			// Probed in IPv6 only: the IPv6 verdict is the one to meet.
			pr.Expected, pr.Why, pr.Path = p.IPv6.Reach, p.IPv6.Why, p.IPv6.Path.String()
		}
		pr.OK = agrees(r.Observed, pr.Expected)
		if r.V6 != nil {
			pr.ExpectedV6, pr.ObservedV6 = p.IPv6.Reach, r.V6.Observed
			pr.OK = pr.OK && agrees(r.V6.Observed, p.IPv6.Reach)
			pr.Probe += "; IPv6: " + r.V6.Detail
			if p.IPv6.Reach != p.Reach {
				pr.Why += "; in IPv6: " + p.IPv6.Why
			}
		}
		out[i] = pr
	}
	return out
}

// agrees reports whether an observed verdict meets the expected one: a
// probe error never does, a pair that could not be probed is not counted
// against the model (the report says why).
func agrees(observed, expected Reach) bool {
	switch observed {
	case Reachable, Blocked:
		return observed == expected
	case NotProbed:
		return true
	}
	return false
}

func displayName(ep Endpoint) string {
	if ep.Name != "" {
		return ep.Name
	}
	return EndpointID(ep)
}

// runChecks runs checks (a) to (e), and passthru-promisc when the
// topology has a passthru child.
func runChecks(exp *Expectation, pairs []PairResult, results []probeResult, ev *evidence) []CheckResult {
	out := []CheckResult{
		checkVLANTags(exp, ev),
		checkMACSources(exp, ev),
		checkReachability(pairs),
		checkIsolation(exp, pairs),
		checkWire(exp, results, ev),
	}
	if len(exp.Promisc) > 0 {
		out = append(out, checkPromisc(exp, ev.promisc))
	}
	return out
}

// promiscReading is a lower's IFLA_PROMISCUITY as read during the run:
// how many users hold it promiscuous.
type promiscReading struct {
	Count uint32
	Err   error
}

// checkPromisc: each passthru child's lower is promiscuous unless the
// child has nopromisc. A nopromisc lower found promiscuous fails too: the
// promise is that the macvlan takes every frame without it, and a capture
// or another user holding it promiscuous would hide whether that is so.
func checkPromisc(exp *Expectation, read map[string]promiscReading) CheckResult {
	var bad, good []string
	for _, r := range exp.Promisc {
		got, ok := read[r.Port]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s: promiscuity not read", r.Port))
		case got.Err != nil:
			bad = append(bad, fmt.Sprintf("%s: read promiscuity: %v", r.Port, got.Err))
		case (got.Count > 0) != r.Want:
			if r.Want {
				bad = append(bad, fmt.Sprintf("%s is not promiscuous, but %s", r.Port, r.Why))
			} else {
				bad = append(bad, fmt.Sprintf("%s is promiscuous (held by %d users), but %s", r.Port, got.Count, r.Why))
			}
		default:
			word := "promiscuous"
			if !r.Want {
				word = "not promiscuous"
			}
			good = append(good, fmt.Sprintf("%s %s (promiscuity %d): %s", r.Port, word, got.Count, r.Why))
		}
	}
	if len(bad) > 0 {
		return CheckResult{Name: CheckPromisc, OK: false, Detail: strings.Join(bad, "; ")}
	}
	return CheckResult{Name: CheckPromisc, OK: true, Detail: strings.Join(good, "; ")}
}

func skipped(name, why string) CheckResult {
	return CheckResult{Name: name, OK: true, Skipped: true, Detail: "skipped: " + why}
}

// checkVLANTags: every frame from a VLAN endpoint's MAC carries that
// endpoint's stack (TPIDs and VIDs, outermost first), and none leaks
// untagged unless the same MAC also belongs to an untagged endpoint (a VLAN
// link shares its parent's MAC with the host stack).
func checkVLANTags(exp *Expectation, ev *evidence) CheckResult {
	if !ev.captured {
		return skipped(CheckVLANTags, "no capture")
	}
	allowed := map[capture.MAC]map[capture.Stack]bool{}
	var tagged []SourceRule
	for _, s := range exp.Sources {
		if allowed[s.MAC] == nil {
			allowed[s.MAC] = map[capture.Stack]bool{}
		}
		allowed[s.MAC][s.Stack] = true
		if s.Stack.Len() > 0 {
			tagged = append(tagged, s)
		}
	}
	if len(tagged) == 0 {
		return skipped(CheckVLANTags, "no VLAN endpoint: no tag to check")
	}
	type tally struct{ good, leak, wrong int }
	per := map[capture.MAC]*tally{}
	for _, s := range tagged {
		per[s.MAC] = &tally{}
	}
	var bad []string
	for _, f := range ev.frames {
		t := per[f.Src]
		if t == nil {
			continue
		}
		st := capture.StackOf(f.VLANs)
		switch {
		case allowed[f.Src][st]:
			if st.Len() > 0 {
				t.good++
			}
		case st.Len() == 0:
			t.leak++
			if t.leak == 1 {
				bad = append(bad, fmt.Sprintf("untagged frame from %s leaked: %s", f.Src, f.Summary()))
			}
		default:
			t.wrong++
			if t.wrong == 1 {
				bad = append(bad, fmt.Sprintf("frame from %s with %s, allowed %s: %s", f.Src, st, stacksOf(allowed[f.Src]), f.Summary()))
			}
		}
	}
	var seen []string
	for _, s := range tagged {
		t := per[s.MAC]
		seen = append(seen, fmt.Sprintf("%s %s: %d tagged", s.Owner, s.Stack, t.good))
	}
	if len(bad) > 0 {
		return CheckResult{Name: CheckVLANTags, OK: false, Detail: strings.Join(bad, "; ")}
	}
	return CheckResult{Name: CheckVLANTags, OK: true, Detail: "every frame carried its tags (" + strings.Join(seen, ", ") + "), no untagged leak"}
}

func stacksOf(m map[capture.Stack]bool) string {
	var s []string
	for st := range m {
		s = append(s, st.String())
	}
	sort.Strings(s)
	return strings.Join(s, " or ")
}

// checkMACSources: MACs are unique among endpoints of one VLAN stack (those
// that must share the parent's MAC aside), a passthru child carries the
// parent's MAC, and every frame from a known MAC carries a stack its owner
// uses; a frame leaving the parent from a MAC nobody owns is a
// sub-interface the topology does not know.
func checkMACSources(exp *Expectation, ev *evidence) CheckResult {
	var bad []string
	type key struct {
		mac capture.MAC
		st  capture.Stack
	}
	owner := map[key]string{}
	var parent capture.MAC
	for _, ep := range exp.Endpoints {
		if ep.Kind == KindHost {
			parent = capture.MACFrom(ep.MAC)
		}
	}
	for _, ep := range exp.Endpoints {
		mac := capture.MACFrom(ep.MAC)
		if mac.IsZero() {
			continue
		}
		switch {
		case ep.Kind == KindMacvlan || ep.Kind == KindMacvtap:
			if ep.macvlanMode() == rtnl.MacvlanModePassthru {
				if !parent.IsZero() && mac != parent {
					bad = append(bad, fmt.Sprintf("passthru %s has MAC %s, not the parent's %s", EndpointID(ep), mac, parent))
				}
				continue
			}
		case ep.Kind == KindHost || ep.Kind == KindVLAN || ep.Kind == KindIPVlan:
			continue // share the parent's MAC by design
		}
		k := key{mac, stackOfEndpoint(ep)}
		if o, dup := owner[k]; dup {
			bad = append(bad, fmt.Sprintf("MAC %s is used by both %s and %s", mac, o, EndpointID(ep)))
		}
		owner[k] = EndpointID(ep)
	}
	if !ev.captured {
		if len(bad) > 0 {
			return CheckResult{Name: CheckMACSources, OK: false, Detail: strings.Join(bad, "; ")}
		}
		return CheckResult{Name: CheckMACSources, OK: true, Detail: "MACs unique; wire part skipped: no capture"}
	}
	allowed := map[capture.MAC]map[capture.Stack]bool{}
	outside := map[capture.MAC]bool{}
	for _, s := range exp.Sources {
		if allowed[s.MAC] == nil {
			allowed[s.MAC] = map[capture.Stack]bool{}
		}
		allowed[s.MAC][s.Stack] = true
		if s.Outside {
			outside[s.MAC] = true
		}
	}
	unknownOut := map[capture.MAC]int{}
	wrong := 0
	// A frame that arrives from the switch with an endpoint's MAC as its
	// source, and is no reflection of one the parent sent (same bytes), was
	// sent by another station using that MAC: the kernel refuses duplicate
	// MACs among one parent's macvlans, not on the segment. A unicast to
	// another endpoint is a bridge-mode sibling's frame, which the parent's
	// taps see as received (dev_forward_skb): not evidence.
	sent := map[string]bool{}
	for _, f := range ev.frames {
		if f.Dir.Outbound() {
			sent[string(f.Data)] = true
		}
	}
	owners := map[capture.MAC]string{}
	for k, o := range owner {
		owners[k.mac] = o
	}
	impostor := map[capture.MAC]bool{}
	for _, f := range ev.frames {
		_, local := owners[f.Dst]
		if o, ok := owners[f.Src]; ok && !local && f.Dir.Inbound() && !outside[f.Src] && !sent[string(f.Data)] && !impostor[f.Src] {
			impostor[f.Src] = true
			bad = append(bad, fmt.Sprintf("frame from %s, the MAC of %s, arrived from the switch although %s did not send it: another station uses this MAC: %s", f.Src, o, o, f.Summary()))
		}
	}
	for _, f := range ev.frames {
		if f.Src == ev.spare {
			continue
		}
		st := capture.StackOf(f.VLANs)
		a := allowed[f.Src]
		switch {
		case a == nil:
			if f.Dir.Outbound() {
				if unknownOut[f.Src] == 0 {
					bad = append(bad, fmt.Sprintf("frame from %s, which no endpoint owns, left the parent: %s", f.Src, f.Summary()))
				}
				unknownOut[f.Src]++
			}
		case !a[st] && st.Len() > 0 && !hasTagged(a):
			// An untagged endpoint's MAC seen tagged (leaks of tagged
			// endpoints are vlan-tags' business).
			wrong++
			if wrong == 1 {
				bad = append(bad, fmt.Sprintf("frame from %s with %s, but its owner sends untagged: %s", f.Src, st, f.Summary()))
			}
		case outside[f.Src] && f.Dir.Outbound() && len(a) == 1:
			bad = append(bad, fmt.Sprintf("frame from %s, which is beyond the switch, left the parent: %s", f.Src, f.Summary()))
		}
	}
	if len(bad) > 0 {
		return CheckResult{Name: CheckMACSources, OK: false, Detail: strings.Join(bad, "; ")}
	}
	return CheckResult{Name: CheckMACSources, OK: true, Detail: fmt.Sprintf("%d endpoint MACs unique; every one of %d frames came from its owner with its owner's stack", len(owner), len(ev.frames))}
}

func hasTagged(m map[capture.Stack]bool) bool {
	for st := range m {
		if st.Len() > 0 {
			return true
		}
	}
	return false
}

// checkReachability: every probed cell equals the model's.
func checkReachability(pairs []PairResult) CheckResult {
	var bad, notProbed []string
	agree := 0
	for _, p := range pairs {
		switch {
		case p.Observed == NotProbed:
			notProbed = append(notProbed, p.From+"→"+p.To)
		case !p.OK:
			cell := fmt.Sprintf("%s→%s expected %s, observed %s", p.From, p.To, p.Expected, p.Observed)
			if p.ObservedV6 != 0 && p.ObservedV6 != p.ExpectedV6 {
				cell += fmt.Sprintf(" (IPv6: expected %s, observed %s)", p.ExpectedV6, p.ObservedV6)
			}
			bad = append(bad, cell+" ("+p.Probe+")")
		default:
			agree++
		}
	}
	if agree == 0 && len(bad) == 0 {
		return skipped(CheckReachability, fmt.Sprintf("none of the %d pairs was probed", len(pairs)))
	}
	detail := fmt.Sprintf("%d of %d pairs agree with the model", agree, len(pairs))
	if len(notProbed) > 0 {
		detail += fmt.Sprintf("; %d not probed", len(notProbed))
	}
	if len(bad) > 0 {
		return CheckResult{Name: CheckReachability, OK: false, Detail: detail + ": " + strings.Join(bad, "; ")}
	}
	return CheckResult{Name: CheckReachability, OK: true, Detail: detail}
}

// checkIsolation: the cells between a lower's own stack (the host, a VLAN
// link) and the macvlans on it.
func checkIsolation(exp *Expectation, pairs []PairResult) CheckResult {
	nodes := make([]node, len(exp.Endpoints))
	parentName := ""
	for _, ep := range exp.Endpoints {
		if ep.Kind == KindHost {
			parentName = ep.Interface
		}
	}
	t := Topology{Parent: Parent{Name: parentName}}
	for i, ep := range exp.Endpoints {
		nodes[i] = makeNode(t, ep)
	}
	var bad []string
	n, blockedN := 0, 0
	for i, p := range exp.Pairs {
		a, b := nodes[p.From], nodes[p.To]
		if parentName == "" && (a.kind == KindHost || b.kind == KindHost) {
			continue
		}
		isPair := (a.role == roleStack && b.role == roleChild && a.port == b.port) ||
			(a.role == roleChild && b.role == roleStack && a.port == b.port)
		if !isPair || pairs[i].Observed == NotProbed {
			continue
		}
		n++
		if p.Reach == Blocked {
			blockedN++
		}
		if !pairs[i].OK {
			bad = append(bad, fmt.Sprintf("%s→%s expected %s, observed %s", pairs[i].From, pairs[i].To, p.Reach, pairs[i].Observed))
		}
	}
	if n == 0 {
		return CheckResult{Name: CheckIsolation, OK: true, Skipped: true, Detail: "skipped: no pair of a stack (host, VLAN link) with an address and a macvlan on it"}
	}
	if len(bad) > 0 {
		return CheckResult{Name: CheckIsolation, OK: false, Detail: strings.Join(bad, "; ")}
	}
	return CheckResult{Name: CheckIsolation, OK: true, Detail: fmt.Sprintf("%d host↔macvlan pairs as the model says (%d isolated, %d joined by the reflecting switch)", n, blockedN, n-blockedN)}
}

// checkWire: each answered echo request crossed the parent as often as the
// model says (bridge-mode siblings once inbound, reflected paths out and
// back, the outside once).
func checkWire(exp *Expectation, results []probeResult, ev *evidence) CheckResult {
	if !ev.captured {
		return skipped(CheckWire, "no capture")
	}
	ev.index()
	var bad []string
	n, unseen := 0, 0
	for i, p := range exp.Pairs {
		v4 := PairVerdict{Reach: p.Reach, Why: p.Why, Path: p.Path, WireOut: p.WireOut, WireIn: p.WireIn}
		for _, r := range []*probeResult{&results[i], results[i].V6} {
			if r == nil {
				continue
			}
			want, word := v4, "echo"
			if r.Family == 6 {
				want, word = p.IPv6, "ICMPv6 echo"
			}
			if !r.ICMP || want.Reach != Reachable || want.Path == PathBeyond {
				continue
			}
			n++
			w := ev.echo[echoKey{r.Family == 6, r.ICMPID}]
			if w == nil {
				w = &wireCount{}
			}
			if w.Out <= want.WireOut && w.In <= want.WireIn && ev.drops > 0 && (w.Out != want.WireOut || w.In != want.WireIn) {
				unseen++ // lost with the capture's drops, perhaps
				continue
			}
			if w.Out != want.WireOut || w.In != want.WireIn {
				bad = append(bad, fmt.Sprintf("%s→%s %s seen out %d in %d, model says out %d in %d (%s path)",
					EndpointID(exp.Endpoints[p.From]), EndpointID(exp.Endpoints[p.To]), word, w.Out, w.In, want.WireOut, want.WireIn, want.Path))
			}
		}
	}
	if n == 0 {
		return CheckResult{Name: CheckWire, OK: true, Skipped: true, Detail: "skipped: no answered echo to account for"}
	}
	if len(bad) > 0 {
		return CheckResult{Name: CheckWire, OK: false, Detail: strings.Join(bad, "; ")}
	}
	if unseen > 0 {
		return CheckResult{Name: CheckWire, OK: true, Detail: fmt.Sprintf("%d of %d answered echo requests crossed the parent as the model says; %d were missing from the capture, which dropped %d frames (its buffer overflowed): no verdict on those",
			n-unseen, n, unseen, ev.drops)}
	}
	return CheckResult{Name: CheckWire, OK: true, Detail: fmt.Sprintf("%d answered echo requests crossed the parent as the model says", n)}
}
