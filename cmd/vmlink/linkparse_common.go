package main

import (
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
