package main

import (
	"net"
	"strconv"

	"github.com/vmlink/vmlink/link"
)

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
