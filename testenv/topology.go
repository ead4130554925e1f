package testenv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// The wiring every link test needs, in the shape of a real deployment:
//
//	host-under-test netns          switch netns
//	  p0 (the parent) ───veth─── up0 ─┐
//	                                  br0 (Linux bridge; up0 hairpin on/off)
//	  endpoint netns: eth0 ──veth─ s1 ┘  (optional stations on the switch)
//
// Sub-interfaces (macvlan, VLAN…) go on p0 and are moved into endpoint
// namespaces standing in for containers; the switch plays the external
// switch, including the reflective relay VEPA needs.

// Defaults of the names the building blocks use.
const (
	DefaultParent = "p0"  // the parent interface in the host namespace
	SwitchBridge  = "br0" // the bridge in the switch namespace
	SwitchUplink  = "up0" // the switch port the parent is plugged into
	EndpointIface = "eth0"
)

// ParentOptions configure NewParent. The zero value is a parent p0 in a new
// namespace, plugged into a new switch without hairpin.
type ParentOptions struct {
	// Name is the parent's interface name; default "p0".
	Name string
	// Host is the namespace of the host under test; nil creates one.
	Host *NetNS
	// MAC is the parent's address; nil lets the kernel choose.
	MAC net.HardwareAddr
	// Addrs are the host stack's own addresses on the parent.
	Addrs []netip.Prefix
	// Hairpin makes the switch reflect frames back out of the parent's
	// port from the start (see Switch.SetHairpin).
	Hairpin bool
}

func (o *ParentOptions) validate() error {
	if o.Name == "" {
		o.Name = DefaultParent
	}
	if err := validName("ParentOptions.Name", o.Name); err != nil {
		return err
	}
	if o.MAC != nil && (len(o.MAC) != 6 || o.MAC[0]&1 != 0) {
		return fmt.Errorf("ParentOptions.MAC %v is not a unicast Ethernet address: use e.g. 02:00:00:00:00:01", o.MAC)
	}
	for _, a := range o.Addrs {
		if !a.IsValid() {
			return errors.New("ParentOptions.Addrs has an invalid prefix: use netip.MustParsePrefix(\"10.0.0.1/24\")")
		}
	}
	return nil
}

// Parent is a veth "parent" interface in the host namespace whose other end
// is a port of a Linux bridge in its own switch namespace.
type Parent struct {
	Host   *NetNS // the namespace of the host under test
	Name   string // the parent interface, e.g. "p0"
	Index  uint32
	MAC    net.HardwareAddr
	Switch *Switch
}

// Switch is a Linux bridge in a namespace of its own: the device at the
// far end of the parent's wire.
type Switch struct {
	NS     *NetNS
	Bridge string // "br0"
	Uplink string // the port facing the parent, "up0"
	// VLANFiltering is true for a VLAN-aware switch (NewVLANSwitch).
	VLANFiltering bool

	mu    sync.Mutex
	ports int
}

// NewParent builds a host namespace (or uses opts.Host) with a parent
// interface wired to a fresh switch. Everything is up; everything is removed
// when the test ends. It requires privileges, veth and bridge.
func NewParent(tb testing.TB, opts ParentOptions) *Parent {
	tb.Helper()
	if err := opts.validate(); err != nil {
		tb.Fatalf("testenv: NewParent: %v", err)
	}
	Require(tb, FeaturePrivileged, FeatureVeth, FeatureBridge)
	return newParent(tb, opts, false)
}

func newParent(tb testing.TB, opts ParentOptions, vlanFiltering bool) *Parent {
	tb.Helper()
	host := opts.Host
	if host == nil {
		host = NewNetNS(tb)
	}
	sw := newSwitch(tb, vlanFiltering)
	// The veth is created from the switch's side with the parent end sent
	// to the host namespace: the host sees one new link, named as asked.
	uplink := newVethTo(tb, sw.NS.conn(tb), "switch "+sw.NS.Name(), sw.Uplink, nil, host, opts.Name)
	sw.enslave(tb, uplink, sw.Uplink)
	if opts.Hairpin {
		if err := sw.SetHairpin(true); err != nil {
			tb.Fatalf("testenv: %v", err)
		}
	}
	ctx, cancel := stepCtx()
	defer cancel()
	hc := host.conn(tb)
	change := &rtnl.LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP, Attrs: rtnl.LinkAttrs{Name: opts.Name, Address: opts.MAC}}
	if err := hc.SetLink(ctx, change); err != nil {
		tb.Fatalf("testenv: netns %s: set parent %s up: %v", host.Name(), opts.Name, err)
	}
	host.AddAddr(tb, opts.Name, opts.Addrs...)
	l := host.Link(tb, opts.Name)
	return &Parent{Host: host, Name: opts.Name, Index: uint32(l.Index), MAC: l.Attrs.Address, Switch: sw}
}

func newSwitch(tb testing.TB, vlanFiltering bool) *Switch {
	tb.Helper()
	sw := &Switch{NS: NewNetNS(tb), Bridge: SwitchBridge, Uplink: SwitchUplink, VLANFiltering: vlanFiltering}
	ctx, cancel := stepCtx()
	defer cancel()
	c := sw.NS.conn(tb)
	stpOff := uint32(0)
	br := &rtnl.Bridge{STPState: &stpOff}
	if vlanFiltering {
		on := true
		br.VLANFiltering = &on
	}
	m := &rtnl.LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP,
		Attrs: rtnl.LinkAttrs{Name: sw.Bridge, Info: &rtnl.LinkInfo{Kind: "bridge", Data: br}}}
	if err := c.NewLink(ctx, m, netlinkCreateExcl); err != nil {
		tb.Fatalf("testenv: switch %s: create bridge %s: %v", sw.NS.Name(), sw.Bridge, err)
	}
	return sw
}

// enslave plugs the link index (called name) into the bridge.
func (s *Switch) enslave(tb testing.TB, index uint32, name string) {
	tb.Helper()
	ctx, cancel := stepCtx()
	defer cancel()
	c := s.NS.conn(tb)
	br, err := c.GetLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: s.Bridge}})
	if err != nil {
		tb.Fatalf("testenv: switch %s: get %s: %v", s.NS.Name(), s.Bridge, err)
	}
	master := uint32(br.Index)
	if err := c.SetLink(ctx, &rtnl.LinkMessage{Index: int32(index), Attrs: rtnl.LinkAttrs{Master: &master}}); err != nil {
		tb.Fatalf("testenv: switch %s: plug %s into %s: %v", s.NS.Name(), name, s.Bridge, err)
	}
}

// SetHairpin turns the reflective relay on the parent's port on or off:
// with hairpin on, the bridge sends a frame back out of the port it came
// in on, as an 802.1Qbg switch does for VEPA, so macvlans in vepa mode on
// the parent can reach each other through the switch.
func (s *Switch) SetHairpin(on bool) error {
	ctx, cancel := stepCtx()
	defer cancel()
	c, err := rtnl.Dial(&rtnl.DialOptions{NetNS: s.NS.FD()})
	if err != nil {
		return fmt.Errorf("switch %s: set hairpin: %w", s.NS.Name(), err)
	}
	defer c.Close()
	m := &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: s.Uplink,
		Info: &rtnl.LinkInfo{SlaveKind: "bridge", SlaveData: &rtnl.BridgePort{Hairpin: &on}}}}
	if err := c.SetLink(ctx, m); err != nil {
		return fmt.Errorf("switch %s: set hairpin %v on %s: %w", s.NS.Name(), on, s.Uplink, err)
	}
	return nil
}

// Hairpin reads the parent's port's hairpin setting back from the kernel.
func (s *Switch) Hairpin() (bool, error) {
	ctx, cancel := stepCtx()
	defer cancel()
	c, err := rtnl.Dial(&rtnl.DialOptions{NetNS: s.NS.FD()})
	if err != nil {
		return false, fmt.Errorf("switch %s: read hairpin: %w", s.NS.Name(), err)
	}
	defer c.Close()
	l, err := c.GetLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: s.Uplink}})
	if err != nil {
		return false, fmt.Errorf("switch %s: read hairpin of %s: %w", s.NS.Name(), s.Uplink, err)
	}
	if l.Attrs.Info == nil || l.Attrs.Info.SlaveKind != "bridge" {
		return false, fmt.Errorf("switch %s: %s is not a bridge port", s.NS.Name(), s.Uplink)
	}
	p, ok := l.Attrs.Info.SlaveData.(*rtnl.BridgePort)
	if !ok || p.Hairpin == nil {
		return false, fmt.Errorf("switch %s: the kernel reported no hairpin mode for %s", s.NS.Name(), s.Uplink)
	}
	return *p.Hairpin, nil
}

// Endpoint is a namespace standing in for a container, or a station
// plugged into the switch (Switch.Attach).
type Endpoint struct {
	*NetNS
	// Interface is the endpoint's interface ("eth0" for a station; for a
	// container stand-in, whatever the test moves in).
	Interface string
	MAC       net.HardwareAddr
	Addrs     []netip.Prefix
	// Port is the switch port of a station ("" for a container stand-in).
	Port string
}

// NewEndpoint creates an empty namespace (lo up) standing in for a
// container: the test moves a sub-interface of the parent into it.
func NewEndpoint(tb testing.TB) *Endpoint {
	tb.Helper()
	n := NewNetNS(tb)
	n.SetUp(tb, "lo")
	return &Endpoint{NetNS: n}
}

// EndpointOptions configure Switch.Attach.
type EndpointOptions struct {
	// MAC of the station's eth0; nil lets the kernel choose.
	MAC   net.HardwareAddr
	Addrs []netip.Prefix
	// PVID makes the port an access port of this VLAN (untagged, pvid) on
	// a VLAN-aware switch. Required there; must be 0 on a plain switch.
	PVID uint16
}

// Attach plugs a new station into the switch: a namespace whose eth0 is
// wired to a new bridge port, up, with opts.Addrs.
func (s *Switch) Attach(tb testing.TB, opts EndpointOptions) *Endpoint {
	tb.Helper()
	switch {
	case s.VLANFiltering && (opts.PVID == 0 || opts.PVID > 4094):
		tb.Fatalf("testenv: Attach: EndpointOptions.PVID %d: a VLAN-aware switch needs the access VLAN, 1-4094", opts.PVID)
	case !s.VLANFiltering && opts.PVID != 0:
		tb.Fatalf("testenv: Attach: EndpointOptions.PVID %d on a switch without VLAN filtering: use NewVLANSwitch", opts.PVID)
	}
	e := NewEndpoint(tb)
	port := s.nextPort()
	idx := newVethTo(tb, s.NS.conn(tb), "switch "+s.NS.Name(), port, nil, e.NetNS, EndpointIface)
	s.enslave(tb, idx, port)
	if s.VLANFiltering {
		s.setVLANs(tb, idx, port, opts.PVID, nil)
	}
	ctx, cancel := stepCtx()
	defer cancel()
	change := &rtnl.LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP, Attrs: rtnl.LinkAttrs{Name: EndpointIface, Address: opts.MAC}}
	if err := e.conn(tb).SetLink(ctx, change); err != nil {
		tb.Fatalf("testenv: netns %s: set %s up: %v", e.Name(), EndpointIface, err)
	}
	e.AddAddr(tb, EndpointIface, opts.Addrs...)
	e.Interface, e.Port, e.Addrs = EndpointIface, port, opts.Addrs
	e.MAC = e.Link(tb, EndpointIface).Attrs.Address
	return e
}

func (s *Switch) nextPort() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ports++
	return fmt.Sprintf("s%d", s.ports)
}

// Bridge VLAN membership (what `bridge vlan add` sends): RTM_SETLINK /
// RTM_DELLINK with family AF_BRIDGE and IFLA_AF_SPEC holding
// IFLA_BRIDGE_VLAN_INFO {u16 flags; u16 vid}.
const (
	iflaBridgeVLANInfo     = 2 // IFLA_BRIDGE_VLAN_INFO
	bridgeVLANInfoPVID     = 2 // BRIDGE_VLAN_INFO_PVID
	bridgeVLANInfoUntagged = 4 // BRIDGE_VLAN_INFO_UNTAGGED
	defaultPVID            = 1 // the bridge puts every new port in VLAN 1
)

func bridgeVLANSpec(vid, flags uint16) []byte {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint16(b[0:], 8) // nla_len
	binary.NativeEndian.PutUint16(b[2:], iflaBridgeVLANInfo)
	binary.NativeEndian.PutUint16(b[4:], flags)
	binary.NativeEndian.PutUint16(b[6:], vid)
	return b
}

// setVLANs makes port an access port of pvid (untagged; 0 for none) and a
// tagged member of tagged, removing the default VLAN 1 unless asked for.
func (s *Switch) setVLANs(tb testing.TB, index uint32, port string, pvid uint16, tagged []uint16) {
	tb.Helper()
	ctx, cancel := stepCtx()
	defer cancel()
	c := s.NS.conn(tb)
	req := func(typ uint16, vid, flags uint16) {
		m := &rtnl.LinkMessage{Family: unix.AF_BRIDGE, Index: int32(index), Attrs: rtnl.LinkAttrs{AFSpec: bridgeVLANSpec(vid, flags)}}
		if _, err := c.Execute(ctx, netlinkType(typ), 0, m); err != nil {
			tb.Fatalf("testenv: switch %s: bridge vlan %s dev %s vid %d: %v", s.NS.Name(), map[uint16]string{unix.RTM_SETLINK: "add", unix.RTM_DELLINK: "del"}[typ], port, vid, err)
		}
	}
	if pvid != defaultPVID && !slices.Contains(tagged, defaultPVID) {
		req(unix.RTM_DELLINK, defaultPVID, 0)
	}
	if pvid != 0 {
		req(unix.RTM_SETLINK, pvid, bridgeVLANInfoPVID|bridgeVLANInfoUntagged)
	}
	for _, vid := range tagged {
		if vid != pvid {
			req(unix.RTM_SETLINK, vid, 0)
		}
	}
}

// VLANSwitchOptions configure NewVLANSwitch.
type VLANSwitchOptions struct {
	Parent ParentOptions
	// Trunk are the VLANs the parent's port carries tagged (1-4094).
	Trunk []uint16
	// Native, if not 0, is carried untagged on the parent's port too.
	Native uint16
}

func validVIDs(field string, vids []uint16) error {
	seen := map[uint16]bool{}
	for _, v := range vids {
		if v == 0 || v > 4094 {
			return fmt.Errorf("%s has VLAN %d: bridge VLANs are 1-4094", field, v)
		}
		if seen[v] {
			return fmt.Errorf("%s lists VLAN %d twice", field, v)
		}
		seen[v] = true
	}
	return nil
}

// NewVLANSwitch is NewParent with a VLAN-aware switch (bridge
// vlan_filtering 1): the parent's port is a trunk carrying opts.Trunk
// tagged (and opts.Native untagged); stations attach as access ports
// (Switch.Attach with PVID). It requires bridge VLAN filtering, which this
// machine's kernel lacks; the VM's have it.
func NewVLANSwitch(tb testing.TB, opts VLANSwitchOptions) *Parent {
	tb.Helper()
	if err := opts.Parent.validate(); err != nil {
		tb.Fatalf("testenv: NewVLANSwitch: %v", err)
	}
	if err := validVIDs("VLANSwitchOptions.Trunk", opts.Trunk); err != nil {
		tb.Fatalf("testenv: NewVLANSwitch: %v", err)
	}
	if opts.Native > 4094 {
		tb.Fatalf("testenv: NewVLANSwitch: VLANSwitchOptions.Native %d: bridge VLANs are 1-4094 (0 for none)", opts.Native)
	}
	Require(tb, FeaturePrivileged, FeatureVeth, FeatureBridge, FeatureBridgeVLAN)
	p := newParent(tb, opts.Parent, true)
	sw := p.Switch
	up := sw.NS.Link(tb, sw.Uplink)
	sw.setVLANs(tb, uint32(up.Index), sw.Uplink, opts.Native, opts.Trunk)
	return p
}

// RouterVLAN is one leg of a router: a VLAN and the router's addresses on it.
type RouterVLAN struct {
	VID   uint16
	Addrs []netip.Prefix
}

// Router is a namespace routing between VLANs: its trunk (eth0) is a
// switch port tagged for every VLAN, with one 802.1Q sub-interface
// (eth0.VID) per VLAN, and forwarding on.
type Router struct {
	*NetNS
	Trunk      string            // "eth0"
	Interfaces map[uint16]string // VID -> "eth0.VID"
	Port       string            // its switch port
}

// NewRouter plugs a router into the switch with one leg per VLAN. It
// requires 8021q (the VM tier). On a VLAN-aware switch its port is a trunk
// for those VLANs; a plain bridge carries the tags as they are.
func NewRouter(tb testing.TB, sw *Switch, legs []RouterVLAN) *Router {
	tb.Helper()
	var vids []uint16
	for _, l := range legs {
		vids = append(vids, l.VID)
	}
	if err := validVIDs("RouterVLAN.VID", vids); err != nil {
		tb.Fatalf("testenv: NewRouter: %v", err)
	}
	if len(legs) == 0 {
		tb.Fatal("testenv: NewRouter: no RouterVLAN: give at least one VLAN to route")
	}
	Require(tb, FeaturePrivileged, FeatureVeth, FeatureVLAN)
	r := &Router{NetNS: NewNetNS(tb), Trunk: EndpointIface, Interfaces: map[uint16]string{}}
	r.SetUp(tb, "lo")
	r.Port = sw.nextPort()
	idx := newVethTo(tb, sw.NS.conn(tb), "switch "+sw.NS.Name(), r.Port, nil, r.NetNS, r.Trunk)
	sw.enslave(tb, idx, r.Port)
	if sw.VLANFiltering {
		sw.setVLANs(tb, idx, r.Port, 0, vids)
	}
	ctx, cancel := stepCtx()
	defer cancel()
	c := r.conn(tb)
	r.SetUp(tb, r.Trunk)
	trunk := uint32(r.Link(tb, r.Trunk).Index)
	for _, l := range legs {
		name := fmt.Sprintf("%s.%d", r.Trunk, l.VID)
		id, proto := l.VID, rtnl.VLANProtocol8021Q
		m := &rtnl.LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP, Attrs: rtnl.LinkAttrs{Name: name, Link: &trunk,
			Info: &rtnl.LinkInfo{Kind: "vlan", Data: &rtnl.VLAN{ID: &id, Protocol: &proto}}}}
		if err := c.NewLink(ctx, m, netlinkCreateExcl); err != nil {
			tb.Fatalf("testenv: router %s: create %s: %v", r.Name(), name, err)
		}
		r.AddAddr(tb, name, l.Addrs...)
		r.Interfaces[l.VID] = name
	}
	for _, key := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		if err := r.WriteSysctl(key, "1"); err != nil {
			tb.Fatalf("testenv: router: %v", err)
		}
	}
	return r
}
