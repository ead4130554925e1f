package verify

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Check names, as reports and JUnit test cases show them.
const (
	CheckVLANTags     = "vlan-tags"      // (a) VLAN frames carry their VID and TPID, no untagged leak
	CheckMACSources   = "mac-sources"    // (b) MACs unique, each a source only for its owner
	CheckReachability = "reachability"   // (c) the matrix equals the model's
	CheckIsolation    = "host-isolation" // (d) host-to-macvlan isolation holds where the model says
	CheckWire         = "wire-evidence"  // (e) answered probes crossed the parent as the model says
)

// evidence is what the capture on the parent saw, indexed for the checks.
type evidence struct {
	exp      *Expectation
	frames   []*Frame
	spare    MAC
	captured bool

	indexed  bool
	arpReq   map[[2]netip.Addr]*wireCount // (sender, target) → requests
	arpReply map[[2]netip.Addr]*wireCount // (sender, target) → replies
	echo     map[uint16]*wireCount        // echo id → our first echo request (sequence 1)
	echoRep  map[uint16]*wireCount        // echo id → replies to our echo requests
}

// wireCount counts frames by direction on the parent.
type wireCount struct{ Out, In int }

func (w *wireCount) add(d Direction) {
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
	ev.echo = map[uint16]*wireCount{}
	ev.echoRep = map[uint16]*wireCount{}
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
		case NetARP:
			k := [2]netip.Addr{f.ARP.SenderIP, f.ARP.TargetIP}
			switch f.ARP.Op {
			case 1:
				get(ev.arpReq, k).add(f.Dir)
			case 2:
				get(ev.arpReply, k).add(f.Dir)
			}
		case NetIPv4:
			if f.IP.Proto != 1 || !hasEchoMagic(f) {
				continue
			}
			m := ev.echoRep
			switch {
			case f.IP.ICMPType == 8 && f.IP.ICMPSeq == 1:
				m = ev.echo
			case f.IP.ICMPType != 0:
				continue
			}
			w := m[f.IP.ICMPID]
			if w == nil {
				w = &wireCount{}
				m[f.IP.ICMPID] = w
			}
			w.add(f.Dir)
		}
	}
}

// hasEchoMagic reports whether an ICMP echo frame carries our payload.
func hasEchoMagic(f *Frame) bool {
	// Ethernet+tags, a 20+ byte IPv4 header, 8 bytes of ICMP header.
	off := f.HeaderLen()
	if len(f.Data) < off+20 {
		return false
	}
	off += int(f.Data[off]&0x0f)*4 + 8
	return len(f.Data) >= off+len(echoMagic) && string(f.Data[off:off+len(echoMagic)]) == string(echoMagic)
}

// pairWire describes what the parent saw of one pair's probe.
func (ev *evidence) pairWire(from, to Endpoint, r probeResult) string {
	if !ev.captured {
		return ""
	}
	ev.index()
	src, ok1 := firstIPv4(from)
	dst, ok2 := firstIPv4(to)
	if !ok1 || !ok2 {
		return ""
	}
	var parts []string
	q := ev.arpReq[[2]netip.Addr{src, dst}]
	a := ev.arpReply[[2]netip.Addr{dst, src}]
	parts = append(parts, fmt.Sprintf("on the parent: ARP request %s, reply %s", q.words(), a.words()))
	if r.ICMPTried {
		parts = append(parts, "echo "+ev.echo[r.ICMPID].words()+", echo reply "+ev.echoRep[r.ICMPID].words())
	}
	return strings.Join(parts, "; ")
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
		switch r.Observed {
		case Reachable, Blocked:
			pr.OK = r.Observed == p.Reach
		case NotProbed:
			pr.OK = true // nothing to compare; the report says why
		}
		out[i] = pr
	}
	return out
}

func displayName(ep Endpoint) string {
	if ep.Name != "" {
		return ep.Name
	}
	return EndpointID(ep)
}

// runChecks runs checks (a) to (e).
func runChecks(exp *Expectation, pairs []PairResult, results []probeResult, ev *evidence) []CheckResult {
	return []CheckResult{
		checkVLANTags(exp, ev),
		checkMACSources(exp, ev),
		checkReachability(pairs),
		checkIsolation(exp, pairs),
		checkWire(exp, results, ev),
	}
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
	allowed := map[MAC]map[Stack]bool{}
	var tagged []SourceRule
	for _, s := range exp.Sources {
		if allowed[s.MAC] == nil {
			allowed[s.MAC] = map[Stack]bool{}
		}
		allowed[s.MAC][s.Stack] = true
		if s.Stack.Len() > 0 {
			tagged = append(tagged, s)
		}
	}
	if len(tagged) == 0 {
		return CheckResult{Name: CheckVLANTags, OK: true, Detail: "no VLAN endpoints: nothing must be tagged"}
	}
	type tally struct{ good, leak, wrong int }
	per := map[MAC]*tally{}
	for _, s := range tagged {
		per[s.MAC] = &tally{}
	}
	var bad []string
	for _, f := range ev.frames {
		t := per[f.Src]
		if t == nil {
			continue
		}
		st := StackOf(f.VLANs)
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

func stacksOf(m map[Stack]bool) string {
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
		mac MAC
		st  Stack
	}
	owner := map[key]string{}
	var parent MAC
	for _, ep := range exp.Endpoints {
		if ep.Kind == KindHost {
			parent = MACFrom(ep.MAC)
		}
	}
	for _, ep := range exp.Endpoints {
		mac := MACFrom(ep.MAC)
		if mac.IsZero() {
			continue
		}
		switch {
		case ep.Kind == KindMacvlan || ep.Kind == KindMacvtap:
			if ep.Mode == "passthru" {
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
	allowed := map[MAC]map[Stack]bool{}
	outside := map[MAC]bool{}
	for _, s := range exp.Sources {
		if allowed[s.MAC] == nil {
			allowed[s.MAC] = map[Stack]bool{}
		}
		allowed[s.MAC][s.Stack] = true
		if s.Outside {
			outside[s.MAC] = true
		}
	}
	unknownOut := map[MAC]int{}
	wrong := 0
	for _, f := range ev.frames {
		if f.Src == ev.spare {
			continue
		}
		st := StackOf(f.VLANs)
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

func hasTagged(m map[Stack]bool) bool {
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
			bad = append(bad, fmt.Sprintf("%s→%s expected %s, observed %s (%s)", p.From, p.To, p.Expected, p.Observed, p.Probe))
		default:
			agree++
		}
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
	n := 0
	for i, p := range exp.Pairs {
		r := results[i]
		if !r.ICMP || p.Reach != Reachable || p.Path == PathBeyond {
			continue
		}
		n++
		w := ev.echo[r.ICMPID]
		if w == nil {
			w = &wireCount{}
		}
		if w.Out != p.WireOut || w.In != p.WireIn {
			bad = append(bad, fmt.Sprintf("%s→%s echo seen out %d in %d, model says out %d in %d (%s path)",
				EndpointID(exp.Endpoints[p.From]), EndpointID(exp.Endpoints[p.To]), w.Out, w.In, p.WireOut, p.WireIn, p.Path))
		}
	}
	if n == 0 {
		return CheckResult{Name: CheckWire, OK: true, Skipped: true, Detail: "skipped: no answered echo to account for"}
	}
	if len(bad) > 0 {
		return CheckResult{Name: CheckWire, OK: false, Detail: strings.Join(bad, "; ")}
	}
	return CheckResult{Name: CheckWire, OK: true, Detail: fmt.Sprintf("%d answered echo requests crossed the parent as the model says", n)}
}
