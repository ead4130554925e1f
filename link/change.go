package link

import (
	"fmt"
	"net"
	"strconv"
)

// Change is what Set does to an existing link, with the meaning of the
// matching `ip link set` options. Nil or zero fields are left alone.
type Change struct {
	// Up brings the link up (true) or down (false): `up` / `down`.
	Up *bool
	// Name renames the link (`name NEW`); the link must be down.
	Name string
	MTU  *uint32
	// Address sets the MAC (`address`); unicast and non-zero.
	Address net.HardwareAddr
	// NetNS moves the link into another namespace (`netns`). The link
	// goes down when it moves (the kernel's rule); combine with Up to bring
	// it up over there.
	NetNS *Target
	// Alias sets the alias (`alias`); "" removes it.
	Alias  *string
	Group  *uint32
	TxQLen *uint32
	// Master makes the link a port of the bridge called so (`master BR`);
	// "" takes it out of its bridge (`nomaster`).
	Master *string
	// BridgePort changes the link's options as a bridge port (`type
	// bridge_slave …`); the link must be a bridge's port.
	BridgePort *BridgePortChange

	// Kind, if set, must be the link's kind (`type KIND`); Set refuses to
	// apply kind options to a link of another kind. Set fills it in from
	// the link when a kind-specific change is given without it.
	Kind string
	// Kind-specific changes: at most one, matching the link's kind
	// (Macvlan also serves macvtap links).
	VLAN    *VLANChange
	Macvlan *MacvlanChange
	IPVlan  *IPVlanChange
}

// VLANChange changes a VLAN link's flags and QoS maps (`ip link set DEV
// type vlan …`). The id and protocol cannot change: delete and re-create.
type VLANChange struct {
	VLANFlags
	IngressQoS []QoSMapping
	EgressQoS  []QoSMapping
}

// MacvlanChange changes a macvlan or macvtap link (`ip link set DEV type
// macvlan …`).
type MacvlanChange struct {
	// Mode switches the mode; unset keeps it.
	Mode MacvlanMode
	// Flags replaces the flags (nopromisc, nodst; 0 is `flag null`); nil
	// keeps them.
	Flags *MacvlanFlags
	// MACAddrOp and MACAddrs edit a source-mode link's list: add/del take
	// exactly one MAC, flush none, set any number.
	MACAddrOp  MACAddrOp
	MACAddrs   []net.HardwareAddr
	BCQueueLen *uint32
	BCCutoff   *int32
}

// IPVlanChange changes an ipvlan link's mode or flag (`ip link set DEV type
// ipvlan [mode l2|l3|l3s] [bridge|private|vepa]`). Both belong to the
// parent in the kernel: every ipvlan link on the same parent sees the
// change. An unset Flag keeps the link's flag, where `ip link set … mode
// l2` sends flags 0 and so turns a private or vepa parent into bridge.
type IPVlanChange struct {
	Mode IPVlanMode
	Flag IPVlanFlags
}

// BridgePortChange changes a bridge port's options (`ip link set DEV type
// bridge_slave hairpin on|off`).
type BridgePortChange struct {
	// Hairpin lets a frame leave through the port it came in on: the
	// reflective relay VEPA needs from the adjacent switch.
	Hairpin *bool
}

// empty reports whether the change does nothing.
func (c *Change) empty() bool {
	return c.Up == nil && c.Name == "" && c.MTU == nil && c.Address == nil && c.NetNS == nil &&
		c.Alias == nil && c.Group == nil && c.TxQLen == nil && c.Master == nil && c.BridgePort == nil &&
		c.VLAN == nil && c.Macvlan == nil && c.IPVlan == nil
}

// Validate checks what can be checked without looking at the link; Set
// also checks the change against the link's kind and mode.
func (c *Change) Validate(dev string) error {
	kind := c.Kind
	if err := CheckName(dev); err != nil {
		return fieldErr(kind, "", "dev", dev, err.Error())
	}
	if c.empty() {
		return fieldErr(kind, dev, "set", "", "nothing to change: give up, down, mtu, address, netns, alias, group, txqueuelen, name or type options")
	}
	if c.Name != "" {
		if err := CheckName(c.Name); err != nil {
			return fieldErr(kind, dev, "name", c.Name, err.Error())
		}
	}
	if c.MTU != nil && *c.MTU < minMTU {
		return fieldErr(kind, dev, "mtu", strconv.FormatUint(uint64(*c.MTU), 10), fmt.Sprintf("below the Ethernet minimum of %d", minMTU))
	}
	if c.Address != nil {
		if err := CheckUnicastMAC(c.Address); err != nil {
			return fieldErr(kind, dev, "address", c.Address.String(), err.Error())
		}
	}
	if c.Alias != nil && len(*c.Alias) > maxAlias {
		return fieldErr(kind, dev, "alias", "", fmt.Sprintf("is %d bytes long: at most %d", len(*c.Alias), maxAlias))
	}
	if c.Master != nil && *c.Master != "" {
		if err := CheckName(*c.Master); err != nil {
			return fieldErr(kind, dev, "master", *c.Master, err.Error())
		}
	}
	if c.BridgePort != nil && c.BridgePort.Hairpin == nil {
		return fieldErr(kind, dev, "type", "bridge_slave", "nothing to change: give hairpin on or off")
	}
	if err := c.NetNS.validate(kind, dev); err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{c.VLAN != nil, c.Macvlan != nil, c.IPVlan != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return fieldErr(kind, dev, "type", "", "change options of one link kind at a time")
	}
	switch {
	case c.VLAN != nil:
		if c.Kind != "" && c.Kind != "vlan" {
			return fieldErr(kind, dev, "type", c.Kind, "VLAN options need type vlan")
		}
		return validateQoS(dev, c.VLAN.IngressQoS, c.VLAN.EgressQoS)
	case c.Macvlan != nil:
		if c.Kind != "" && c.Kind != "macvlan" && c.Kind != "macvtap" {
			return fieldErr(kind, dev, "type", c.Kind, "macvlan options need type macvlan or macvtap")
		}
		m := c.Macvlan
		if m.Mode != MacvlanModeUnset && !m.Mode.Valid() {
			return badMacvlanMode(kind, dev, m.Mode)
		}
		switch m.MACAddrOp {
		case MACAddrNone:
			if len(m.MACAddrs) > 0 {
				return fieldErr(kind, dev, "macaddr", "", "say what to do with the MACs: add, del, set or flush")
			}
		case MACAddrAdd, MACAddrDel:
			if len(m.MACAddrs) != 1 {
				return fieldErr(kind, dev, "macaddr", m.MACAddrOp.String(), "takes exactly one MAC address")
			}
		case MACAddrFlush:
			if len(m.MACAddrs) != 0 {
				return fieldErr(kind, dev, "macaddr", "flush", "takes no MAC address")
			}
		case MACAddrSet:
		default:
			return fieldErr(kind, dev, "macaddr", m.MACAddrOp.String(), "use add, del, set or flush")
		}
		for _, a := range m.MACAddrs {
			if err := CheckUnicastMAC(a); err != nil {
				return fieldErr(kind, dev, "macaddr", a.String(), err.Error())
			}
		}
		if m.Flags != nil && *m.Flags&^(MacvlanFlagNoPromisc|MacvlanFlagNoDst) != 0 {
			return fieldErr(kind, dev, "flag", fmt.Sprint(*m.Flags), "unknown macvlan flag: use nopromisc, nodst or null")
		}
	case c.IPVlan != nil:
		if c.Kind != "" && c.Kind != "ipvlan" {
			return fieldErr(kind, dev, "type", c.Kind, "ipvlan options need type ipvlan")
		}
		return validateIPVlanOpts(kind, dev, c.IPVlan.Mode, c.IPVlan.Flag)
	}
	return nil
}
