package main

// The `vmlink link` command line, in iproute2's dialect: the same keywords,
// the same prefix abbreviations (`ip` accepts "mod" for "mode" where it
// uses matches(), and so do we, in the same order of precedence), the same
// defaults. Where `ip` would send something the kernel then refuses or
// silently ignores, we refuse it here with a line naming the option and
// the fix.

import (
	"net"

	"github.com/vmlink/vmlink/link"
)

// linkOp is a `vmlink link` subcommand.
type linkOp int

const (
	opInvalid linkOp = iota
	opAdd
	opSet
	opDel
	opShow
	opHelp
	opBatch
)

func (o linkOp) String() string {
	switch o {
	case opAdd:
		return "add"
	case opSet:
		return "set"
	case opDel:
		return "del"
	case opShow:
		return "show"
	case opHelp:
		return "help"
	case opBatch:
		return "batch"
	}
	return "invalid"
}

// linkRequest is one parsed `vmlink link …` command line.
type linkRequest struct {
	op linkOp
	// add
	spec link.Spec
	// set, del, show: the device named
	dev string
	// set
	change link.Change
	// del group N / show group N
	group *uint32
	// show type KIND / del … type KIND / help KIND
	kind string
	// show up
	upOnly bool
	// batch FILE
	file string
}

// parseLinkArgs parses the arguments after `vmlink link`.
func parseLinkArgs(args []string) (*linkRequest, error) {
	if len(args) == 0 {
		return &linkRequest{op: opShow}, nil
	}
	cmd, rest := args[0], args[1:]
	switch {
	case matches(cmd, "add"):
		return parseAdd(rest)
	case matches(cmd, "set"), matches(cmd, "change"):
		return parseSet(rest)
	case matches(cmd, "replace"):
		return nil, usagef("link replace: not supported: delete and add, or use set to change a link")
	case matches(cmd, "delete"):
		return parseDel(rest)
	case matches(cmd, "show"), matches(cmd, "lst"), matches(cmd, "list"):
		return parseShow(rest)
	case matches(cmd, "help"), cmd == "-h", cmd == "--help", cmd == "-help":
		r := &linkRequest{op: opHelp}
		if len(rest) > 0 {
			r.kind = rest[0]
		}
		return r, nil
	case cmd == "batch":
		if len(rest) != 1 {
			return nil, usagef("link batch: give one FILE of `link add|set|del …` lines (- for stdin)")
		}
		return &linkRequest{op: opBatch, file: rest[0]}, nil
	}
	return nil, usagef("link %q: unknown command: use add, set, del, show, batch or help", cmd)
}

// errHelp asks for the help text (`… help`).
var errHelp = usagef("help")

func parseAdd(args []string) (*linkRequest, error) {
	c, err := parseCommon("add", args)
	if err != nil {
		return nil, err
	}
	name := c.dev
	if c.nameGiven && c.dev != c.name {
		return nil, usagef("link add: both name %q and dev %q: give the new link's name once", c.name, c.dev)
	}
	if name == "" {
		return nil, usagef("link add: the new link needs a name: link add NAME link PARENT type KIND …")
	}
	if !c.typeGiven {
		return nil, usagef("link add %s: type is required: add `type vlan|macvlan|macvtap|ipvlan|veth|dummy` and its options", name)
	}
	base := link.Common{
		Name:    name,
		Parent:  c.parent,
		Address: c.address,
		TxQLen:  c.txqlen,
		NetNS:   c.netns,
		Up:      c.up != nil && *c.up,
	}
	if c.mtu != nil {
		base.MTU = *c.mtu
	}
	if c.group != nil {
		base.Group = *c.group
	}
	if c.alias != nil {
		base.Alias = *c.alias
	}
	var spec link.Spec
	kindErr := func(err error) error {
		if err == errHelp {
			return err
		}
		return usagef("link add %s: %v", name, err)
	}
	switch c.kind {
	case "vlan":
		o, err := parseVLANOpts(c.kindArgs)
		if err != nil {
			return nil, kindErr(err)
		}
		if o.id == nil {
			return nil, usagef("link add %s: vlan id is required: add `id N` (0–4094)", name)
		}
		spec = &link.VLAN{Common: base, ID: *o.id, Protocol: o.proto, VLANFlags: o.flags, IngressQoS: o.ingress, EgressQoS: o.egress}
	case "macvlan", "macvtap":
		o, err := parseMacvlanOpts(c.kind, c.kindArgs)
		if err != nil {
			return nil, kindErr(err)
		}
		m := link.Macvlan{Common: base, Mode: o.mode, BCQueueLen: o.bcqueuelen, BCCutoff: o.bclim}
		if o.flags != nil {
			m.NoPromisc = *o.flags&link.MacvlanFlagNoPromisc != 0
			m.NoDst = *o.flags&link.MacvlanFlagNoDst != 0
		}
		m.SourceMACs = o.list
		if o.listTouched && m.SourceMACs == nil {
			// An explicit empty list (`macaddr flush`) is still a list:
			// Validate refuses it outside source mode.
			m.SourceMACs = []net.HardwareAddr{}
		}
		if c.kind == "macvlan" {
			spec = &m
		} else {
			t := link.Macvtap(m)
			spec = &t
		}
	case "ipvlan":
		o, err := parseIPVlanOpts(c.kindArgs)
		if err != nil {
			return nil, kindErr(err)
		}
		spec = &link.IPVlan{Common: base, Mode: o.mode, Flag: o.flag}
	case "veth":
		v, err := parseVethOpts(base, c.kindArgs)
		if err != nil {
			return nil, kindErr(err)
		}
		spec = v
	case "dummy":
		if len(c.kindArgs) > 0 {
			return nil, usagef("link add %s: dummy takes no options, not %q", name, c.kindArgs[0])
		}
		spec = &link.Dummy{Common: base}
	default:
		return nil, usagef("link add %s: type %q is not supported: use vlan, macvlan, macvtap, ipvlan, veth or dummy", name, c.kind)
	}
	if err := spec.Validate(); err != nil {
		return nil, usagef("link add: %v", err)
	}
	return &linkRequest{op: opAdd, spec: spec}, nil
}

func parseSet(args []string) (*linkRequest, error) {
	c, err := parseCommon("set", args)
	if err != nil {
		return nil, err
	}
	if c.dev == "" {
		return nil, usagef("link set: name the link to change: link set DEV …")
	}
	if c.parent != "" {
		return nil, usagef("link set %s: link (the parent) cannot change: delete and add the link again", c.dev)
	}
	ch := link.Change{
		Up:      c.up,
		MTU:     c.mtu,
		Address: c.address,
		NetNS:   c.netns,
		Alias:   c.alias,
		Group:   c.group,
		TxQLen:  c.txqlen,
	}
	if c.nameGiven && c.name != c.dev {
		ch.Name = c.name
	}
	kindErr := func(err error) error {
		if err == errHelp {
			return err
		}
		return usagef("link set %s: %v", c.dev, err)
	}
	if c.typeGiven {
		ch.Kind = c.kind
		switch c.kind {
		case "vlan":
			o, err := parseVLANOpts(c.kindArgs)
			if err != nil {
				return nil, kindErr(err)
			}
			if o.id != nil {
				return nil, usagef("link set %s: vlan id cannot change: delete the link and add it with the new id", c.dev)
			}
			if o.proto != link.VLANProtocolUnset {
				return nil, usagef("link set %s: vlan protocol cannot change: delete the link and add it with the new protocol", c.dev)
			}
			if o.touched {
				ch.VLAN = &link.VLANChange{VLANFlags: o.flags, IngressQoS: o.ingress, EgressQoS: o.egress}
			}
		case "macvlan", "macvtap":
			o, err := parseMacvlanOpts(c.kind, c.kindArgs)
			if err != nil {
				return nil, kindErr(err)
			}
			if o.touched {
				mc := &link.MacvlanChange{Mode: o.mode, Flags: o.flags, BCQueueLen: o.bcqueuelen, BCCutoff: o.bclim}
				if len(o.ops) > 1 {
					return nil, usagef("link set %s: one macaddr operation per command: split add/del/set/flush into separate commands", c.dev)
				}
				if len(o.ops) == 1 {
					mc.MACAddrOp, mc.MACAddrs = o.ops[0].op, o.ops[0].macs
				}
				ch.Macvlan = mc
			}
		case "ipvlan":
			o, err := parseIPVlanOpts(c.kindArgs)
			if err != nil {
				return nil, kindErr(err)
			}
			if o.mode != link.IPVlanModeUnset || o.flag != link.IPVlanFlagUnset {
				ch.IPVlan = &link.IPVlanChange{Mode: o.mode, Flag: o.flag}
			}
		default:
			return nil, usagef("link set %s: type %q has no options vmlink can change: use vlan, macvlan, macvtap or ipvlan", c.dev, c.kind)
		}
	}
	if err := ch.Validate(c.dev); err != nil {
		return nil, usagef("link set: %v", err)
	}
	return &linkRequest{op: opSet, dev: c.dev, change: ch}, nil
}

func parseDel(args []string) (*linkRequest, error) {
	r := &linkRequest{op: opDel}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "group":
			if i+1 >= len(args) {
				return nil, usagef("link del: group needs a number: link del group N")
			}
			i++
			g, err := parseGroup(args[i])
			if err != nil {
				return nil, usagef("link del: group %q: %v", args[i], err)
			}
			if g == 0 {
				return nil, usagef("link del: group 0 is every link's default group, deleting it would delete every link: use a non-zero group")
			}
			r.group = &g
		case matches(a, "type"):
			if i+1 >= len(args) {
				return nil, usagef("link del: type needs a kind")
			}
			i++
			r.kind = args[i]
			if i+1 < len(args) {
				return nil, usagef("link del: nothing may follow type %s, not %q", r.kind, args[i+1])
			}
		case matches(a, "help"):
			return nil, errHelp
		default:
			if a == "dev" {
				if i+1 >= len(args) {
					return nil, usagef("link del: dev needs a device name")
				}
				i++
				a = args[i]
			}
			if r.dev != "" {
				return nil, usagef("link del: two devices, %q and %q: delete one per command (or use group)", r.dev, a)
			}
			if err := link.CheckName(a); err != nil {
				return nil, usagef("link del: device %q %v", a, err)
			}
			r.dev = a
		}
	}
	switch {
	case r.dev == "" && r.group == nil:
		return nil, usagef("link del: name the link: link del DEV (or link del group N)")
	case r.dev != "" && r.group != nil:
		return nil, usagef("link del: give either a device or a group, not both")
	}
	return r, nil
}

func parseShow(args []string) (*linkRequest, error) {
	r := &linkRequest{op: opShow}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "group":
			if i+1 >= len(args) {
				return nil, usagef("link show: group needs a number")
			}
			i++
			g, err := parseGroup(args[i])
			if err != nil {
				return nil, usagef("link show: group %q: %v", args[i], err)
			}
			r.group = &g
		case "up":
			r.upOnly = true
		case "type":
			if i+1 >= len(args) {
				return nil, usagef("link show: type needs a kind, e.g. type macvlan")
			}
			i++
			r.kind = args[i]
		case "master", "vrf", "nomaster":
			return nil, usagef("link show: %s is not supported by vmlink: filter with type or group", a)
		default:
			if matches(a, "help") {
				return nil, errHelp
			}
			if a == "dev" {
				if i+1 >= len(args) {
					return nil, usagef("link show: dev needs a device name")
				}
				i++
				a = args[i]
			}
			if r.dev != "" {
				return nil, usagef("link show: two devices, %q and %q: show one, or all", r.dev, a)
			}
			if err := link.CheckName(a); err != nil {
				return nil, usagef("link show: device %q %v", a, err)
			}
			r.dev = a
		}
	}
	return r, nil
}
