package main

import (
	"net/netip"
	"time"

	"github.com/vmlink/vmlink/dataplane"
)

// dockerNetwork is a network in the shape `docker network inspect` prints
// it (docker's NetworkResource: the same keys, in the same order), so
// scripts written against docker read vmlink's output unchanged. Containers
// are keyed by their namespace name (a namespace has no other id).
// HostShim is vmlink's own addition, present only when the network has one.
type dockerNetwork struct {
	Name       string                    `json:"Name"`
	ID         string                    `json:"Id"`
	Created    time.Time                 `json:"Created"`
	Scope      string                    `json:"Scope"`
	Driver     string                    `json:"Driver"`
	EnableIPv6 bool                      `json:"EnableIPv6"`
	IPAM       dockerIPAM                `json:"IPAM"`
	Internal   bool                      `json:"Internal"`
	Attachable bool                      `json:"Attachable"`
	Ingress    bool                      `json:"Ingress"`
	ConfigFrom dockerConfigFrom          `json:"ConfigFrom"`
	ConfigOnly bool                      `json:"ConfigOnly"`
	Containers map[string]dockerEndpoint `json:"Containers"`
	Options    map[string]string         `json:"Options"`
	Labels     map[string]string         `json:"Labels"`
	HostShim   *dockerHostShim           `json:"HostShim,omitempty"`
}

// dockerIPAM is docker's IPAM block: the default driver, no options.
type dockerIPAM struct {
	Driver  string             `json:"Driver"`
	Options map[string]string  `json:"Options"`
	Config  []dockerIPAMConfig `json:"Config"`
}

// dockerIPAMConfig is one subnet; docker leaves out what was not given.
type dockerIPAMConfig struct {
	Subnet             string            `json:"Subnet"`
	IPRange            string            `json:"IPRange,omitempty"`
	Gateway            string            `json:"Gateway,omitempty"`
	AuxiliaryAddresses map[string]string `json:"AuxiliaryAddresses,omitempty"`
}

// dockerConfigFrom is docker's config-only network reference: always
// empty here.
type dockerConfigFrom struct {
	Network string `json:"Network"`
}

// dockerEndpoint is one container on the network; an address absent in a
// family is "" as docker prints it.
type dockerEndpoint struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// dockerHostShim is the host shim (vmlink's addition to docker's shape).
type dockerHostShim struct {
	Interface  string         `json:"Interface"`
	MacAddress string         `json:"MacAddress"`
	Addresses  []netip.Prefix `json:"Addresses"`
}

// dockerInspect is the record as `docker network inspect` shows a network.
func dockerInspect(r *dataplane.NetworkRecord) dockerNetwork {
	cfg := []dockerIPAMConfig{}
	for _, c := range r.IPAM {
		d := dockerIPAMConfig{Subnet: c.Subnet.String()}
		if c.IPRange.IsValid() {
			d.IPRange = c.IPRange.String()
		}
		if c.Gateway.IsValid() {
			d.Gateway = c.Gateway.String()
		}
		if len(c.Aux) > 0 {
			d.AuxiliaryAddresses = map[string]string{}
			for k, v := range c.Aux {
				d.AuxiliaryAddresses[k] = v.String()
			}
		}
		cfg = append(cfg, d)
	}
	containers := map[string]dockerEndpoint{}
	for name, a := range r.Endpoints {
		c := dockerEndpoint{Name: name, EndpointID: a.EndpointID, MacAddress: a.MAC}
		for _, p := range a.Addrs {
			if p.Addr().Is4() {
				c.IPv4Address = p.String()
			} else {
				c.IPv6Address = p.String()
			}
		}
		containers[name] = c
	}
	opts := map[string]string{}
	for k, v := range r.Options {
		opts[k] = v
	}
	out := dockerNetwork{
		Name: r.Name, ID: r.ID, Created: r.Created, Scope: "local", Driver: r.Driver, EnableIPv6: r.IPv6,
		IPAM:     dockerIPAM{Driver: "default", Options: map[string]string{}, Config: cfg},
		Internal: r.Internal, Containers: containers, Options: opts, Labels: map[string]string{},
	}
	if r.Shim != nil {
		out.HostShim = &dockerHostShim{Interface: r.Shim.Interface, MacAddress: r.Shim.MAC, Addresses: r.Shim.Addrs}
	}
	return out
}
