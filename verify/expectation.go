package verify

import (
	"fmt"

	"github.com/vmlink/vmlink/verify/capture"
)

// Reach is a reachability verdict for one ordered pair of endpoints: what
// the model expects, or what the probes observed. The zero value is not a
// verdict.
type Reach uint8

// Verdicts. The model only says Reachable or Blocked; probes can also end in
// ProbeError (the probe itself failed) or NotProbed (nothing could be sent:
// no IPv4 address, or a macvtap with nobody behind its queue).
const (
	Reachable Reach = iota + 1
	Blocked
	ProbeError
	NotProbed
)

// String is the word reports use: reachable, blocked, error, not-probed.
func (r Reach) String() string {
	switch r {
	case Reachable:
		return "reachable"
	case Blocked:
		return "blocked"
	case ProbeError:
		return "error"
	case NotProbed:
		return "not-probed"
	}
	return fmt.Sprintf("Reach(%d)", uint8(r))
}

// Symbol is the one-character matrix cell: + reachable, - blocked,
// ! probe error, ? not probed.
func (r Reach) Symbol() string {
	switch r {
	case Reachable:
		return "+"
	case Blocked:
		return "-"
	case ProbeError:
		return "!"
	case NotProbed:
		return "?"
	}
	return " "
}

// MarshalText implements encoding.TextMarshaler.
func (r Reach) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Path says how a frame from one endpoint travels to another.
type Path uint8

// Paths. The zero value means the frame has no way to arrive.
const (
	PathNone      Path = iota // never delivered
	PathLocal                 // handed across inside the kernel (bridge mode, ipvlan)
	PathReflected             // out of the parent and back from a reflecting switch
	PathWire                  // between the parent and the far side of the switch
	PathBeyond                // both ends are beyond the switch: the parent is not on the way
)

// String names the path.
func (p Path) String() string {
	switch p {
	case PathNone:
		return "none"
	case PathLocal:
		return "local"
	case PathReflected:
		return "reflected"
	case PathWire:
		return "wire"
	case PathBeyond:
		return "beyond"
	}
	return fmt.Sprintf("Path(%d)", uint8(p))
}

// MarshalText implements encoding.TextMarshaler.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Expectation is what the model says a topology should do: per ordered pair
// of endpoints, reachability with the reason, and the wire evidence a capture
// on the parent should show.
type Expectation struct {
	// SwitchReflects is the switch behaviour the expectation assumes.
	// ReflectsKnown is false when Topology.Switch.Reflects was nil: the
	// model then assumed a switch that does not reflect.
	SwitchReflects bool
	ReflectsKnown  bool
	// Endpoints are the topology's endpoints in order, with the host stack
	// (from Parent.Addrs) appended when the topology did not list it.
	Endpoints []Endpoint
	// Pairs holds every ordered pair (From != To), From-major.
	Pairs []PairExpectation
	// Sources are the source MACs allowed on the parent's wire and the VLAN
	// stack each must carry.
	Sources []SourceRule
	// Promisc is what each passthru child's lower must be: promiscuous
	// unless the child has nopromisc.
	Promisc []PromiscRule
}

// PromiscRule is the model's word on a lower's promiscuous mode: a
// passthru macvlan puts its lower in promiscuous mode when it comes up
// (macvlan_open: dev_set_promiscuity(lowerdev, 1) unless
// MACVLAN_FLAG_NOPROMISC), since it takes every frame on the wire.
type PromiscRule struct {
	Port  string // the lower's interface name, in the parent's namespace
	Owner string // the passthru child's endpoint ID
	Want  bool   // promiscuous
	Why   string
}

// PairExpectation is the model's verdict for one ordered pair: can From
// reach To (From's request answered by To), and why.
type PairExpectation struct {
	From, To int // indices into Expectation.Endpoints
	Reach    Reach
	Why      string
	// Path is how a unicast frame from From to To travels.
	Path Path
	// WireOut and WireIn are how often one unicast frame from From to To
	// shows on a capture of the parent, sent and received. A bridge-mode
	// sibling's frame shows once, inbound (dev_forward_skb hands it to the
	// parent's receive path); a VEPA frame leaves once and comes back once
	// when the switch reflects it. Meaningful when the frame is sent at all.
	WireOut, WireIn int
	// IPv6 is the verdict for a probe in IPv6. It differs from the IPv4
	// one where Linux's weak host answers ARP on any interface for any of
	// a namespace's addresses (arp_ignore 0): neighbour solicitations are
	// answered only for addresses of the interface they arrive on
	// (ndisc_recv_ns: ipv6_get_ifaddr with strict matching), so IPv6 has
	// only the link-level verdict.
	IPv6 PairVerdict
}

// PairVerdict is one verdict with its reason and wire path.
type PairVerdict struct {
	Reach           Reach
	Why             string
	Path            Path
	WireOut, WireIn int
}

// SourceRule is one MAC allowed as a source on the parent's wire.
type SourceRule struct {
	MAC   capture.MAC
	Stack capture.Stack // the VLAN stack its frames carry
	Owner string        // endpoint ID, "NETNS/IFNAME"
	// Outside marks a MAC beyond the switch: its frames arrive, never leave.
	Outside bool
}

// Pair returns the expectation for from → to, or nil.
func (e *Expectation) Pair(from, to int) *PairExpectation {
	n := len(e.Endpoints)
	if from < 0 || to < 0 || from >= n || to >= n || from == to {
		return nil
	}
	i := from*(n-1) + to
	if to > from {
		i--
	}
	return &e.Pairs[i]
}
