package dataplane

// This file is the topology file's schema: the YAML document `vmlink up
// -f`, the labs and the verifier's --topology read (Topology and its
// parts), Parse and Validate. (The behaviour the verifier expects of a
// built topology is verify.Model, another thing.)

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
)

// Topology is a whole data path: the namespace holding the parents (the
// "host"), the parents, the networks on them, the endpoints attached to the
// networks and the host shims. It is what a topology file (YAML) holds.
type Topology struct {
	// Name identifies the topology: it is part of every ownership mark and
	// names the state file. Letters, digits, '-', '_' and '.'.
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Host is the named namespace holding the parents and the host stack;
	// "" is the caller's namespace. A namespace that does not exist is
	// created (and then owned by the topology).
	Host      string     `yaml:"host,omitempty" json:"host,omitempty"`
	Parents   []Parent   `yaml:"parents,omitempty" json:"parents,omitempty"`
	Networks  []Network  `yaml:"networks,omitempty" json:"networks,omitempty"`
	Endpoints []Endpoint `yaml:"endpoints,omitempty" json:"endpoints,omitempty"`
	HostShims []HostShim `yaml:"host_shims,omitempty" json:"host_shims,omitempty"`
}

// Parent is an interface in Host that networks sit on: an existing one
// (eth0) or, with Sandbox, a veth created for the topology whose peer is a
// port of a Linux bridge in a switch namespace — a wire to a switch
// without touching any real NIC.
type Parent struct {
	Name    string   `yaml:"name" json:"name"`
	Sandbox *Sandbox `yaml:"sandbox,omitempty" json:"sandbox,omitempty"`
	// Addresses are the host stack's addresses on the parent (CIDR).
	Addresses []string `yaml:"addresses,omitempty" json:"addresses,omitempty"`
	MTU       uint32   `yaml:"mtu,omitempty" json:"mtu,omitempty"`
}

// Sandbox is a veth parent's far end: a port named like the parent on a
// bridge in the Switch namespace.
type Sandbox struct {
	// Switch is the namespace holding the bridge; parents may share one.
	Switch string `yaml:"switch" json:"switch"`
	// Bridge is the bridge's name in Switch; default "br-" + parent.
	Bridge string `yaml:"bridge,omitempty" json:"bridge,omitempty"`
	// Hairpin makes the port reflect frames back where they came from:
	// the reflective relay VEPA needs.
	Hairpin bool `yaml:"hairpin,omitempty" json:"hairpin,omitempty"`
	// Addresses (CIDR) go on the bridge: a host beyond the switch (verify's
	// "outside" endpoint), e.g. the peer a passthru container talks to.
	Addresses []string `yaml:"addresses,omitempty" json:"addresses,omitempty"`
	// MAC is the bridge's address (the outside host's), e.g. to list it in a
	// source-mode interface's source_macs; default random.
	MAC string `yaml:"mac,omitempty" json:"mac,omitempty"`
}

// Network is a docker-style network: a driver and mode on a parent, with
// the subnets endpoint addresses come from.
type Network struct {
	Name string `yaml:"name" json:"name"`
	// Driver is macvlan (default), macvtap or ipvlan.
	Driver string `yaml:"driver,omitempty" json:"driver,omitempty"`
	// Mode is the macvlan/macvtap mode (bridge default, private, vepa,
	// passthru, source) or the ipvlan mode (l2, l3 default, l3s).
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// Parent is a parent's name, an existing interface in Host, or "X.N":
	// VLAN N on X, created when missing (docker's auto-VLAN parent).
	Parent string `yaml:"parent" json:"parent"`
	// Subnets (CIDR, IPv4 and/or IPv6) addresses are allocated from.
	Subnets []string `yaml:"subnets,omitempty" json:"subnets,omitempty"`
	// Gateways (one per family at most): endpoints get a default route via
	// the gateway of each family.
	Gateways []string `yaml:"gateways,omitempty" json:"gateways,omitempty"`
	// IPRange narrows allocation inside a subnet (CIDR).
	IPRange   []string `yaml:"ip_range,omitempty" json:"ip_range,omitempty"`
	NoPromisc bool     `yaml:"nopromisc,omitempty" json:"nopromisc,omitempty"`
	NoDst     bool     `yaml:"nodst,omitempty" json:"nodst,omitempty"`
}

// Endpoint is a container stand-in: a named namespace with interfaces.
type Endpoint struct {
	Name string `yaml:"name" json:"name"`
	// NetNS is the namespace; default Name. Created when missing (and then
	// owned: removed by Down); an existing one is used and never removed.
	NetNS string `yaml:"netns,omitempty" json:"netns,omitempty"`
	// Forwarding turns IPv4 and IPv6 forwarding on: a router endpoint.
	Forwarding bool        `yaml:"forwarding,omitempty" json:"forwarding,omitempty"`
	Interfaces []Interface `yaml:"interfaces" json:"interfaces"`
	// Routes are extra routes "DST via GW" (CIDR and address).
	Routes []string `yaml:"routes,omitempty" json:"routes,omitempty"`
}

// Interface is an endpoint's attachment to a network.
type Interface struct {
	Network string `yaml:"network" json:"network"`
	// Name inside the endpoint; default eth0, eth1… in order.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	MAC  string `yaml:"mac,omitempty" json:"mac,omitempty"`
	// Addresses (CIDR); when empty one address per subnet of the network
	// is allocated.
	Addresses []string `yaml:"addresses,omitempty" json:"addresses,omitempty"`
	// NoDefaultRoute skips the default route via the network's gateways.
	NoDefaultRoute bool `yaml:"no_default_route,omitempty" json:"no_default_route,omitempty"`
	// SourceMACs are the senders a source-mode interface accepts.
	SourceMACs []string `yaml:"source_macs,omitempty" json:"source_macs,omitempty"`
}

// HostShim is the usual answer to "my host cannot reach its macvlan
// containers": a bridge-mode macvlan for the host (in Host) on the
// network's parent, with the host's address on it and routes to the
// containers through it.
type HostShim struct {
	Network   string   `yaml:"network" json:"network"`
	Name      string   `yaml:"name" json:"name"`
	MAC       string   `yaml:"mac,omitempty" json:"mac,omitempty"`
	Addresses []string `yaml:"addresses" json:"addresses"`
	// Routes are destinations (CIDR) reached through the shim.
	Routes []string `yaml:"routes,omitempty" json:"routes,omitempty"`
}

// Parse reads a topology file (YAML). Unknown keys are errors: a typo must
// not silently drop half a topology. The result is validated.
func Parse(r io.Reader) (*Topology, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var t Topology
	if err := dec.Decode(&t); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("parse topology: the file is empty")
		}
		return nil, fmt.Errorf("parse topology: %w", err)
	}
	// A second document would be silently dropped: one file, one topology.
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse topology: the file holds more than one YAML document (---): put one topology in each file")
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// ParseFile reads and validates the topology file at path.
func ParseFile(path string) (*Topology, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open topology: %w", err)
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// FieldError is a topology that cannot work, found before any syscall: it
// names the field (its path in the file) and the fix.
type FieldError struct {
	Field string // e.g. "networks[1].mode"
	Value string
	Fix   string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("topology: %s: %s", e.Field, e.Fix)
	}
	return fmt.Sprintf("topology: %s %q: %s", e.Field, e.Value, e.Fix)
}

func ferr(field, value, format string, args ...any) error {
	return &FieldError{Field: field, Value: value, Fix: fmt.Sprintf(format, args...)}
}

// WithPrefix returns a copy of t whose name and every namespace name (host,
// switches, endpoints) start with prefix: how labs run in throwaway
// namespaces that never collide with anything else.
func (t *Topology) WithPrefix(prefix string) *Topology {
	c := t.clone()
	c.Name = prefix + c.Name
	if c.Host != "" {
		c.Host = prefix + c.Host
	}
	for i := range c.Parents {
		if s := c.Parents[i].Sandbox; s != nil {
			s.Switch = prefix + s.Switch
		}
	}
	for i := range c.Endpoints {
		e := &c.Endpoints[i]
		e.NetNS = prefix + e.netns()
	}
	return c
}

// clone deep-copies t through its YAML form: a topology is plain data.
func (t *Topology) clone() *Topology {
	b, err := yaml.Marshal(t)
	if err != nil {
		panic("dataplane: clone topology: " + err.Error())
	}
	var c Topology
	if err := yaml.Unmarshal(b, &c); err != nil {
		panic("dataplane: clone topology: " + err.Error())
	}
	return &c
}

func (e *Endpoint) netns() string {
	if e.NetNS != "" {
		return e.NetNS
	}
	return e.Name
}

func (n *Network) driver() string {
	if n.Driver == "" {
		return "macvlan"
	}
	return n.Driver
}

func (s *Sandbox) bridge(parent string) string {
	if s.Bridge != "" {
		return s.Bridge
	}
	return "br-" + parent
}

func (i *Interface) name(idx int) string {
	if i.Name != "" {
		return i.Name
	}
	return "eth" + strconv.Itoa(idx)
}

// Validate checks the whole topology without touching the kernel: names,
// references, modes, addresses and the rules the kernel would otherwise
// enforce halfway through (passthru alone on its parent, one address per
// interface name…). The first problem is returned as a *FieldError.
func (t *Topology) Validate() error {
	if err := checkTopoName(t.Name); err != nil {
		return ferr("name", t.Name, "%v", err)
	}
	if t.Host != "" {
		if err := netns.ValidateName(t.Host); err != nil {
			return ferr("host", t.Host, "%v", err)
		}
	}
	parents, err := t.validateParents()
	if err != nil {
		return err
	}
	nets, netField, err := t.validateNetworks(parents)
	if err != nil {
		return err
	}
	if err := t.validateEndpoints(nets, netField); err != nil {
		return err
	}
	return t.validateHostShims(nets, parents)
}

// validateParents checks the parents and returns them by name.
func (t *Topology) validateParents() (map[string]*Parent, error) {
	parents := map[string]*Parent{}
	for i := range t.Parents {
		p := &t.Parents[i]
		f := fmt.Sprintf("parents[%d]", i)
		if err := link.CheckParent(p.Name); err != nil {
			return nil, ferr(f+".name", p.Name, "%v", err)
		}
		if parents[p.Name] != nil {
			return nil, ferr(f+".name", p.Name, "declared twice: give each parent one entry")
		}
		parents[p.Name] = p
		if p.Sandbox != nil {
			if err := p.Sandbox.validate(f, p.Name, t.Host); err != nil {
				return nil, err
			}
		}
		for j, a := range p.Addresses {
			if _, err := parsePrefix(a); err != nil {
				return nil, ferr(fmt.Sprintf("%s.addresses[%d]", f, j), a, "%v", err)
			}
		}
	}
	return parents, nil
}

// validate checks the sandbox of the parent at field f.
func (s *Sandbox) validate(f, parent, host string) error {
	if err := netns.ValidateName(s.Switch); err != nil {
		return ferr(f+".sandbox.switch", s.Switch, "%v", err)
	}
	if err := link.CheckName(s.bridge(parent)); err != nil {
		return ferr(f+".sandbox.bridge", s.bridge(parent), "%v (name the bridge with sandbox.bridge)", err)
	}
	for j, a := range s.Addresses {
		if _, err := parsePrefix(a); err != nil {
			return ferr(fmt.Sprintf("%s.sandbox.addresses[%d]", f, j), a, "%v", err)
		}
	}
	if s.MAC != "" {
		if _, err := parseMAC(s.MAC); err != nil {
			return ferr(f+".sandbox.mac", s.MAC, "%v", err)
		}
	}
	if s.Switch == host {
		return ferr(f+".sandbox.switch", s.Switch, "the switch must be a namespace of its own, not the host's")
	}
	return nil
}

// validateNetworks checks the networks and returns them, and their field
// paths, by name. A passthru network takes its parent alone.
func (t *Topology) validateNetworks(parents map[string]*Parent) (nets map[string]*Network, netField map[string]string, err error) {
	nets = map[string]*Network{}
	netField = map[string]string{} // network name → its field path
	passthru := map[string]string{}
	for i := range t.Networks {
		n := &t.Networks[i]
		f := fmt.Sprintf("networks[%d]", i)
		if n.Name == "" {
			return nil, nil, ferr(f+".name", "", "missing: name the network")
		}
		if nets[n.Name] != nil {
			return nil, nil, ferr(f+".name", n.Name, "declared twice: network names are unique")
		}
		nets[n.Name] = n
		netField[n.Name] = f
		if err := checkDriverMode(n.driver(), n.Mode); err != nil {
			return nil, nil, ferr(f+".mode", n.Mode, "%v", err)
		}
		if n.Parent == "" {
			return nil, nil, ferr(f+".parent", "", "missing: name the interface the network sits on (a parent, an existing interface, or X.N for VLAN N on X)")
		}
		if err := checkLeaf(n, f, nil, ""); err != nil {
			return nil, nil, err
		}
		if base, _, ok := splitVLANParent(n.Parent); ok && parents[n.Parent] == nil {
			if err := link.CheckParent(base); err != nil {
				return nil, nil, ferr(f+".parent", n.Parent, "VLAN parent %s: %v", base, err)
			}
		}
		if n.Mode == "passthru" {
			if other, dup := passthru[n.Parent]; dup {
				return nil, nil, ferr(f+".parent", n.Parent, "passthru takes the parent alone: network %s already uses it", other)
			}
			passthru[n.Parent] = n.Name
		}
		if err := n.validateIPAM(f); err != nil {
			return nil, nil, err
		}
	}
	for _, n := range t.Networks {
		if n.Mode != "passthru" {
			if other, ok := passthru[n.Parent]; ok {
				return nil, nil, ferr("networks", n.Name, "parent %s is taken by passthru network %s: passthru takes the parent alone", n.Parent, other)
			}
		}
	}
	return nets, netField, nil
}

// validateIPAM checks the network's subnets, and that its gateways and IP
// ranges lie inside them.
func (n *Network) validateIPAM(f string) error {
	subnets, err := n.subnets()
	if err != nil {
		return ferr(f+".subnets", "", "%v", err)
	}
	for j, g := range n.Gateways {
		a, err := netip.ParseAddr(g)
		if err != nil {
			return ferr(fmt.Sprintf("%s.gateways[%d]", f, j), g, "not an IP address")
		}
		if !inAny(subnets, a) {
			return ferr(fmt.Sprintf("%s.gateways[%d]", f, j), g, "outside every subnet of the network")
		}
	}
	for j, r := range n.IPRange {
		p, err := parsePrefix(r)
		if err != nil {
			return ferr(fmt.Sprintf("%s.ip_range[%d]", f, j), r, "%v", err)
		}
		if !inAny(subnets, p.Masked().Addr()) {
			return ferr(fmt.Sprintf("%s.ip_range[%d]", f, j), r, "outside every subnet of the network")
		}
	}
	return nil
}

// validateEndpoints checks the endpoints: each in a namespace of its own,
// with at least one interface, each on a declared network.
func (t *Topology) validateEndpoints(nets map[string]*Network, netField map[string]string) error {
	nsUsed := map[string]string{}
	endpointNames := map[string]bool{}
	perNet := map[string]int{}
	for i := range t.Endpoints {
		e := &t.Endpoints[i]
		f := fmt.Sprintf("endpoints[%d]", i)
		if e.Name == "" {
			return ferr(f+".name", "", "missing: name the endpoint")
		}
		if endpointNames[e.Name] {
			return ferr(f+".name", e.Name, "declared twice")
		}
		endpointNames[e.Name] = true
		if err := netns.ValidateName(e.netns()); err != nil {
			return ferr(f+".netns", e.netns(), "%v", err)
		}
		if e.netns() == t.Host {
			return ferr(f+".netns", e.netns(), "an endpoint needs its own namespace, not the host's (use host_shims for the host)")
		}
		if other, ok := nsUsed[e.netns()]; ok {
			return ferr(f+".netns", e.netns(), "already used by endpoint %s", other)
		}
		nsUsed[e.netns()] = e.Name
		if len(e.Interfaces) == 0 {
			return ferr(f+".interfaces", "", "empty: attach the endpoint to at least one network")
		}
		ifnames := map[string]bool{}
		for j := range e.Interfaces {
			it := &e.Interfaces[j]
			fi := fmt.Sprintf("%s.interfaces[%d]", f, j)
			n := nets[it.Network]
			if n == nil {
				return ferr(fi+".network", it.Network, "no such network in networks")
			}
			perNet[n.Name]++
			if n.Mode == "passthru" && perNet[n.Name] > 1 {
				return ferr(fi+".network", it.Network, "passthru takes the parent alone: one interface per passthru network")
			}
			if err := it.validate(fi, j, n, netField[n.Name], ifnames); err != nil {
				return err
			}
		}
		for j, r := range e.Routes {
			if _, err := parseRoute(r); err != nil {
				return ferr(fmt.Sprintf("%s.routes[%d]", f, j), r, "%v", err)
			}
		}
	}
	return nil
}

// validate checks interface j (field fi) of an endpoint on network n
// (field nf); ifnames holds the endpoint's interface names so far.
func (it *Interface) validate(fi string, j int, n *Network, nf string, ifnames map[string]bool) error {
	name := it.name(j)
	if err := link.CheckName(name); err != nil {
		return ferr(fi+".name", name, "%v", err)
	}
	if name == "lo" || ifnames[name] {
		return ferr(fi+".name", name, "already used in this endpoint")
	}
	ifnames[name] = true
	if it.MAC != "" && n.Mode == "passthru" {
		return ferr(fi+".mac", it.MAC, "a passthru interface takes the parent's MAC: remove mac")
	}
	if it.MAC != "" {
		if _, err := parseMAC(it.MAC); err != nil {
			return ferr(fi+".mac", it.MAC, "%v", err)
		}
	}
	var sources []net.HardwareAddr
	for k, m := range it.SourceMACs {
		mac, err := parseMAC(m)
		if err != nil {
			return ferr(fmt.Sprintf("%s.source_macs[%d]", fi, k), m, "%v", err)
		}
		sources = append(sources, mac)
	}
	if err := checkLeaf(n, nf, sources, fi); err != nil {
		return err
	}
	subnets, _ := n.subnets()
	for k, a := range it.Addresses {
		p, err := parsePrefix(a)
		if err != nil {
			return ferr(fmt.Sprintf("%s.addresses[%d]", fi, k), a, "%v", err)
		}
		if len(subnets) > 0 && !inAny(subnets, p.Addr()) {
			return ferr(fmt.Sprintf("%s.addresses[%d]", fi, k), a, "outside every subnet of network %s", n.Name)
		}
	}
	return nil
}

// validateHostShims checks the host shims: macvlans on a declared macvlan
// network, named apart from the parents and each other, with an address.
func (t *Topology) validateHostShims(nets map[string]*Network, parents map[string]*Parent) error {
	shimNames := map[string]bool{}
	for i := range t.HostShims {
		s := &t.HostShims[i]
		f := fmt.Sprintf("host_shims[%d]", i)
		n := nets[s.Network]
		if n == nil {
			return ferr(f+".network", s.Network, "no such network in networks")
		}
		if n.driver() != "macvlan" {
			return ferr(f+".network", s.Network, "a host shim is a macvlan: network %s uses %s", n.Name, n.driver())
		}
		if n.Mode == "passthru" {
			return ferr(f+".network", s.Network, "passthru takes the parent alone: no shim can join it")
		}
		if err := link.CheckName(s.Name); err != nil {
			return ferr(f+".name", s.Name, "%v", err)
		}
		if parents[s.Name] != nil || shimNames[s.Name] {
			return ferr(f+".name", s.Name, "already used in the host namespace")
		}
		shimNames[s.Name] = true
		if s.MAC != "" {
			if _, err := parseMAC(s.MAC); err != nil {
				return ferr(f+".mac", s.MAC, "%v", err)
			}
		}
		if len(s.Addresses) == 0 {
			return ferr(f+".addresses", "", "empty: give the host an address on the shim")
		}
		for j, a := range s.Addresses {
			if _, err := parsePrefix(a); err != nil {
				return ferr(fmt.Sprintf("%s.addresses[%d]", f, j), a, "%v", err)
			}
		}
		for j, r := range s.Routes {
			if _, err := netip.ParsePrefix(r); err != nil {
				return ferr(fmt.Sprintf("%s.routes[%d]", f, j), r, "not a CIDR prefix")
			}
		}
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// checkTopoName keeps names usable in marks, file names and namespace
// names.
func checkTopoName(s string) error {
	if s == "" {
		return errors.New("missing: name the topology")
	}
	if s == netMark.Topology {
		return fmt.Errorf("%q is reserved for the docker-style networks' marks: pick another name", s)
	}
	if len(s) > 64 {
		return fmt.Errorf("%d bytes long: at most 64", len(s))
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("contains %q: use letters, digits, '-', '_' and '.'", r)
		}
	}
	return nil
}

// checkLeaf applies link's rules (link.Spec.Validate, their one source) to
// the link network n makes: which options its mode allows, and what can
// be a parent. nf is the network's field path; sources and fi, when fi is
// set, are an interface's source MACs and field path. link's option names
// become the topology file's fields.
func checkLeaf(n *Network, nf string, sources []net.HardwareAddr, fi string) error {
	const name = "vmlcheck0" // any valid name: only the options are judged
	common := link.Common{Name: name, Parent: n.Parent}
	var spec link.Spec
	switch n.driver() {
	case "ipvlan":
		switch {
		case n.NoPromisc:
			return ferr(nf+".nopromisc", "", "not an ipvlan option: drop nopromisc, or use driver macvlan")
		case n.NoDst:
			return ferr(nf+".nodst", "", "not an ipvlan option: drop nodst, or use driver macvlan")
		case len(sources) > 0:
			return ferr(fi+".source_macs", "", "not an ipvlan option: drop source_macs, or use driver macvlan")
		}
		spec = &link.IPVlan{Common: common}
	default:
		mode, _ := link.ParseMacvlanMode(n.Mode) // checked before; "" is the default
		spec = &link.Macvlan{Common: common, Mode: mode, NoPromisc: n.NoPromisc, NoDst: n.NoDst, SourceMACs: sources}
	}
	err := spec.Validate()
	var fe *link.FieldError
	if err == nil || !errors.As(err, &fe) {
		return err
	}
	switch fe.Field {
	case "link":
		return ferr(nf+".parent", n.Parent, "%s", fe.Fix)
	case "macaddr":
		if fi != "" {
			return ferr(fi+".source_macs", fe.Value, "network %s: %s", n.Name, fe.Fix)
		}
	case "nopromisc", "nodst", "mode":
		return ferr(nf+"."+fe.Field, fe.Value, "%s", fe.Fix)
	}
	return ferr(nf, "", "%v", err)
}

func checkDriverMode(driver, mode string) error {
	switch driver {
	case "macvlan", "macvtap":
		if mode == "" {
			return nil
		}
		if _, err := link.ParseMacvlanMode(mode); err != nil {
			return err
		}
	case "ipvlan":
		if mode == "" {
			return nil
		}
		if _, err := link.ParseIPVlanMode(mode); err != nil {
			return err
		}
	default:
		return fmt.Errorf("driver %q is not supported: use macvlan, macvtap or ipvlan", driver)
	}
	return nil
}

// splitVLANParent splits docker's "X.N" parent into X and N.
func splitVLANParent(s string) (base string, id uint16, ok bool) { return link.SplitVLANName(s) }

func (n *Network) subnets() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range n.Subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix", s)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("%q has host bits set: use %s", s, p.Masked())
		}
		for _, q := range out {
			if q.Overlaps(p) {
				return nil, fmt.Errorf("%s overlaps %s", p, q)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parsePrefix parses an interface address in CIDR form ("10.0.0.2/24"); a
// bare address is refused so a forgotten prefix length never means /32.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if _, aerr := netip.ParseAddr(s); aerr == nil {
			return netip.Prefix{}, errors.New("missing prefix length: write it as CIDR, e.g. 10.0.0.2/24")
		}
		return netip.Prefix{}, errors.New("not a CIDR address such as 10.0.0.2/24 or 2001:db8::2/64")
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, errors.New("zones are not allowed")
	}
	return p, nil
}

// route is one "DST via GW" of an endpoint.
type route struct {
	Dst netip.Prefix
	Via netip.Addr
}

func parseRoute(s string) (route, error) {
	f := strings.Fields(s)
	if len(f) != 3 || f[1] != "via" {
		return route{}, errors.New(`write a route as "DST via GW", e.g. "10.0.20.0/24 via 10.0.10.1"`)
	}
	var r route
	var err error
	if f[0] == "default" {
		if r.Via, err = netip.ParseAddr(f[2]); err != nil {
			return route{}, fmt.Errorf("gateway %q is not an address", f[2])
		}
		r.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Via.Is6() {
			r.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return r, nil
	}
	if r.Dst, err = netip.ParsePrefix(f[0]); err != nil {
		return route{}, fmt.Errorf("destination %q is not a CIDR prefix", f[0])
	}
	if r.Via, err = netip.ParseAddr(f[2]); err != nil {
		return route{}, fmt.Errorf("gateway %q is not an address", f[2])
	}
	if r.Dst.Addr().Is4() != r.Via.Is4() {
		return route{}, errors.New("destination and gateway are of different families")
	}
	return r, nil
}

// parseMAC parses a MAC the way `ip` does (link.ParseMAC) and requires a
// unicast one.
func parseMAC(s string) (net.HardwareAddr, error) {
	m, err := link.ParseMAC(s)
	if err != nil {
		return nil, err
	}
	if err := link.CheckUnicastMAC(m); err != nil {
		return nil, err
	}
	return m, nil
}
