package dataplane

import (
	"errors"
	"os"
	"sort"

	"github.com/vmlink/vmlink/verify"
)

// DoctorNetworks returns the networks of the state directory as
// verify.Doctor takes them, read as they are: unlike List it neither
// reconciles nor saves (a diagnosis changes nothing), and without a state
// file it creates no state directory.
func (n *Networks) DoctorNetworks() ([]verify.DoctorNetwork, error) {
	if _, err := os.Stat(n.statePath()); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	unlock, err := lockState(n.dir())
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := n.load()
	if err != nil {
		return nil, err
	}
	var out []verify.DoctorNetwork
	for _, r := range st.Networks {
		dn := verify.DoctorNetwork{Name: r.Name, Host: r.Host, Parent: r.Parent, Driver: r.Driver, Mode: r.Mode, HostShim: r.Shim != nil}
		for _, c := range r.IPAM {
			dn.Subnets = append(dn.Subnets, c.Subnet)
			if c.Gateway.IsValid() {
				dn.Gateways = append(dn.Gateways, c.Gateway)
			}
			if c.IPRange.IsValid() {
				dn.IPRanges = append(dn.IPRanges, c.IPRange)
			}
		}
		for _, a := range r.Endpoints {
			dn.Endpoints = append(dn.Endpoints, verify.DoctorEndpoint{NetNS: a.NetNS, Interface: a.Interface})
		}
		sort.Slice(dn.Endpoints, func(i, j int) bool { return dn.Endpoints[i].NetNS < dn.Endpoints[j].NetNS })
		out = append(out, dn)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
