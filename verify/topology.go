package verify

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vmlink/vmlink/rtnl"
)

// Topology is what verify judges: one parent interface, the sub-interfaces
// stacked on it (each the interface of an endpoint), the parent's own host
// stack, and what the switch at the other end of the parent's wire does.
//
// It is plain data so that every source of a topology produces the same
// thing: dataplane's topology files and labs, discovery on a live parent
// (`vmlink verify --parent h0`), and tests.
type Topology struct {
	Parent    Parent
	Switch    Switch
	Endpoints []Endpoint
	// VLANLinks are VLAN links stacked on the parent that are no endpoint
	// of their own (no address: lowers for macvlans, or unused). They take
	// no part in the reachability matrix, but their own frames (IPv6
	// router and neighbour solicitations, ARP answers for the host's
	// addresses) carry the parent's MAC with their tag stack on the wire,
	// and the MAC checks credit those frames to them. Each has Kind "vlan",
	// NetNS, Interface, VLANs and, when it differs from the parent's, MAC.
	VLANLinks []Endpoint
	// Search says where discovery looked (nil for a topology that was not
	// discovered), for the message when it found nothing.
	Search *Search
}

// Parent is the interface every endpoint's frames cross, and where verify
// captures.
type Parent struct {
	Name  string // interface name, e.g. "eth0"
	NetNS string // named namespace holding it; "" is the caller's namespace
	MAC   net.HardwareAddr
	// Addrs are the parent's own addresses: the host stack as an endpoint.
	// Empty means the host takes no part in the reachability matrix.
	Addrs []netip.Prefix
}

// Switch describes the device at the far end of the parent's wire.
type Switch struct {
	// Reflects says whether the switch sends a frame back out of the port
	// it came in on (a Linux bridge port with hairpin on: the reflective
	// relay VEPA needs). nil means unknown: verify detects it.
	Reflects *bool
	// ReflectsFrom says where a set Reflects came from, for the report
	// ("given with --reflects"); empty means the topology.
	ReflectsFrom string
	// VLANs the switch carries on the parent's port; nil means all.
	VLANs []uint16
}

// Endpoint is one interface whose reachability verify checks: a
// container stand-in's sub-interface, or the host itself (Kind "host",
// the parent's own stack).
type Endpoint struct {
	Name      string // what reports call it: "container1", "host"
	NetNS     string // named namespace holding Interface
	Interface string // interface name inside NetNS
	// Kind is the leaf link's kind: "macvlan", "macvtap", "ipvlan",
	// "vlan" or "host".
	Kind string
	// Mode is the macvlan/macvtap mode (bridge, private, vepa, passthru,
	// source) or the ipvlan mode (l2, l3, l3s); "" for vlan and host.
	Mode string
	// IPVlanFlag is an ipvlan's port flag: bridge (the default, ""),
	// private or vepa. It is the parent's: all ipvlans on it share it.
	IPVlanFlag string
	NoPromisc  bool               // passthru's nopromisc flag
	SourceMACs []net.HardwareAddr // source mode's allowed senders
	// VLANs is the tag stack this endpoint's frames carry on the parent,
	// outermost first; empty for an untagged endpoint. A macvlan on eth0.10
	// has Kind "macvlan" and VLANs [{ID: 10, Protocol: 0x8100}].
	VLANs []VLANTag
	// Lower is the interface the leaf link sits on, when it is not Parent
	// itself (e.g. "eth0.10"); endpoints sharing a Lower are siblings.
	Lower string
	MAC   net.HardwareAddr
	Addrs []netip.Prefix
	// Namespace identifies NetNS for good (inode, process, container),
	// when discovery found the endpoint; nil otherwise.
	Namespace *NetNSIdentity
	// Routes are the IPv4 destinations the endpoint's namespace routes out
	// of this interface besides its addresses' own subnets (a host shim's
	// routes to the containers). The model sends a namespace's replies out
	// of the interface the kernel would: longest prefix, then lowest metric.
	Routes []Route
}

// Route is a route of an endpoint's namespace through its interface.
type Route struct {
	Dst    netip.Prefix
	Metric uint32
}

// VLANTag is one 802.1Q/802.1ad tag of an endpoint's stack.
type VLANTag struct {
	ID       uint16
	Protocol rtnl.VLANProtocol // TPID: 0x8100 (802.1Q) or 0x88a8 (802.1ad)
}

// modes is an endpoint's Mode and IPVlanFlag in rtnl's typed vocabulary.
type modes struct {
	macvlan rtnl.MacvlanMode // macvlan and macvtap endpoints
	ipvlan  rtnl.IPVlanMode  // ipvlan endpoints: "" is the kernel's default, l3
	ipflag  rtnl.IPVlanFlags // ipvlan endpoints: "" is bridge
}

// endpointModes is the one place verify turns an endpoint's mode words
// (iproute2's, any case) into values; other kinds have none.
func endpointModes(ep Endpoint) (modes, error) {
	var m modes
	var err error
	switch strings.ToLower(ep.Kind) {
	case KindMacvlan, KindMacvtap:
		if m.macvlan, err = rtnl.ParseMacvlanMode(strings.ToLower(ep.Mode)); err != nil {
			return m, fmt.Errorf("Mode %q: %w", ep.Mode, err)
		}
	case KindIPVlan:
		m.ipvlan, m.ipflag = rtnl.IPVlanModeL3, rtnl.IPVlanFlagBridge
		if ep.Mode != "" {
			if m.ipvlan, err = rtnl.ParseIPVlanMode(strings.ToLower(ep.Mode)); err != nil {
				return m, fmt.Errorf("Mode %q: %w", ep.Mode, err)
			}
		}
		if ep.IPVlanFlag != "" {
			if m.ipflag, err = rtnl.ParseIPVlanFlags(strings.ToLower(ep.IPVlanFlag)); err != nil {
				return m, fmt.Errorf("IPVlanFlag %q: %w", ep.IPVlanFlag, err)
			}
		}
	}
	return m, nil
}

// macvlanMode is a macvlan or macvtap endpoint's mode (zero for other
// kinds and for a mode Validate would refuse).
func (ep Endpoint) macvlanMode() rtnl.MacvlanMode {
	m, _ := endpointModes(ep)
	return m.macvlan
}
