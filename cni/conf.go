package cni

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/vmlink/vmlink/link"
)

// Conf is the plugin's network configuration. The keys and their defaults
// are the reference plugins' (containernetworking/plugins macvlan, ipvlan
// and vlan), so switching a configuration to vmlink is changing "type";
// the keys after the marked line are what vmlink's link engine adds.
type Conf struct {
	types.PluginConf
	// Kind is the link kind: macvlan (default), macvtap, ipvlan or vlan.
	Kind string `json:"kind,omitempty"`
	// Master is the parent interface; default: the interface of the
	// default route (macvlan, macvtap, ipvlan). Required for vlan.
	Master string `json:"master,omitempty"`
	// Mode: macvlan/macvtap bridge (default), private, vepa, passthru,
	// source; ipvlan l2 (default), l3, l3s.
	Mode string `json:"mode,omitempty"`
	// MTU 0 keeps the kernel's choice (the master's).
	MTU int `json:"mtu,omitempty"`
	// MAC is the interface's address (macvlan, macvtap); CNI_ARGS MAC=
	// and runtimeConfig.mac override it, in that order.
	MAC string `json:"mac,omitempty"`
	// LinkInContainer: the master lives in the container's namespace.
	LinkInContainer bool `json:"linkInContainer,omitempty"`
	// BCQueueLen is the broadcast queue length (macvlan, macvtap).
	BCQueueLen *uint32 `json:"bcqueuelen,omitempty"`
	// Flag is the ipvlan port flag: bridge (default), private or vepa.
	Flag string `json:"flag,omitempty"`
	// VlanID is the VLAN id (vlan); absent is 0, as in the reference.
	VlanID *int `json:"vlanId,omitempty"`

	// --- vmlink's additions ---

	// MACAddr is the list of senders a source-mode macvlan accepts
	// (iproute2's `macaddr set`).
	MACAddr []string `json:"macaddr,omitempty"`
	// NoPromisc keeps a passthru master out of promiscuous mode.
	NoPromisc bool `json:"nopromisc,omitempty"`
	// BCLim is the multicast cutoff (iproute2's bclim, Linux 6.4+).
	BCLim *int32 `json:"bclim,omitempty"`
	// Protocol is the VLAN protocol: 802.1Q (default) or 802.1ad.
	Protocol string `json:"protocol,omitempty"`

	// DataDir is where the plugin keeps a record of each attachment
	// (DefaultDataDir when empty), from which GC releases the addresses
	// of an attachment whose namespace is gone.
	DataDir string `json:"dataDir,omitempty"`

	RuntimeConfig struct {
		MAC string   `json:"mac,omitempty"`
		IPs []string `json:"ips,omitempty"`
	} `json:"runtimeConfig,omitempty"`

	// raw is the configuration as received: it goes to the IPAM plugin
	// unchanged, as the reference plugins pass it.
	raw []byte
}

// Kinds are the link kinds the plugin creates.
var Kinds = []string{"macvlan", "macvtap", "ipvlan", "vlan"}

// macArgs is CNI_ARGS as the reference macvlan plugin reads it; unknown
// keys are accepted (IgnoreUnknown is implied, as Multus passes pod keys).
type macArgs struct {
	types.CommonArgs
	MAC types.UnmarshallableString `json:"mac,omitempty"`
}

// configError is a configuration the plugin refuses before touching
// anything (code 7, or 6 for JSON that does not decode).
func configError(code uint, field, value, fix string) *types.Error {
	msg := fmt.Sprintf("%s: %s", field, fix)
	if value != "" {
		msg = fmt.Sprintf("%s %q: %s", field, value, fix)
	}
	return types.NewError(code, msg, "")
}

// ParseConf decodes stdin and applies CNI_ARGS; it checks only what is
// not a kernel rule (the link spec's Validate holds those).
func ParseConf(stdin []byte, cniArgs string) (*Conf, error) {
	c := &Conf{raw: stdin}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decode the network configuration: "+err.Error(), "")
	}
	if c.Kind == "" {
		c.Kind = "macvlan"
	}
	known := false
	for _, k := range Kinds {
		known = known || k == c.Kind
	}
	if !known {
		return nil, configError(types.ErrInvalidNetworkConfig, "kind", c.Kind, "use macvlan, macvtap, ipvlan or vlan")
	}
	if cniArgs != "" {
		var a macArgs
		a.IgnoreUnknown = true
		if err := types.LoadArgs(cniArgs, &a); err != nil {
			return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS: "+err.Error(), cniArgs)
		}
		if a.MAC != "" {
			c.MAC = string(a.MAC)
		}
	}
	if c.RuntimeConfig.MAC != "" {
		c.MAC = c.RuntimeConfig.MAC
	}
	if c.IPAM.Type == "" && strings.Contains(string(stdin), `"ipam"`) {
		var probe struct {
			IPAM map[string]any `json:"ipam"`
		}
		if json.Unmarshal(stdin, &probe) == nil && len(probe.IPAM) > 0 {
			return nil, configError(types.ErrInvalidNetworkConfig, "ipam.type", "", "an ipam section needs a type (host-local, static, dhcp, whereabouts…)")
		}
	}
	return c, nil
}

// Spec is the link spec of the container interface ifname on master. It
// only translates words: the link package's Validate (called by
// Handle.Prepare once the spec knows its namespace) holds the kernel's
// rules.
func (c *Conf) Spec(ifname, master string) (link.Spec, error) {
	// The reference plugins create their links with txqueuelen 0 (their
	// netlink library sends the zero value); so does vmlink, so that a
	// switched configuration gives the same link.
	var qlen uint32
	cm := link.Common{Name: ifname, Parent: master, TxQLen: &qlen}
	if c.MTU < 0 {
		return nil, configError(types.ErrInvalidNetworkConfig, "mtu", fmt.Sprint(c.MTU), "an MTU is not negative (0 keeps the master's)")
	}
	cm.MTU = uint32(c.MTU)
	if c.MAC != "" {
		if c.Kind == "ipvlan" || c.Kind == "vlan" {
			return nil, configError(types.ErrInvalidNetworkConfig, "mac", c.MAC, "only macvlan and macvtap interfaces take their own MAC: drop mac")
		}
		a, err := net.ParseMAC(c.MAC)
		if err != nil {
			return nil, configError(types.ErrInvalidNetworkConfig, "mac", c.MAC, "not a MAC address: write it like 02:00:00:00:00:01")
		}
		cm.Address = a
	}
	var s link.Spec
	switch c.Kind {
	case "macvlan", "macvtap":
		m := link.Macvlan{Common: cm, NoPromisc: c.NoPromisc, BCQueueLen: c.BCQueueLen, BCCutoff: c.BCLim}
		if c.Mode != "" {
			mode, err := link.ParseMacvlanMode(c.Mode)
			if err != nil {
				return nil, configError(types.ErrInvalidNetworkConfig, "mode", c.Mode, err.Error())
			}
			m.Mode = mode
		}
		for _, t := range c.MACAddr {
			a, err := net.ParseMAC(t)
			if err != nil {
				return nil, configError(types.ErrInvalidNetworkConfig, "macaddr", t, "not a MAC address: write it like 02:00:00:00:00:01")
			}
			m.SourceMACs = append(m.SourceMACs, a)
		}
		if c.Kind == "macvtap" {
			mt := link.Macvtap(m)
			s = &mt
		} else {
			s = &m
		}
	case "ipvlan":
		// The reference ipvlan plugin's default is l2 (the kernel's is l3).
		v := link.IPVlan{Common: cm, Mode: link.IPVlanModeL2}
		if c.Mode != "" {
			mode, err := link.ParseIPVlanMode(c.Mode)
			if err != nil {
				return nil, configError(types.ErrInvalidNetworkConfig, "mode", c.Mode, err.Error())
			}
			v.Mode = mode
		}
		if c.Flag != "" {
			f, err := parseIPVlanFlag(c.Flag)
			if err != nil {
				return nil, configError(types.ErrInvalidNetworkConfig, "flag", c.Flag, err.Error())
			}
			v.Flag = f
		}
		s = &v
	case "vlan":
		v := link.VLAN{Common: cm}
		if c.VlanID != nil {
			if *c.VlanID < 0 || *c.VlanID > 0xffff {
				return nil, configError(types.ErrInvalidNetworkConfig, "vlanId", fmt.Sprint(*c.VlanID), fmt.Sprintf("VLAN ids run from 0 to %d", link.MaxVLANID))
			}
			v.ID = uint16(*c.VlanID)
		}
		if c.Protocol != "" {
			p, err := link.ParseVLANProtocol(c.Protocol)
			if err != nil {
				return nil, configError(types.ErrInvalidNetworkConfig, "protocol", c.Protocol, err.Error())
			}
			v.Protocol = p
		}
		s = &v
	}
	if err := c.kindKeys(); err != nil {
		return nil, err
	}
	return s, nil
}

// kindKeys refuses a key the kind does not have: an option accepted and
// then dropped would be a silent lie.
func (c *Conf) kindKeys() error {
	macvlanOnly := c.Kind != "macvlan" && c.Kind != "macvtap"
	for _, k := range []struct {
		set  bool
		key  string
		only bool
		kind string
	}{
		{c.BCQueueLen != nil, "bcqueuelen", macvlanOnly, "macvlan and macvtap"},
		{c.BCLim != nil, "bclim", macvlanOnly, "macvlan and macvtap"},
		{c.NoPromisc, "nopromisc", macvlanOnly, "macvlan and macvtap"},
		{len(c.MACAddr) > 0, "macaddr", macvlanOnly, "macvlan and macvtap"},
		{c.Flag != "", "flag", c.Kind != "ipvlan", "ipvlan"},
		{c.VlanID != nil, "vlanId", c.Kind != "vlan", "vlan"},
		{c.Protocol != "", "protocol", c.Kind != "vlan", "vlan"},
		{c.Mode != "", "mode", c.Kind == "vlan", "macvlan, macvtap and ipvlan"},
	} {
		if k.set && k.only {
			return configError(types.ErrInvalidNetworkConfig, k.key, "", fmt.Sprintf("only %s interfaces have it, not %s: drop %s or change kind", k.kind, c.Kind, k.key))
		}
	}
	return nil
}

// parseIPVlanFlag parses the ipvlan port flag by link's own names.
func parseIPVlanFlag(s string) (link.IPVlanFlags, error) {
	for _, f := range []link.IPVlanFlags{link.IPVlanFlagBridge, link.IPVlanFlagPrivate, link.IPVlanFlagVEPA} {
		if s == f.String() {
			return f, nil
		}
	}
	return 0, fmt.Errorf("unknown ipvlan flag: use bridge, private or vepa")
}
