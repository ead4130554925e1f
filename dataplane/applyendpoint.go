package dataplane

// Up's endpoints: the link spec of each interface, the interfaces built
// through BuildEndpointLink, their extras, and the host shims.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// FeatureError is the kernel lacking something a topology needs.
type FeatureError struct {
	Feature string // "8021q", "ipvlan", "macvtap"…
	Err     error
}

func (e *FeatureError) Error() string {
	switch e.Feature {
	case "8021q":
		return "this kernel has no 802.1Q VLAN support (load module 8021q): " + e.Err.Error()
	}
	return fmt.Sprintf("this kernel has no %s support (load module %s): %v", e.Feature, e.Feature, e.Err)
}

func (e *FeatureError) Unwrap() error { return e.Err }

// leafSpec is the link spec of an interface on network n. An ipvlan
// without a mode is l2, as Docker's and the CNI plugin's are (the
// kernel's own default is l3).
func (a *applier) leafSpec(n *Network, c link.Common, sources []string) (link.Spec, error) {
	var macs []net.HardwareAddr
	for _, s := range sources {
		m, err := parseMAC(s)
		if err != nil {
			return nil, err
		}
		macs = append(macs, m)
	}
	switch n.driver() {
	case "macvlan", "macvtap":
		var mode link.MacvlanMode
		if n.Mode != "" {
			var err error
			if mode, err = link.ParseMacvlanMode(n.Mode); err != nil {
				return nil, err
			}
		}
		mv := link.Macvlan{Common: c, Mode: mode, NoPromisc: n.NoPromisc, NoDst: n.NoDst, SourceMACs: macs}
		if n.driver() == "macvtap" {
			mt := link.Macvtap(mv)
			return &mt, nil
		}
		return &mv, nil
	case "ipvlan":
		mode, err := link.ParseIPVlanMode(effectiveMode(n))
		if err != nil {
			return nil, err
		}
		return &link.IPVlan{Common: c, Mode: mode}, nil
	}
	return nil, fmt.Errorf("driver %q is not supported", n.driver())
}

// effectiveMode is the mode n's interfaces get: the declared one, else
// bridge for macvlan and macvtap and l2 for ipvlan.
func effectiveMode(n *Network) string {
	if n.Mode != "" {
		return n.Mode
	}
	if n.driver() == "ipvlan" {
		return "l2"
	}
	return "bridge"
}

func (a *applier) ensureInterface(ctx context.Context, e *Endpoint, j int) error {
	it := &e.Interfaces[j]
	n := a.network(it.Network)
	ns, ifname := e.netns(), it.name(j)
	var mac net.HardwareAddr
	if it.MAC != "" {
		mac, _ = parseMAC(it.MAC)
	}
	spec, err := a.leafSpec(n, link.Common{Name: ifname, Parent: n.Parent, Address: mac}, it.SourceMACs)
	if err != nil {
		return err
	}
	bi := BuiltInterface{Endpoint: e.Name, NetNS: ns, Name: ifname, Network: n.Name, Kind: n.driver(), Mode: effectiveMode(n),
		Lower: n.Parent, NoPromisc: n.NoPromisc, Sources: it.SourceMACs}
	bi.Parent, bi.VLAN, _ = a.lower(n)
	for _, s := range it.Addresses {
		p, _ := parsePrefix(s)
		bi.Addrs = append(bi.Addrs, p)
	}
	es := EndpointLinkSpec{Link: spec, Host: NamedNS(a.t.Host), NetNS: NamedNS(ns), Mark: a.mark, Object: "ep/" + e.Name + "/" + ifname, Addrs: bi.Addrs}
	if !it.NoDefaultRoute {
		if a.defRoute[e.Name] == nil {
			a.defRoute[e.Name] = map[bool]bool{}
		}
		for _, g := range n.Gateways {
			gw, _ := netip.ParseAddr(g)
			bi.Gateways = append(bi.Gateways, gw)
			if a.defRoute[e.Name][gw.Is4()] {
				continue
			}
			a.defRoute[e.Name][gw.Is4()] = true
			es.Routes = append(es.Routes, Route{Gateway: gw})
		}
	}
	ep, err := BuildEndpointLink(ctx, es)
	var fl *ForeignLinkError
	if errors.As(err, &fl) {
		return fmt.Errorf("%s exists in %s and is not this topology's (group %d, alias %q): remove or rename it, or rename %s in the topology",
			ifname, nsLabel(ns), fl.Group, fl.Alias, fmt.Sprintf("the interface of endpoint %s", e.Name))
	}
	if err != nil {
		return err
	}
	if ep.Created {
		a.record(undo{kind: undoLink, ns: ns, name: ifname})
		a.built.Created++
		a.announces = append(a.announces, ep.announcement())
	}
	a.built.Created += ep.AddedAddrs + ep.RemovedAddrs
	bi.MAC = ep.MAC
	a.built.Interfaces = append(a.built.Interfaces, bi)
	return nil
}

// kernelFeature turns "Unknown device type" for a kind this kernel lacks
// into a FeatureError.
func (a *applier) kernelFeature(n *Network, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) {
		return &FeatureError{Feature: n.driver(), Err: err}
	}
	return err
}

func (a *applier) ensureEndpointExtras(ctx context.Context, e *Endpoint) error {
	ns := e.netns()
	if e.Forwarding {
		for _, p := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
			if !a.owned[ns] {
				// Not ours: Down puts the old value back.
				old, err := NamedNS(ns).readSysctl(p)
				if err != nil {
					return err
				}
				r := sysctlRecord{NetNS: ns, Path: p, Old: old}
				if old != "1" && a.st.addSysctl(r) {
					if err := a.st.save(a.dir); err != nil {
						return err
					}
					a.record(undo{kind: undoSysctl, sysctl: r})
				}
			}
			if err := NamedNS(ns).writeSysctl(p, "1"); err != nil {
				return err
			}
		}
	}
	c, err := a.c.get(ns)
	if err != nil {
		return err
	}
	for _, r := range e.Routes {
		rt, _ := parseRoute(r)
		rr := rtnl.Route{Gateway: rt.Via}
		if rt.Dst.Bits() > 0 {
			rr.Dst = rt.Dst
		}
		if err := ensureRoute(ctx, c, rr); err != nil {
			return fmt.Errorf("endpoint %s: %w", e.Name, err)
		}
	}
	return nil
}

func (a *applier) ensureShim(ctx context.Context, s *HostShim) error {
	n := a.network(s.Network)
	c, err := a.c.get(a.t.Host)
	if err != nil {
		return err
	}
	h := link.New(c)
	m, err := h.Get(ctx, s.Name)
	if err != nil && !errors.Is(err, link.ErrNotFound) {
		return fmt.Errorf("host shim %s: %w", s.Name, err)
	}
	created := false
	if err == nil {
		if err := a.claim(m, a.t.Host, "host_shims[].name"); err != nil {
			return err
		}
	} else {
		var mac net.HardwareAddr
		if s.MAC != "" {
			mac, _ = parseMAC(s.MAC)
		}
		spec := &link.Macvlan{Common: link.Common{Name: s.Name, Parent: n.Parent, Address: mac, Group: a.mark.Group()}, Mode: link.MacvlanModeBridge}
		a.record(undo{kind: undoLink, ns: a.t.Host, name: s.Name, local: true})
		a.built.Created++
		if m, err = h.Create(ctx, spec); err != nil {
			return err
		}
		alias := a.mark.Alias("shim/" + s.Name)
		if err := h.Set(ctx, s.Name, link.Change{Alias: &alias}); err != nil {
			return fmt.Errorf("host shim %s: %w", s.Name, err)
		}
		created = true
	}
	bi := BuiltInterface{Endpoint: "host", NetNS: a.t.Host, Name: s.Name, Network: n.Name, Kind: "macvlan", Mode: "bridge", Lower: n.Parent, Shim: true}
	bi.Parent, bi.VLAN, _ = a.lower(n)
	for _, as := range s.Addresses {
		p, _ := parsePrefix(as)
		bi.Addrs = append(bi.Addrs, p)
		if _, err := ensureAddr(ctx, c, m.Index, p); err != nil {
			return fmt.Errorf("host shim %s: %w", s.Name, err)
		}
	}
	if !m.Up() {
		up := true
		if err := h.Set(ctx, s.Name, link.Change{Up: &up}); err != nil {
			return fmt.Errorf("host shim %s: %w", s.Name, err)
		}
	}
	bi.Routes = shimRoutes(s)
	for _, r := range s.Routes {
		dst, _ := netip.ParsePrefix(r)
		if err := ensureRoute(ctx, c, rtnl.Route{Dst: dst.Masked(), OIF: uint32(m.Index)}); err != nil {
			return fmt.Errorf("host shim %s: %w", s.Name, err)
		}
	}
	if m2, err := h.Get(ctx, s.Name); err == nil {
		bi.MAC = m2.Address
	}
	a.built.Interfaces = append(a.built.Interfaces, bi)
	if created {
		a.announces = append(a.announces, announcement{NetNS: NamedNS(a.t.Host), Index: int(m.Index), Name: s.Name, MAC: bi.MAC, Addrs: bi.Addrs})
	}
	return nil
}

// shimRoutes are the destinations of a (validated) shim's routes.
func shimRoutes(s *HostShim) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range s.Routes {
		if dst, err := netip.ParsePrefix(r); err == nil {
			out = append(out, dst.Masked())
		}
	}
	return out
}
