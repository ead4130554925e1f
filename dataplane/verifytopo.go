package dataplane

import (
	"strings"

	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify"
)

// VerifyTopologies describes what Up built the way package verify judges
// it: one verify.Topology per root parent (frames of every interface on
// it, VLAN sub-interfaces included, cross that wire). The host stack takes
// part through the parent's addresses; a sandbox's switch reflects exactly
// when its port has hairpin on, an existing parent's switch is unknown
// (verify detects it). Parents without interfaces are left out.
func (b *Built) VerifyTopologies() []verify.Topology {
	var out []verify.Topology
	index := map[string]int{}
	for _, p := range b.Parents {
		vt := verify.Topology{Parent: verify.Parent{Name: p.Name, NetNS: p.NetNS, MAC: p.MAC, Addrs: p.Addrs}}
		if p.Sandbox {
			r := p.Hairpin
			vt.Switch.Reflects = &r
		}
		if len(p.Outside) > 0 {
			vt.Endpoints = append(vt.Endpoints, verify.Endpoint{
				Name: "outside", NetNS: p.Switch, Interface: p.Bridge, Kind: verify.KindOutside, Addrs: p.Outside,
			})
		}
		index[p.Name] = len(out)
		out = append(out, vt)
	}
	for _, it := range b.Interfaces {
		i, ok := index[it.Parent]
		if !ok {
			// An existing interface used directly as a network's parent.
			index[it.Parent] = len(out)
			i = len(out)
			out = append(out, verify.Topology{Parent: verify.Parent{Name: it.Parent, NetNS: b.Topology.Host}})
		}
		ep := verify.Endpoint{
			Name: it.Endpoint, NetNS: it.NetNS, Interface: it.Name, Kind: it.Kind, Mode: it.Mode,
			NoPromisc: it.NoPromisc, MAC: it.MAC, Addrs: it.Addrs,
		}
		for _, r := range it.Routes {
			ep.Routes = append(ep.Routes, verify.Route{Dst: r})
		}
		if b.multiHomed(it.Endpoint) {
			ep.Name = it.Endpoint + "/" + it.Name
		}
		if it.Shim {
			ep.Name = "host-shim " + it.Name
		}
		for _, s := range it.Sources {
			if m, err := parseMAC(s); err == nil {
				ep.SourceMACs = append(ep.SourceMACs, m)
			}
		}
		if it.VLAN != 0 || it.Lower != it.Parent {
			ep.Lower = it.Lower
			ep.VLANs = []verify.VLANTag{{ID: it.VLAN, Protocol: rtnl.VLANProtocol8021Q}}
		}
		out[i].Endpoints = append(out[i].Endpoints, ep)
	}
	kept := out[:0]
	for _, vt := range out {
		for _, ep := range vt.Endpoints {
			if ep.Kind == verify.KindMacvlan && strings.HasPrefix(ep.Name, "host-shim ") {
				// With a shim the host reaches the network through it:
				// the parent's own address is no longer its way in.
				vt.Parent.Addrs = nil
			}
		}
		if len(vt.Endpoints) > 0 {
			kept = append(kept, vt)
		}
	}
	return kept
}

// multiHomed reports whether the endpoint has more than one interface: its
// report names then say which one.
func (b *Built) multiHomed(endpoint string) bool {
	n := 0
	for _, it := range b.Interfaces {
		if it.Endpoint == endpoint && !it.Shim {
			n++
		}
	}
	return n > 1
}
