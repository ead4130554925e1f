package verify

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify/capture"
)

// EndpointID names an endpoint as reports do: "NETNS/IFNAME", or "IFNAME"
// when it lives in the caller's namespace. The host stack is
// "NETNS/PARENT".
func EndpointID(ep Endpoint) string {
	if ep.NetNS == "" {
		return ep.Interface
	}
	return ep.NetNS + "/" + ep.Interface
}

// Endpoint kinds the model knows. KindOutside is an endpoint beyond the
// switch (a host on the switch's segment), reached over the wire.
const (
	KindHost    = "host"
	KindMacvlan = "macvlan"
	KindMacvtap = "macvtap"
	KindIPVlan  = "ipvlan"
	KindVLAN    = "vlan"
	KindOutside = "outside"
)

// role is what an endpoint is to the parent.
type role uint8

const (
	roleStack   role = iota + 1 // a lower's own stack: the parent's (host) or a VLAN link's
	roleChild                   // a macvlan/macvtap/ipvlan on a lower
	roleOutside                 // beyond the switch
)

// node is an endpoint with what the model derives from it.
type node struct {
	ep    Endpoint
	id    string
	role  role
	stack capture.Stack
	port  string // the lower a child sits on; the interface a stack is
	modes
	kind string
}

// WithHost returns the topology's endpoints with the host stack appended
// when Parent.Addrs is set and no endpoint of kind "host" is listed.
func WithHost(t Topology) []Endpoint {
	eps := slices.Clone(t.Endpoints)
	for _, ep := range eps {
		if ep.Kind == KindHost {
			return eps
		}
	}
	if len(t.Parent.Addrs) == 0 {
		return eps
	}
	return append(eps, Endpoint{
		Name:      "host",
		NetNS:     t.Parent.NetNS,
		Interface: t.Parent.Name,
		Kind:      KindHost,
		MAC:       t.Parent.MAC,
		Addrs:     t.Parent.Addrs,
	})
}

// stackOfEndpoint is the VLAN stack an endpoint's frames carry on the parent.
func stackOfEndpoint(ep Endpoint) capture.Stack {
	tags := make([]capture.Tag, len(ep.VLANs))
	for i, v := range ep.VLANs {
		p := capture.EtherType(v.Protocol)
		if p == 0 {
			p = capture.EtherType8021Q
		}
		tags[i] = capture.Tag{TPID: p, VID: v.ID}
	}
	return capture.StackOf(tags)
}

// Model is the behaviour model: a pure function from a topology to what it
// should do. It needs t.Switch.Reflects; when that is nil it assumes a switch
// that does not reflect and says so (Expectation.ReflectsKnown false). Run
// detects reflection first and passes it in.
//
// The rules come from the kernel's drivers/net/macvlan.c and are checked
// cell by cell against real kernels (TestModelMatchesKernel: every mode with
// the switch reflecting and not, on the host's 6.18 and in the VM on 6.1 and
// 6.12; TestModelMatchesKernelVLAN in the VM); the comments in siblings,
// childToStack, stackToChild and weakHost name the functions responsible.
// What the kernel taught the model, beyond the tutorials' table:
//   - bridge and VEPA children on one parent talk through a reflecting
//     switch like two VEPA ports (macvlan_queue_xmit short-cuts only
//     bridge-to-bridge; macvlan_process_broadcast floods a reflected bridge
//     broadcast to VEPA ports);
//   - with a reflecting switch the host reaches every child but a passthru
//     one, a private child included, while a private child never reaches
//     the host (its reflected broadcast goes back to itself only:
//     macvlan_handle_frame, "forward to original port");
//   - a source-mode child hears only its listed senders
//     (macvlan_forward_source), the parent's MAC, an outside station's and
//     a sibling's included (a sibling's only through a reflecting switch);
//   - a namespace answers ARP for all its addresses on every interface
//     (arp_ignore 0), so the host stack is reachable through its VLAN links;
//     IPv6 neighbour solicitations are answered only for the receiving
//     interface's addresses, so PairExpectation.IPv6 is the link-level
//     verdict alone;
//   - ipvlans follow their own rules (see ipvlanPair), measured in the VM.
func Model(t Topology) *Expectation {
	e := &Expectation{Endpoints: WithHost(t)}
	if t.Switch.Reflects != nil {
		e.SwitchReflects, e.ReflectsKnown = *t.Switch.Reflects, true
	}
	nodes := make([]node, len(e.Endpoints))
	for i, ep := range e.Endpoints {
		nodes[i] = makeNode(t, ep)
	}
	m := &model{t: t, nodes: nodes, reflects: e.SwitchReflects}
	n := len(nodes)
	base := make([]PairExpectation, n*n)
	for i := range nodes {
		for j := range nodes {
			if i != j {
				base[i*n+j] = m.pair(i, j)
			}
		}
	}
	for i := range nodes {
		for j := range nodes {
			if i == j {
				continue
			}
			p := m.weakHost(i, j, func(a, b int) PairExpectation { return base[a*n+b] })
			p.From, p.To = i, j
			d := base[i*n+j]
			p.IPv6 = PairVerdict{Reach: d.Reach, Why: d.Why, Path: d.Path, WireOut: d.WireOut, WireIn: d.WireIn}
			e.Pairs = append(e.Pairs, p)
		}
	}
	e.Sources = m.sources()
	for _, n := range nodes {
		if n.role != roleChild || n.macvlan != rtnl.MacvlanModePassthru || (n.kind != KindMacvlan && n.kind != KindMacvtap) {
			continue
		}
		r := PromiscRule{Port: n.port, Owner: n.id, Want: !n.ep.NoPromisc,
			Why: fmt.Sprintf("passthru %s puts %s in promiscuous mode when it comes up", n.id, n.port)}
		if n.ep.NoPromisc {
			r.Why = fmt.Sprintf("passthru %s has nopromisc: it leaves %s's promiscuous mode alone", n.id, n.port)
		}
		e.Promisc = append(e.Promisc, r)
	}
	return e
}

// weakHost turns the link-level verdicts into what a probe from a to b's
// address sees. Linux answers ARP for any of a namespace's addresses on
// every interface of it (arp_ignore 0: arp_process checks only that the
// target address is local, inet_addr_type_dev_table) and routes the reply by
// its own table, not back through the interface the request came in on. So
// when b's namespace holds other endpoints (the host stack beside a VLAN
// link, a host-shim macvlan), a reaches b's address if it reaches some
// endpoint s of that namespace at the link level, and the reply leaves
// through r, the interface whose subnet holds a's address (s itself when
// none does), and r reaches a. Measured in TestModelMatchesKernelVLAN: a
// macvlan on h0.10 gets echo replies from the host's untagged address
// through h0.10.
func (m *model) weakHost(a, b int, base func(a, b int) PairExpectation) PairExpectation {
	direct := base(a, b)
	na, nb := m.nodes[a], m.nodes[b]
	src, ok := firstIPv4(na.ep)
	if !ok || nb.role == roleOutside || na.ep.NetNS == nb.ep.NetNS {
		return direct
	}
	// Endpoints of b's namespace that receive for its stack.
	var same []int
	for k, n := range m.nodes {
		if n.ep.NetNS == nb.ep.NetNS && k != a && n.role != roleOutside && n.kind != KindMacvtap {
			same = append(same, k)
		}
	}
	// r: the endpoint of b's namespace its replies to a's address leave
	// through.
	r := replyVia(m.nodes, same, src)
	if r < 0 && direct.Reach == Reachable && nb.kind != KindMacvtap && na.kind != KindMacvtap {
		if _, has := firstIPv4(nb.ep); has {
			return blocked("%s has no route back to %s: no address or route of %s covers it (a different subnet; only a router would join them)", nb.id, src, nb.ep.NetNS)
		}
	}
	if len(same) < 2 {
		return direct
	}
	try := func(s int) (PairExpectation, bool) {
		in := base(a, s)
		if in.Reach != Reachable {
			return in, false
		}
		if r < 0 || r == s {
			return in, true
		}
		if base(r, a).Reach != Reachable {
			return in, false
		}
		return in, true
	}
	if p, ok := try(b); ok {
		return p
	}
	for _, s := range same {
		if s == b {
			continue
		}
		if p, ok := try(s); ok {
			via := m.nodes[s].id
			back := via
			if r >= 0 {
				back = m.nodes[r].id
			}
			p.Why = fmt.Sprintf("%s answers for %s's address on %s (a namespace answers ARP for all its addresses on every interface: arp_ignore 0), and replies through %s: %s", nb.ep.NetNS, nb.id, via, back, p.Why)
			return p
		}
	}
	if r >= 0 && r != b && direct.Reach == Reachable {
		return blocked("%s's replies to %s leave through %s (its route for that subnet), which cannot reach it", nb.ep.NetNS, src, m.nodes[r].id)
	}
	return direct
}

// replyVia is the endpoint among cands whose interface the kernel sends a
// packet to dst out of: the longest prefix among their addresses' subnets
// (connected routes, metric 0) and their routes, then the lowest metric
// (fib_table_lookup: prefix length first, then fib_info priority). -1 when
// none covers dst.
func replyVia(nodes []node, cands []int, dst netip.Addr) int {
	r, bits, metric := -1, -1, uint32(0)
	consider := func(k int, p netip.Prefix, m uint32) {
		if !p.Masked().Contains(dst) {
			return
		}
		if p.Bits() > bits || (p.Bits() == bits && m < metric) {
			r, bits, metric = k, p.Bits(), m
		}
	}
	for _, k := range cands {
		for _, p := range nodes[k].ep.Addrs {
			consider(k, p, 0)
		}
		for _, rt := range nodes[k].ep.Routes {
			consider(k, rt.Dst, rt.Metric)
		}
	}
	return r
}

func makeNode(t Topology, ep Endpoint) node {
	m, _ := endpointModes(ep) // Validate refuses bad modes; here they are none
	n := node{ep: ep, id: EndpointID(ep), stack: stackOfEndpoint(ep), kind: strings.ToLower(ep.Kind), modes: m}
	switch n.kind {
	case KindHost:
		n.role, n.port = roleStack, t.Parent.Name
	case KindVLAN:
		n.role, n.port = roleStack, ep.Interface
	case KindOutside:
		n.role = roleOutside
	default:
		n.role, n.port = roleChild, ep.Lower
		if n.port == "" {
			n.port = t.Parent.Name
		}
	}
	return n
}

type model struct {
	t        Topology
	nodes    []node
	reflects bool
}

// carried reports whether the switch carries stack s on the parent's port.
func (m *model) carried(s capture.Stack) bool {
	if m.t.Switch.VLANs == nil || s.Len() == 0 {
		return true
	}
	return slices.Contains(m.t.Switch.VLANs, s.Tags()[0].VID)
}

// reflectsStack reports whether a frame with stack s comes back from the switch.
func (m *model) reflectsStack(s capture.Stack) bool { return m.reflects && m.carried(s) }

// onPort returns the children on a port.
func (m *model) onPort(port string) []node {
	var out []node
	for _, n := range m.nodes {
		if n.role == roleChild && n.port == port {
			out = append(out, n)
		}
	}
	return out
}

func blocked(why string, a ...any) PairExpectation {
	return PairExpectation{Reach: Blocked, Why: fmt.Sprintf(why, a...)}
}

func reach(p Path, out, in int, why string, a ...any) PairExpectation {
	return PairExpectation{Reach: Reachable, Path: p, WireOut: out, WireIn: in, Why: fmt.Sprintf(why, a...)}
}

func (m *model) pair(i, j int) PairExpectation {
	a, b := m.nodes[i], m.nodes[j]
	if a.stack != b.stack {
		return blocked("different VLANs: %s and %s frames never meet without a router", a.stack, b.stack)
	}
	if a.role == roleOutside && b.role == roleOutside {
		return reach(PathBeyond, 0, 0, "both are beyond the switch: the parent is not on their way")
	}
	if a.role == roleOutside || b.role == roleOutside {
		return m.outsidePair(a, b)
	}
	if a.kind == KindIPVlan || b.kind == KindIPVlan {
		return m.ipvlanPair(a, b)
	}
	switch {
	case a.role == roleChild && b.role == roleChild:
		if a.port != b.port {
			return m.viaSwitch(a, b, "they sit on different lowers (%s, %s): frames meet only through the switch", a.port, b.port)
		}
		return m.siblings(a, b)
	case a.role == roleChild && b.role == roleStack && a.port == b.port:
		return m.childToStack(a, b)
	case a.role == roleStack && b.role == roleChild && a.port == b.port:
		return m.stackToChild(a, b)
	case a.role == roleChild || b.role == roleChild:
		// A child and the stack of another lower with the same VLAN stack:
		// both sides' frames leave the parent, so only the switch joins them.
		return m.viaSwitch(a, b, "%s and %s share a VLAN but not a lower: frames meet only through the switch", a.id, b.id)
	}
	return m.viaSwitch(a, b, "%s and %s are separate interfaces on the parent: frames meet only through the switch", a.id, b.id)
}

// viaSwitch is a pair whose frames both leave through the parent.
func (m *model) viaSwitch(a, b node, why string, args ...any) PairExpectation {
	if !m.reflectsStack(a.stack) {
		return blocked(why+", and the switch does not send them back", args...)
	}
	return reach(PathReflected, 1, 1, why+"; the switch reflects them", args...)
}

// outsidePair: one end is beyond the switch.
func (m *model) outsidePair(a, b node) PairExpectation {
	in, out := a, b // in is ours (on the parent's side), out beyond
	toOutside := true
	if a.role == roleOutside {
		in, out, toOutside = b, a, false
	}
	wire := func(why string, args ...any) PairExpectation {
		if toOutside {
			return reach(PathWire, 1, 0, why, args...)
		}
		return reach(PathWire, 0, 1, why, args...)
	}
	if !m.carried(in.stack) {
		return blocked("the switch does not carry %s on the parent's port", in.stack)
	}
	switch in.role {
	case roleStack:
		for _, c := range m.onPort(in.port) {
			if c.macvlan == rtnl.MacvlanModePassthru {
				// macvlan_handle_frame: with a passthru port every unicast
				// frame goes to the one child (macvlan_passthru).
				return blocked("the passthru macvlan %s takes every unicast frame %s receives: its own stack gets no replies", c.id, in.port)
			}
		}
		return wire("%s talks to the switch's side directly", in.id)
	case roleChild:
		if in.kind == KindIPVlan {
			if in.ipvlan != rtnl.IPVlanModeL2 {
				// ipvlan_set_port_mode: L3 and L3S slaves have IFF_NOARP.
				return blocked("an %s ipvlan has no ARP: a station beyond the switch cannot resolve its address", in.ipvlan)
			}
			return wire("an L2 ipvlan leaves through the parent with the parent's MAC")
		}
		if in.macvlan == rtnl.MacvlanModeSource && !listed(in.ep.SourceMACs, out.ep.MAC) {
			// macvlan_handle_frame: unicast to a source-mode MAC is passed
			// to the parent (vlan->mode == MACVLAN_MODE_SOURCE); only
			// macvlan_forward_source copies frames from listed senders.
			return blocked("a source-mode macvlan only receives frames from its listed source MACs, and %s is not listed", out.id)
		}
		return wire("a macvlan reaches the outside through the parent and the switch, whatever its mode")
	}
	return blocked("unknown endpoint kind %q", in.ep.Kind)
}

func listed(list []net.HardwareAddr, mac net.HardwareAddr) bool {
	if len(mac) == 0 {
		return false
	}
	for _, m := range list {
		if capture.MACFrom(m) == capture.MACFrom(mac) {
			return true
		}
	}
	return false
}

// siblings: two macvlan/macvtap children on the same lower.
func (m *model) siblings(a, b node) PairExpectation {
	if a.macvlan == rtnl.MacvlanModePassthru || b.macvlan == rtnl.MacvlanModePassthru {
		return blocked("a passthru macvlan must be its parent's only child: this pair cannot exist")
	}
	// Frames between siblings on a VLAN lower show on the VLAN link, not on
	// the parent, when handed across locally.
	localIn := 1
	if a.port != m.t.Parent.Name {
		localIn = 0
	}
	r := m.reflectsStack(a.stack)
	switch {
	case b.macvlan == rtnl.MacvlanModeSource:
		// macvlan_handle_frame calls macvlan_forward_source first, for
		// broadcast and unicast alike: every source-mode child that lists
		// the frame's source MAC gets a copy (delivered to its stack when
		// the destination is its own MAC), whatever the sender's mode, even
		// a source-mode sender whose broadcast the same function then
		// "forwards to the original port". Nothing reaches a source child
		// otherwise (macvlan_broadcast never floods to it; unicast to its
		// MAC is passed to the lower), and the frame must come back from
		// the switch to enter the lower's receive path at all
		// (macvlan_queue_xmit short-cuts only to bridge-mode siblings).
		// Measured on 6.18 (TestModelMatchesKernel, source+source/listed):
		// two source-mode siblings that list each other talk through a
		// reflecting switch.
		if !r {
			return blocked("a source-mode macvlan only hears a sibling through a reflecting switch, and the switch does not reflect")
		}
		if !listed(b.ep.SourceMACs, a.ep.MAC) {
			return blocked("a source-mode macvlan only receives frames from its listed source MACs, and %s is not listed", a.id)
		}
		if a.macvlan == rtnl.MacvlanModeSource && !listed(a.ep.SourceMACs, b.ep.MAC) {
			return blocked("%s is listed by %s, but the replies come back only if %s is listed by %s too (a source-mode macvlan only receives from its listed source MACs)", a.id, b.id, b.id, a.id)
		}
		return reach(PathReflected, 1, 1, "the switch reflects the frames and %s is a listed source of %s", a.id, b.id)
	case a.macvlan == rtnl.MacvlanModeSource:
		// macvlan_handle_frame: a broadcast from a source-mode child that
		// comes back is "forwarded to the original port" only (after the
		// copies to source-mode children listing it, handled above), so a
		// sibling of another mode never sees its ARP request.
		return blocked("a source-mode macvlan's ARP broadcast comes back to itself (and to source-mode macvlans listing it) only, never to a sibling of another mode")
	case a.macvlan == rtnl.MacvlanModePrivate || b.macvlan == rtnl.MacvlanModePrivate:
		// macvlan_handle_frame / macvlan_process_broadcast: a reflected
		// broadcast from a private child goes back to that child only, and
		// siblings' broadcasts are never flooded to private ports, so ARP
		// never resolves. (A unicast frame with a known MAC is delivered
		// when reflected: the isolation is of broadcasts.)
		return blocked("private mode drops frames from a sibling even when the switch reflects them")
	case a.macvlan == rtnl.MacvlanModeBridge && b.macvlan == rtnl.MacvlanModeBridge:
		// macvlan_queue_xmit: bridge to bridge goes through
		// dev_forward_skb on the lower: the parent's taps see it once.
		return reach(PathLocal, 0, localIn, "bridge-mode siblings reach each other directly inside the kernel")
	case a.macvlan == rtnl.MacvlanModeVEPA && b.macvlan == rtnl.MacvlanModeVEPA:
		if !r {
			return blocked("VEPA sends every frame to the switch, and the switch does not reflect it back (hairpin off)")
		}
		return reach(PathReflected, 1, 1, "VEPA siblings reach each other through the switch, which reflects the frames (hairpin on)")
	default:
		// bridge with vepa: macvlan_queue_xmit short-cuts only when the
		// destination is bridge mode too, and macvlan_process_broadcast
		// floods a reflected bridge-mode broadcast to VEPA ports only (and a
		// reflected VEPA broadcast to bridge and VEPA ports), so the pair
		// talks through the switch, like two VEPA ports.
		if !r {
			return blocked("%s and %s modes never talk inside the kernel; the switch would have to reflect, and it does not", a.macvlan, b.macvlan)
		}
		return reach(PathReflected, 1, 1, "%s and %s modes talk through the switch, which reflects the frames", a.macvlan, b.macvlan)
	}
}

// childToStack: a macvlan to its lower's own stack (the host, or a VLAN link).
func (m *model) childToStack(a, b node) PairExpectation {
	r := m.reflectsStack(a.stack)
	switch a.macvlan {
	case rtnl.MacvlanModePassthru:
		return blocked("a passthru macvlan carries the parent's own MAC: every frame for that MAC goes to the macvlan, so %s never hears it", b.id)
	case rtnl.MacvlanModePrivate, rtnl.MacvlanModeSource:
		// macvlan_handle_frame: a reflected broadcast whose source is a
		// private (or source, passthru) child is "forwarded to the original
		// port" and consumed: the lower's stack never sees the ARP request.
		return blocked("a macvlan cannot reach its parent's own stack: the kernel never hands its frames to the parent, and in %s mode even a reflected broadcast goes back only to the sender", a.macvlan)
	}
	if !r {
		return blocked("a macvlan cannot reach its parent's own stack: the kernel never hands its frames to the parent (host-to-macvlan isolation), and the switch does not reflect them")
	}
	return reach(PathReflected, 1, 1, "the switch reflects the macvlan's frames back into the parent, which passes them to its own stack")
}

// stackToChild: a lower's own stack to a macvlan on it.
func (m *model) stackToChild(a, b node) PairExpectation {
	r := m.reflectsStack(a.stack)
	if b.macvlan == rtnl.MacvlanModePassthru {
		return blocked("a passthru macvlan carries the parent's own MAC: every frame for that MAC goes to the macvlan, so the parent's stack never gets an answer")
	}
	if !r {
		return blocked("the parent's own stack cannot reach a macvlan on it: its frames leave through the wire and the kernel never hands them to the macvlan (host-to-macvlan isolation), and the switch does not reflect them")
	}
	if b.macvlan == rtnl.MacvlanModeSource {
		// macvlan_handle_frame: a broadcast from an address no child owns
		// is flooded to every mode but source; the source child gets a copy
		// only through macvlan_forward_source.
		mac := a.ep.MAC
		if len(mac) == 0 {
			mac = m.t.Parent.MAC // a VLAN link inherits the parent's MAC
		}
		if !listed(b.ep.SourceMACs, mac) {
			return blocked("a source-mode macvlan only receives frames from its listed source MACs, and the parent's MAC is not listed")
		}
		return reach(PathReflected, 1, 1, "the switch reflects the parent's frames and the parent's MAC is a listed source")
	}
	// macvlan_process_broadcast: a reflected broadcast from an address no
	// child owns (the parent's) is flooded to private, VEPA, passthru and
	// bridge ports alike, and a unicast reply to the parent's MAC is passed
	// to its stack: so even a private child answers its host when the
	// switch reflects.
	return reach(PathReflected, 1, 1, "the switch reflects the parent's frames back, and the kernel delivers them to the macvlan like frames from any outside host")
}

// ipvlanPair: a pair with an ipvlan end (drivers/net/ipvlan, verified in
// the VM only: this machine's kernel has no ipvlan; TestModelMatchesKernelIPVlan
// on 6.1 and 6.12). All ipvlans of a parent share its mode (l2, l3, l3s)
// and flag (bridge, private, vepa). What the kernel taught the model:
//   - L3 and L3S ipvlans have IFF_NOARP (ipvlan_set_port_mode): nobody can
//     resolve their addresses, so only siblings reach them, routed inside
//     the kernel (ipvlan_xmit_mode_l3); the host stack and the outside do
//     not (no answer to their ARP: arp_rcv drops it on a NOARP device);
//   - the private flag drops a frame for another slave's address
//     (ipvlan_xmit_mode_l2/l3: ipvlan_is_private), in every mode;
//   - the VEPA flag sends even those to the switch (the local lookup is
//     skipped), so L2 siblings meet only when the switch reflects
//     (ipvlan_handle_mode_l2 → ipvlan_handle_mode_l3 delivers the
//     reflected unicast by IP), and L3 ones not at all (their frames are
//     routed by the parent's namespace, which cannot resolve a NOARP
//     address);
//   - an L2 ipvlan and the parent's own stack talk when the switch
//     reflects: a reflected broadcast from a slave is passed to the parent
//     (ipvlan_handle_mode_l2: not an "external frame", RX_HANDLER_PASS),
//     a slave's unicast for a parent address is handed to it directly
//     (ipvlan_xmit_mode_l2: dev_forward_skb to the parent, unless VEPA),
//     and the parent's reflected unicast is delivered by IP
//     (ipvlan_handle_mode_l3). Without reflection ARP never crosses.
func (m *model) ipvlanPair(a, b node) PairExpectation {
	if (a.role == roleChild && a.kind != KindIPVlan) || (b.role == roleChild && b.kind != KindIPVlan) {
		return blocked("a parent carries either macvlan or ipvlan links, never both: this pair cannot exist")
	}
	child := a
	if child.role != roleChild {
		child = b
	}
	flag := child.ipflag
	l2 := child.ipvlan == rtnl.IPVlanModeL2
	if a.role == roleChild && b.role == roleChild {
		if a.port != b.port {
			return m.viaSwitch(a, b, "the ipvlans sit on different lowers (%s, %s)", a.port, b.port)
		}
		switch {
		case flag == rtnl.IPVlanFlagPrivate:
			return blocked("private ipvlans never reach each other: the kernel drops a frame for another slave's address (ipvlan_is_private)")
		case flag == rtnl.IPVlanFlagVEPA && !l2:
			return blocked("VEPA %s ipvlans send frames for a sibling out through the parent's namespace, which cannot resolve an L3 ipvlan's address (no ARP)", child.ipvlan)
		case flag == rtnl.IPVlanFlagVEPA:
			if !m.reflectsStack(a.stack) {
				return blocked("VEPA ipvlans send frames for a sibling to the switch, and the switch does not reflect them")
			}
			return reach(PathReflected, 1, 1, "VEPA ipvlans reach each other through the switch, which reflects the frames; the parent delivers them by IP address")
		case l2:
			return reach(PathLocal, 0, 0, "ipvlan slaves on one parent reach each other inside the kernel (ipvlan_xmit_mode_l2 finds the destination among the slaves)")
		}
		return reach(PathLocal, 0, 0, "%s ipvlan slaves on one parent are routed to each other inside the kernel (ipvlan_xmit_mode_l3 finds the destination among the slaves)", child.ipvlan)
	}
	// The parent's own stack with one of its ipvlans.
	if !l2 {
		return blocked("an %s ipvlan has no ARP: the parent's own stack cannot resolve its address, so their replies never find each other (host-to-ipvlan isolation)", child.ipvlan)
	}
	if !m.reflectsStack(a.stack) {
		return blocked("an L2 ipvlan's ARP broadcast and its parent's leave through the wire, and the switch does not reflect them (host-to-ipvlan isolation)")
	}
	if a.role == roleChild && flag != rtnl.IPVlanFlagVEPA {
		return reach(PathLocal, 0, 1, "the switch reflects the ARP broadcasts, and the kernel hands an L2 ipvlan's unicast for a parent address straight to the parent (ipvlan_xmit_mode_l2)")
	}
	return reach(PathReflected, 1, 1, "the switch reflects the frames, and the parent passes a reflected ipvlan broadcast to its own stack and delivers unicast to the ipvlan by IP address")
}

// sources lists the MACs allowed as sources on the parent's wire.
func (m *model) sources() []SourceRule {
	var out []SourceRule
	seen := map[SourceRule]bool{}
	add := func(r SourceRule) {
		if r.MAC.IsZero() || seen[r] {
			return
		}
		seen[r] = true
		out = append(out, r)
	}
	parent := capture.MACFrom(m.t.Parent.MAC)
	for _, n := range m.nodes {
		mac := capture.MACFrom(n.ep.MAC)
		switch {
		case n.role == roleOutside:
			add(SourceRule{MAC: mac, Stack: n.stack, Owner: n.id, Outside: true})
		case n.macvlan == rtnl.MacvlanModePassthru || n.kind == KindIPVlan:
			// A passthru child and ipvlan slaves send with the parent's MAC.
			if !parent.IsZero() {
				mac = parent
			}
			add(SourceRule{MAC: mac, Stack: n.stack, Owner: n.id})
		default:
			add(SourceRule{MAC: mac, Stack: n.stack, Owner: n.id})
		}
	}
	// VLAN links send with the parent's MAC (unless given their own) and
	// their tag stack: credit those frames to the link, an endpoint or a
	// mere lower (Topology.VLANLinks).
	vlanLink := func(ep Endpoint) {
		mac := capture.MACFrom(ep.MAC)
		if mac.IsZero() {
			mac = parent
		}
		add(SourceRule{MAC: mac, Stack: stackOfEndpoint(ep), Owner: EndpointID(ep)})
	}
	for _, n := range m.nodes {
		if n.kind == KindVLAN {
			vlanLink(n.ep)
		}
	}
	for _, l := range m.t.VLANLinks {
		vlanLink(l)
	}
	if !parent.IsZero() {
		owner := EndpointID(Endpoint{NetNS: m.t.Parent.NetNS, Interface: m.t.Parent.Name})
		add(SourceRule{MAC: parent, Stack: capture.Stack{}, Owner: owner})
		// VLAN links inherit the parent's MAC, and one with no address of
		// its own (a lower for macvlans only, not an endpoint) still answers
		// ARP for the host's addresses on its VLAN (arp_ignore 0): the
		// parent's MAC may appear with every stack of the topology.
		for _, n := range m.nodes {
			if n.role != roleOutside && n.stack.Len() > 0 {
				add(SourceRule{MAC: parent, Stack: n.stack, Owner: owner})
			}
		}
	}
	return out
}
