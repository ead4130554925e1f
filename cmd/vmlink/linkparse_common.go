package main

import (
	"errors"
	"net"

	"github.com/vmlink/vmlink/link"
)

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
	w := &words{op: op, args: args}
	for ; w.more(); w.i++ {
		if kw, ok := isUnsupported(w.opt, unsupported); ok {
			return nil, notInVmlink(op, kw)
		}
		typeGiven, err := c.option(w)
		if err != nil {
			return nil, err
		}
		if typeGiven {
			return c, nil
		}
	}
	return c, nil
}

// option takes the option at w's position (and its value); typeGiven
// reports `type KIND`, which ends the common options.
func (c *common) option(w *words) (typeGiven bool, err error) {
	a := w.opt
	switch {
	case a == "up" || a == "down":
		up := a == "up"
		c.up = &up
	case a == "name":
		err = c.takeName(w)
	case matches(a, "link"):
		c.parent, err = w.value("the parent device, e.g. link eth0")
	case matches(a, "address"):
		c.address, err = takeValue(w, false, "address", "a MAC address like 02:00:00:00:00:01", link.ParseMAC)
	case matches(a, "txqueuelen") || a == "qlen" || matches(a, "txqlen"):
		c.txqlen, err = takeValue(w, c.txqlen != nil, "txqueuelen", "a queue length in packets", parseQueueLen)
	case a == "mtu":
		c.mtu, err = takeValue(w, c.mtu != nil, "mtu", "the MTU in bytes, e.g. mtu 1400", parseMTU)
	case a == "netns":
		c.netns, err = takeValue(w, c.netns != nil, "netns", "a namespace name (ip netns list) or a process id", parseNetNS)
	case matches(a, "type"):
		c.kind, err = w.value("a link kind: vlan, macvlan, macvtap, ipvlan, veth or dummy")
		c.typeGiven, c.kindArgs = true, w.rest()
		return true, err
	case matches(a, "alias"):
		var v string
		v, err = w.value("the alias text")
		c.alias = &v
	case a == "group":
		c.group, err = takeValue(w, c.group != nil, "group", "a group number (or default)", parseGroupPtr)
	case a == "mode":
		err = usagef("link %s: mode before type is the link mode (dormant/default), not supported: put the kind's mode after `type KIND`, e.g. type macvlan mode bridge", w.op)
	default:
		err = c.takeDevice(w)
	}
	return false, err
}

// notInVmlink refuses an `ip link` option vmlink does not implement.
func notInVmlink(op, kw string) error {
	return usagef("link %s: option %s is not supported by vmlink: remove it (set it with ip if you need it)", op, kw)
}

// takeValue reads the value of option name with parse, refusing an option
// given twice when given says it already was.
func takeValue[T any](w *words, given bool, name, what string, parse func(string) (T, error)) (T, error) {
	var zero T
	v, err := w.value(what)
	if err != nil {
		return zero, err
	}
	if given {
		return zero, usagef("link %s: %s given twice: give it once", w.op, name)
	}
	t, err := parse(v)
	if err != nil {
		return zero, usagef("link %s: %s %q: %v", w.op, name, v, err)
	}
	return t, nil
}

// takeName takes `name NAME`: the new link's name on add, the new name on
// set, and the device itself when no other word names it.
func (c *common) takeName(w *words) error {
	v, err := w.value("the link's name")
	if err != nil {
		return err
	}
	if c.nameGiven {
		return usagef("link %s: name given twice: give it once", w.op)
	}
	if err := link.CheckName(v); err != nil {
		return usagef("link %s: name %q %v", w.op, v, err)
	}
	c.name, c.nameGiven = v, true
	if c.dev == "" {
		c.dev, c.devFromName = v, true
	}
	return nil
}

// takeDevice takes a word no option claims: after the late unsupported
// options and help, it is the device (`dev` may precede it).
func (c *common) takeDevice(w *words) error {
	a := w.opt
	if kw, ok := isUnsupported(a, unsupportedLate); ok {
		return notInVmlink(w.op, kw)
	}
	if matches(a, "help") {
		return errHelp
	}
	if a == "dev" {
		v, err := w.value("the device name")
		if err != nil {
			return err
		}
		a = v
	}
	// As iplink_parse: a second device name is an error unless the
	// first came from `name` (then `name` is the new name).
	if c.dev != "" && !c.devFromName {
		return usagef("link %s: two device names, %q and %q: give one (an option vmlink does not know is taken for a name)", w.op, c.dev, a)
	}
	if err := link.CheckName(a); err != nil {
		// On add the device named is the new link's name.
		what := "device"
		if w.op == "add" {
			what = "name"
		}
		return usagef("link %s: %s %q %v", w.op, what, a, err)
	}
	c.dev, c.devFromName = a, false
	return nil
}

// parseMTU reads an MTU in bytes.
func parseMTU(v string) (*uint32, error) {
	n, err := parseUint(v, 32)
	if err != nil {
		return nil, errors.New("not a number of bytes, e.g. mtu 1400")
	}
	m := uint32(n)
	return &m, nil
}

// parseQueueLen reads a transmit queue length in packets.
func parseQueueLen(v string) (*uint32, error) {
	n, err := parseUint(v, 32)
	if err != nil {
		return nil, errors.New("not a number of packets (0–4294967295)")
	}
	q := uint32(n)
	return &q, nil
}

// parseGroupPtr is parseGroup for an optional field.
func parseGroupPtr(v string) (*uint32, error) {
	g, err := parseGroup(v)
	if err != nil {
		return nil, err
	}
	return &g, nil
}
