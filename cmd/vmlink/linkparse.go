package main

// The `vmlink link` command line, in iproute2's dialect: the same keywords,
// the same prefix abbreviations (`ip` accepts "mod" for "mode" where it
// uses matches(), and so do we, in the same order of precedence), the same
// defaults. Where `ip` would send something the kernel then refuses or
// silently ignores, we refuse it here with a line naming the option and
// the fix.

import (
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

// parseAdd parses `link add`: the common options, then the kind's, into
// a spec that has passed link's Validate.
func parseAdd(args []string) (*linkRequest, error) {
	c, err := parseCommon("add", args)
	if err != nil {
		return nil, err
	}
	name, err := c.newLinkName()
	if err != nil {
		return nil, err
	}
	spec, err := c.spec(name)
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, usagef("link add: %v", err)
	}
	return &linkRequest{op: opAdd, spec: spec}, nil
}

// newLinkName is the name of the link add creates, once, and requires its
// type.
func (c *common) newLinkName() (string, error) {
	name := c.dev
	if c.nameGiven && c.dev != c.name {
		return "", usagef("link add: both name %q and dev %q: give the new link's name once", c.name, c.dev)
	}
	if name == "" {
		return "", usagef("link add: the new link needs a name: link add NAME link PARENT type KIND …")
	}
	if !c.typeGiven {
		return "", usagef("link add %s: type is required: add `type vlan|macvlan|macvtap|ipvlan|veth|dummy` and its options", name)
	}
	return name, nil
}

// base is the part of the new link's spec every kind shares.
func (c *common) base(name string) link.Common {
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
	return base
}

// spec converts the kind's options into the new link's spec.
func (c *common) spec(name string) (link.Spec, error) {
	base := c.base(name)
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
		return &link.VLAN{Common: base, ID: *o.id, Protocol: o.proto, VLANFlags: o.flags, IngressQoS: o.ingress, EgressQoS: o.egress}, nil
	case "macvlan", "macvtap":
		o, err := parseMacvlanOpts(c.kind, c.kindArgs)
		if err != nil {
			return nil, kindErr(err)
		}
		return o.spec(c.kind, base), nil
	case "ipvlan":
		o, err := parseIPVlanOpts(c.kindArgs)
		if err != nil {
			return nil, kindErr(err)
		}
		return &link.IPVlan{Common: base, Mode: o.mode, Flag: o.flag}, nil
	case "veth":
		v, err := parseVethOpts(base, c.kindArgs)
		if err != nil {
			return nil, kindErr(err)
		}
		return v, nil
	case "dummy":
		if len(c.kindArgs) > 0 {
			return nil, usagef("link add %s: dummy takes no options, not %q", name, c.kindArgs[0])
		}
		return &link.Dummy{Common: base}, nil
	}
	return nil, usagef("link add %s: type %q is not supported: use vlan, macvlan, macvtap, ipvlan, veth or dummy", name, c.kind)
}

// parseSet parses `link set`: the common options, then the kind's, into a
// change that has passed link's Validate.
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
	if c.typeGiven {
		if err := c.kindChange(&ch); err != nil {
			return nil, err
		}
	}
	if err := ch.Validate(c.dev); err != nil {
		return nil, usagef("link set: %v", err)
	}
	return &linkRequest{op: opSet, dev: c.dev, change: ch}, nil
}

// kindChange converts the kind's options of `link set … type KIND` into
// ch.
func (c *common) kindChange(ch *link.Change) error {
	kindErr := func(err error) error {
		if err == errHelp {
			return err
		}
		return usagef("link set %s: %v", c.dev, err)
	}
	ch.Kind = c.kind
	switch c.kind {
	case "vlan":
		o, err := parseVLANOpts(c.kindArgs)
		if err != nil {
			return kindErr(err)
		}
		ch.VLAN, err = o.change(c.dev)
		return err
	case "macvlan", "macvtap":
		o, err := parseMacvlanOpts(c.kind, c.kindArgs)
		if err != nil {
			return kindErr(err)
		}
		ch.Macvlan, err = o.change(c.dev)
		return err
	case "ipvlan":
		o, err := parseIPVlanOpts(c.kindArgs)
		if err != nil {
			return kindErr(err)
		}
		if o.mode != link.IPVlanModeUnset || o.flag != link.IPVlanFlagUnset {
			ch.IPVlan = &link.IPVlanChange{Mode: o.mode, Flag: o.flag}
		}
		return nil
	}
	return usagef("link set %s: type %q has no options vmlink can change: use vlan, macvlan, macvtap or ipvlan", c.dev, c.kind)
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
