package main

// The `vmlink link` command line, in iproute2's dialect: the same keywords,
// the same prefix abbreviations (`ip` accepts "mod" for "mode" where it
// uses matches(), and so do we, in the same order of precedence), the same
// defaults. Where `ip` would send something the kernel then refuses or
// silently ignores, we refuse it here with a line naming the option and
// the fix.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmlink/vmlink/internal/netns"
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

// matches is iproute2's matches(): arg is a non-empty prefix of keyword.
func matches(arg, keyword string) bool {
	return arg != "" && strings.HasPrefix(keyword, arg)
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

// common collects the options before `type`, shared by add and set.
type common struct {
	name, dev   string
	nameGiven   bool
	devFromName bool // dev was set by `name`, not named on its own
	parent      string
	mtu         *uint32
	address     net.HardwareAddr
	txqlen      *uint32
	netns       *link.Target
	group       *uint32
	alias       *string
	up          *bool
	kind        string
	kindArgs    []string
	typeGiven   bool
}

// unsupported are `ip link` options vmlink does not implement; naming them
// gives a clear error instead of taking them for a device name. Entries
// with prefix true match abbreviations like iproute2's matches().
var unsupported = []struct {
	kw     string
	prefix bool
}{
	{"index", false}, {"broadcast", true}, {"brd", false},
	{"xdp", false}, {"xdpgeneric", false}, {"xdpdrv", false}, {"xdpoffload", false},
	{"multicast", false}, {"allmulticast", false}, {"promisc", false}, {"trailers", false},
	{"arp", false}, {"carrier", false}, {"vf", false}, {"master", true}, {"vrf", false},
	{"nomaster", true}, {"dynamic", true},
}

// unsupportedAfterType are checked after `type` and `alias` in ip's order.
var unsupportedLate = []struct {
	kw     string
	prefix bool
}{
	{"state", false}, {"numtxqueues", true}, {"numrxqueues", true}, {"addrgenmode", true},
	{"link-netns", true}, {"link-netnsid", true}, {"protodown", false}, {"protodown_reason", false},
	{"gso_max_size", false}, {"gso_max_segs", false}, {"gro_max_size", false}, {"parentdev", false},
}

func isUnsupported(arg string, list []struct {
	kw     string
	prefix bool
}) (string, bool) {
	for _, u := range list {
		if arg == u.kw || (u.prefix && matches(arg, u.kw)) {
			return u.kw, true
		}
	}
	return "", false
}

// parseCommon walks the options before `type KIND` the way iplink_parse
// does (same order of keyword tests), stopping at `type`.
func parseCommon(op string, args []string) (*common, error) {
	c := &common{}
	next := func(i int, what string) (string, error) {
		if i+1 >= len(args) {
			return "", usagef("link %s: %s needs a value: %s", op, args[i], what)
		}
		return args[i+1], nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if kw, ok := isUnsupported(a, unsupported); ok {
			return nil, usagef("link %s: option %s is not supported by vmlink: remove it (set it with ip if you need it)", op, kw)
		}
		switch {
		case a == "up" || a == "down":
			up := a == "up"
			c.up = &up
		case a == "name":
			v, err := next(i, "the link's name")
			if err != nil {
				return nil, err
			}
			i++
			if c.nameGiven {
				return nil, usagef("link %s: name given twice: give it once", op)
			}
			if err := link.CheckName(v); err != nil {
				return nil, usagef("link %s: name %q %v", op, v, err)
			}
			c.name, c.nameGiven = v, true
			if c.dev == "" {
				c.dev, c.devFromName = v, true
			}
		case matches(a, "link"):
			v, err := next(i, "the parent device, e.g. link eth0")
			if err != nil {
				return nil, err
			}
			i++
			c.parent = v
		case matches(a, "address"):
			v, err := next(i, "a MAC address like 02:00:00:00:00:01")
			if err != nil {
				return nil, err
			}
			i++
			mac, err := link.ParseMAC(v)
			if err != nil {
				return nil, usagef("link %s: address %q: %v", op, v, err)
			}
			c.address = mac
		case matches(a, "txqueuelen") || a == "qlen" || matches(a, "txqlen"):
			v, err := next(i, "a queue length in packets")
			if err != nil {
				return nil, err
			}
			i++
			if c.txqlen != nil {
				return nil, usagef("link %s: txqueuelen given twice: give it once", op)
			}
			n, err := parseUint(v, 32)
			if err != nil {
				return nil, usagef("link %s: txqueuelen %q: not a number of packets (0–4294967295)", op, v)
			}
			q := uint32(n)
			c.txqlen = &q
		case a == "mtu":
			v, err := next(i, "the MTU in bytes, e.g. mtu 1400")
			if err != nil {
				return nil, err
			}
			i++
			if c.mtu != nil {
				return nil, usagef("link %s: mtu given twice: give it once", op)
			}
			n, err := parseUint(v, 32)
			if err != nil {
				return nil, usagef("link %s: mtu %q: not a number of bytes, e.g. mtu 1400", op, v)
			}
			m := uint32(n)
			c.mtu = &m
		case a == "netns":
			v, err := next(i, "a namespace name (ip netns list) or a process id")
			if err != nil {
				return nil, err
			}
			i++
			if c.netns != nil {
				return nil, usagef("link %s: netns given twice: give it once", op)
			}
			t, err := parseNetNS(v)
			if err != nil {
				return nil, usagef("link %s: netns %q: %v", op, v, err)
			}
			c.netns = t
		case matches(a, "type"):
			v, err := next(i, "a link kind: vlan, macvlan, macvtap, ipvlan, veth or dummy")
			if err != nil {
				return nil, err
			}
			c.kind, c.typeGiven = v, true
			c.kindArgs = args[i+2:]
			return c, nil
		case matches(a, "alias"):
			v, err := next(i, "the alias text")
			if err != nil {
				return nil, err
			}
			i++
			if len(v) > 255 {
				return nil, usagef("link %s: alias is %d bytes long: at most 255", op, len(v))
			}
			c.alias = &v
		case a == "group":
			v, err := next(i, "a group number (or default)")
			if err != nil {
				return nil, err
			}
			i++
			if c.group != nil {
				return nil, usagef("link %s: group given twice: give it once", op)
			}
			g, err := parseGroup(v)
			if err != nil {
				return nil, usagef("link %s: group %q: %v", op, v, err)
			}
			c.group = &g
		case a == "mode":
			return nil, usagef("link %s: mode before type is the link mode (dormant/default), not supported: put the kind's mode after `type KIND`, e.g. type macvlan mode bridge", op)
		default:
			if kw, ok := isUnsupported(a, unsupportedLate); ok {
				return nil, usagef("link %s: option %s is not supported by vmlink: remove it (set it with ip if you need it)", op, kw)
			}
			if matches(a, "help") {
				return nil, errHelp
			}
			if a == "dev" {
				v, err := next(i, "the device name")
				if err != nil {
					return nil, err
				}
				i++
				a = v
			}
			// As iplink_parse: a second device name is an error unless the
			// first came from `name` (then `name` is the new name).
			if c.dev != "" && !c.devFromName {
				return nil, usagef("link %s: two device names, %q and %q: give one (an option vmlink does not know is taken for a name)", op, c.dev, a)
			}
			if err := link.CheckName(a); err != nil {
				// On add the device named is the new link's name.
				what := "device"
				if op == "add" {
					what = "name"
				}
				return nil, usagef("link %s: %s %q %v", op, what, a, err)
			}
			c.dev, c.devFromName = a, false
		}
	}
	return c, nil
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
		o, err := parseMacvlanOpts(c.kind, c.kindArgs, true)
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
			o, err := parseMacvlanOpts(c.kind, c.kindArgs, false)
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

// vlanOpts are the options after `type vlan`.
type vlanOpts struct {
	id      *uint16
	proto   link.VLANProtocol
	flags   link.VLANFlags
	ingress []link.QoSMapping
	egress  []link.QoSMapping
	touched bool // a flag or map was given
}

func onOff(kind, opt, v string) (*bool, error) {
	switch v {
	case "on":
		t := true
		return &t, nil
	case "off":
		f := false
		return &f, nil
	}
	return nil, usagef("%s: %s %q: must be on or off", kind, opt, v)
}

func parseVLANOpts(args []string) (*vlanOpts, error) {
	o := &vlanOpts{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func(what string) (string, error) {
			if i+1 >= len(args) {
				return "", usagef("vlan: %s needs %s", a, what)
			}
			i++
			return args[i], nil
		}
		flag := func(p **bool, name string) error {
			v, err := val("on or off")
			if err != nil {
				return err
			}
			b, err := onOff("vlan", name, v)
			if err != nil {
				return err
			}
			*p = b
			o.touched = true
			return nil
		}
		var err error
		switch {
		case matches(a, "protocol"):
			var v string
			if v, err = val("802.1Q or 802.1ad"); err == nil {
				if o.proto, err = link.ParseVLANProtocol(v); err != nil {
					return nil, usagef("vlan: protocol %q: %v", v, err)
				}
			}
		case matches(a, "id"):
			var v string
			if v, err = val("a VLAN id, 0–4094"); err == nil {
				n, perr := parseUint(v, 16)
				if perr != nil || n > link.MaxVLANID {
					return nil, usagef("vlan: id %q: VLAN ids run from 0 to %d (4095 is reserved)", v, link.MaxVLANID)
				}
				id := uint16(n)
				o.id = &id
			}
		case matches(a, "reorder_hdr"):
			err = flag(&o.flags.ReorderHdr, "reorder_hdr")
		case matches(a, "gvrp"):
			err = flag(&o.flags.GVRP, "gvrp")
		case matches(a, "mvrp"):
			err = flag(&o.flags.MVRP, "mvrp")
		case matches(a, "loose_binding"):
			err = flag(&o.flags.LooseBinding, "loose_binding")
		case matches(a, "bridge_binding"):
			err = flag(&o.flags.BridgeBinding, "bridge_binding")
		case matches(a, "ingress-qos-map"), matches(a, "egress-qos-map"):
			name := "ingress-qos-map"
			if matches(a, "egress-qos-map") && !matches(a, "ingress-qos-map") {
				name = "egress-qos-map"
			}
			var maps []link.QoSMapping
			for i+1 < len(args) && strings.Contains(args[i+1], ":") {
				i++
				m, perr := parseQoSMapping(args[i])
				if perr != nil {
					return nil, usagef("vlan: %s %q: %v", name, args[i], perr)
				}
				maps = append(maps, m)
			}
			if len(maps) == 0 {
				return nil, usagef("vlan: %s needs FROM:TO pairs, e.g. %s 1:2", name, name)
			}
			if name == "ingress-qos-map" {
				o.ingress = append(o.ingress, maps...)
			} else {
				o.egress = append(o.egress, maps...)
			}
			o.touched = true
		case matches(a, "help"):
			return nil, errHelp
		default:
			return nil, usagef("vlan: unknown option %q: use id, protocol, reorder_hdr, gvrp, mvrp, loose_binding, bridge_binding, ingress-qos-map or egress-qos-map", a)
		}
		if err != nil {
			return nil, err
		}
	}
	return o, nil
}

func parseQoSMapping(s string) (link.QoSMapping, error) {
	from, to, _ := strings.Cut(s, ":")
	f, err := parseUint(from, 32)
	if err != nil {
		return link.QoSMapping{}, fmt.Errorf("FROM is not a number: write FROM:TO, e.g. 1:2")
	}
	t, err := parseUint(to, 32)
	if err != nil {
		return link.QoSMapping{}, fmt.Errorf("TO is not a number: write FROM:TO, e.g. 1:2")
	}
	return link.QoSMapping{From: uint32(f), To: uint32(t)}, nil
}

// macaddrOp is one `macaddr …` option.
type macaddrOp struct {
	op   link.MACAddrOp
	macs []net.HardwareAddr
}

// macvlanOpts are the options after `type macvlan|macvtap`.
type macvlanOpts struct {
	mode        link.MacvlanMode
	flags       *link.MacvlanFlags
	ops         []macaddrOp
	list        []net.HardwareAddr // the ops applied to an empty list (add)
	listTouched bool
	bcqueuelen  *uint32
	bclim       *int32
	touched     bool
}

func parseMacvlanOpts(kind string, args []string, create bool) (*macvlanOpts, error) {
	o := &macvlanOpts{}
	setFlag := func(bit link.MacvlanFlags) {
		if o.flags == nil {
			o.flags = new(link.MacvlanFlags)
		}
		*o.flags |= bit
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		need := func(what string) (string, error) {
			if i+1 >= len(args) {
				return "", usagef("%s: %s needs %s", kind, a, what)
			}
			i++
			return args[i], nil
		}
		o.touched = true
		switch {
		case matches(a, "mode"):
			v, err := need("private, vepa, bridge, passthru or source")
			if err != nil {
				return nil, err
			}
			m, err := link.ParseMacvlanMode(v)
			if err != nil {
				return nil, usagef("%s: mode %q: %v", kind, v, err)
			}
			o.mode = m
		case matches(a, "flag"):
			v, err := need("nopromisc, nodst or null")
			if err != nil {
				return nil, err
			}
			switch v {
			case "nopromisc":
				setFlag(link.MacvlanFlagNoPromisc)
			case "nodst":
				setFlag(link.MacvlanFlagNoDst)
			case "null":
				setFlag(0)
			default:
				return nil, usagef("%s: flag %q: must be nopromisc, nodst or null", kind, v)
			}
		case matches(a, "macaddr"):
			v, err := need("add MAC, del MAC, set [MAC…] or flush")
			if err != nil {
				return nil, err
			}
			op := macaddrOp{}
			switch v {
			case "add", "del":
				op.op = link.MACAddrAdd
				if v == "del" {
					op.op = link.MACAddrDel
				}
				m, err := need("a MAC address")
				if err != nil {
					return nil, err
				}
				mac, perr := link.ParseMAC(m)
				if perr != nil {
					return nil, usagef("%s: macaddr %s %q: %v", kind, v, m, perr)
				}
				op.macs = []net.HardwareAddr{mac}
			case "set":
				op.op = link.MACAddrSet
				for i+1 < len(args) {
					mac, perr := link.ParseMAC(args[i+1])
					if perr != nil {
						break
					}
					op.macs = append(op.macs, mac)
					i++
				}
			case "flush":
				op.op = link.MACAddrFlush
			default:
				return nil, usagef("%s: macaddr %q: use add MAC, del MAC, set [MAC…] or flush", kind, v)
			}
			o.ops = append(o.ops, op)
			o.list = applyMACOp(o.list, op)
			o.listTouched = true
		case matches(a, "nopromisc"):
			setFlag(link.MacvlanFlagNoPromisc)
		case matches(a, "nodst"):
			setFlag(link.MacvlanFlagNoDst)
		case matches(a, "bcqueuelen"):
			v, err := need("a queue length, 0–4294967295")
			if err != nil {
				return nil, err
			}
			n, perr := parseUint(v, 32)
			if perr != nil {
				return nil, usagef("%s: bcqueuelen %q: must be a number 0–4294967295", kind, v)
			}
			q := uint32(n)
			o.bcqueuelen = &q
		case a == "bclim":
			v, err := need("a number of links (32-bit integer)")
			if err != nil {
				return nil, err
			}
			n, perr := strconv.ParseInt(v, 0, 32)
			if perr != nil {
				return nil, usagef("%s: bclim %q: must be a 32-bit integer", kind, v)
			}
			l := int32(n)
			o.bclim = &l
		case matches(a, "help"):
			return nil, errHelp
		default:
			return nil, usagef("%s: unknown option %q: use mode, flag, nopromisc, nodst, macaddr, bcqueuelen or bclim", kind, a)
		}
	}
	// Which options a mode allows is link's rule: Validate checks a new
	// link's spec, link.Set a change against the link's actual mode.
	return o, nil
}

// applyMACOp applies a macaddr operation to a list the way the kernel does.
func applyMACOp(list []net.HardwareAddr, op macaddrOp) []net.HardwareAddr {
	switch op.op {
	case link.MACAddrAdd:
		for _, m := range list {
			if m.String() == op.macs[0].String() {
				return list
			}
		}
		return append(list, op.macs[0])
	case link.MACAddrDel:
		out := list[:0:0]
		for _, m := range list {
			if m.String() != op.macs[0].String() {
				out = append(out, m)
			}
		}
		return out
	case link.MACAddrFlush:
		return nil
	case link.MACAddrSet:
		return append([]net.HardwareAddr(nil), op.macs...)
	}
	return list
}

type ipvlanOpts struct {
	mode link.IPVlanMode
	flag link.IPVlanFlags
}

func parseIPVlanOpts(args []string) (*ipvlanOpts, error) {
	o := &ipvlanOpts{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case matches(a, "mode"):
			if i+1 >= len(args) {
				return nil, usagef("ipvlan: mode needs l2, l3 or l3s")
			}
			i++
			m, err := link.ParseIPVlanMode(args[i])
			if err != nil {
				return nil, usagef("ipvlan: mode %q: %v", args[i], err)
			}
			o.mode = m
		case o.flag == link.IPVlanFlagUnset && matches(a, "private"):
			o.flag = link.IPVlanFlagPrivate
		case o.flag == link.IPVlanFlagUnset && matches(a, "vepa"):
			o.flag = link.IPVlanFlagVEPA
		case o.flag == link.IPVlanFlagUnset && matches(a, "bridge"):
			o.flag = link.IPVlanFlagBridge
		case matches(a, "help"):
			return nil, errHelp
		case matches(a, "private"), matches(a, "vepa"), matches(a, "bridge"):
			return nil, usagef("ipvlan: %q: give one of bridge, private or vepa", a)
		default:
			return nil, usagef("ipvlan: unknown option %q: use mode l2|l3|l3s and one of bridge, private, vepa", a)
		}
	}
	return o, nil
}

// parseVethOpts parses `peer [name] NAME [address LLADDR] [up]`.
func parseVethOpts(base link.Common, args []string) (*link.Veth, error) {
	v := &link.Veth{Common: base}
	if len(args) == 0 {
		return nil, usagef("veth: the peer needs a name: type veth peer name PEER")
	}
	if args[0] != "peer" {
		return nil, usagef("veth: unknown option %q: use peer name PEER", args[0])
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		val := func() (string, error) {
			if i+1 >= len(args) {
				return "", usagef("veth: peer %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		switch {
		case a == "up":
			v.PeerUp = true
		case a == "name" || a == "dev":
			s, err := val()
			if err != nil {
				return nil, err
			}
			v.Peer = s
		case matches(a, "address"):
			s, err := val()
			if err != nil {
				return nil, err
			}
			mac, perr := link.ParseMAC(s)
			if perr != nil {
				return nil, usagef("veth: peer address %q: %v", s, perr)
			}
			v.PeerAddress = mac
		default:
			if v.Peer != "" {
				return nil, usagef("veth: unknown peer option %q: use name, address or up", a)
			}
			v.Peer = a
		}
	}
	if v.Peer == "" {
		return nil, usagef("veth: the peer needs a name: type veth peer name PEER")
	}
	return v, nil
}

// parseUint parses like iproute2's get_u32/get_u16 (strtoul with base 0:
// decimal, 0x hex, 0 octal).
func parseUint(s string, bits int) (uint64, error) {
	if s == "" || strings.ContainsAny(s, "_+-") {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 0, bits)
}

// parseGroup parses a link group: a number or a name from
// /etc/iproute2/group ("default" is 0).
func parseGroup(s string) (uint32, error) {
	if n, err := parseUint(s, 32); err == nil {
		return uint32(n), nil
	}
	if g, ok := groupNames()[s]; ok {
		return g, nil
	}
	return 0, fmt.Errorf("not a group number or a name from /etc/iproute2/group")
}

// groupNames reads /etc/iproute2/group (as iproute2 does); "default" is
// always 0.
func groupNames() map[string]uint32 {
	names := map[string]uint32{"default": 0}
	b, err := os.ReadFile("/etc/iproute2/group")
	if err != nil {
		return names
	}
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if n, err := parseUint(f[0], 32); err == nil {
			names[f[1]] = uint32(n)
		}
	}
	return names
}

// parseNetNS parses `netns NAME|PID` like iproute2: a name under /run/netns
// wins; otherwise a number is a process id.
func parseNetNS(s string) (*link.Target, error) {
	if s == "" || strings.Contains(s, "/") {
		return nil, fmt.Errorf("not a namespace name: name one from `ip netns list`, or give a process id")
	}
	if _, err := os.Stat(filepath.Join(netns.Dir, s)); err == nil {
		return &link.Target{Name: s}, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return &link.Target{PID: n}, nil
	}
	// Not there (yet): keep the name; the operation reports the missing
	// namespace with the errno.
	return &link.Target{Name: s}, nil
}
