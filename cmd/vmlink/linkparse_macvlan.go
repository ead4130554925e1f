package main

import (
	"errors"
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

// parseMacvlanOpts converts the words after `type macvlan|macvtap`. Which
// options a mode allows is link's rule: Validate checks a new link's spec,
// link.Set a change against the link's actual mode.
func parseMacvlanOpts(kind string, args []string) (*macvlanOpts, error) {
	o := &macvlanOpts{}
	w := &words{op: kind, args: args}
	for ; w.more(); w.i++ {
		o.touched = true
		if err := o.option(w); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// option takes the option at w's position and its values.
func (o *macvlanOpts) option(w *words) error {
	a := w.opt
	switch {
	case matches(a, "mode"):
		m, err := takeKindValue(w, "mode", "private, vepa, bridge, passthru or source", link.ParseMacvlanMode)
		o.mode = m
		return err
	case matches(a, "flag"):
		return o.takeFlag(w)
	case matches(a, "macaddr"):
		return o.takeMACAddr(w)
	case matches(a, "nopromisc"):
		o.setFlag(link.MacvlanFlagNoPromisc)
	case matches(a, "nodst"):
		o.setFlag(link.MacvlanFlagNoDst)
	case matches(a, "bcqueuelen"):
		q, err := takeKindValue(w, "bcqueuelen", "a queue length, 0–4294967295", parseBCQueueLen)
		o.bcqueuelen = q
		return err
	case a == "bclim":
		l, err := takeKindValue(w, "bclim", "a number of links (32-bit integer)", parseBCLim)
		o.bclim = l
		return err
	case matches(a, "help"):
		return errHelp
	default:
		return usagef("%s: unknown option %q: use mode, flag, nopromisc, nodst, macaddr, bcqueuelen or bclim", w.op, a)
	}
	return nil
}

// spec is the spec of a new macvlan or macvtap link with these options.
func (o *macvlanOpts) spec(kind string, base link.Common) link.Spec {
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
	if kind == "macvlan" {
		return &m
	}
	t := link.Macvtap(m)
	return &t
}

// change is the MacvlanChange of `link set DEV type macvlan …`, nil when
// no option was given. A change carries one macaddr operation.
func (o *macvlanOpts) change(dev string) (*link.MacvlanChange, error) {
	if !o.touched {
		return nil, nil
	}
	mc := &link.MacvlanChange{Mode: o.mode, Flags: o.flags, BCQueueLen: o.bcqueuelen, BCCutoff: o.bclim}
	if len(o.ops) > 1 {
		return nil, usagef("link set %s: one macaddr operation per command: split add/del/set/flush into separate commands", dev)
	}
	if len(o.ops) == 1 {
		mc.MACAddrOp, mc.MACAddrs = o.ops[0].op, o.ops[0].macs
	}
	return mc, nil
}

// setFlag adds bit to the flags given (0 for `flag null`: flags given,
// none set).
func (o *macvlanOpts) setFlag(bit link.MacvlanFlags) {
	if o.flags == nil {
		o.flags = new(link.MacvlanFlags)
	}
	*o.flags |= bit
}

// takeFlag takes `flag nopromisc|nodst|null`.
func (o *macvlanOpts) takeFlag(w *words) error {
	v, err := w.need("nopromisc, nodst or null")
	if err != nil {
		return err
	}
	switch v {
	case "nopromisc":
		o.setFlag(link.MacvlanFlagNoPromisc)
	case "nodst":
		o.setFlag(link.MacvlanFlagNoDst)
	case "null":
		o.setFlag(0)
	default:
		return usagef("%s: flag %q: must be nopromisc, nodst or null", w.op, v)
	}
	return nil
}

// takeMACAddr takes one `macaddr` operation and applies it to the list a
// new link starts with.
func (o *macvlanOpts) takeMACAddr(w *words) error {
	v, err := w.need("add MAC, del MAC, set [MAC…] or flush")
	if err != nil {
		return err
	}
	op, err := macaddrOperation(w, v)
	if err != nil {
		return err
	}
	o.ops = append(o.ops, op)
	o.list = applyMACOp(o.list, op)
	o.listTouched = true
	return nil
}

// macaddrOperation reads the operation v names and the MACs it takes:
// one for add and del, every MAC that follows for set, none for flush.
func macaddrOperation(w *words, v string) (macaddrOp, error) {
	switch v {
	case "add", "del":
		op := macaddrOp{op: link.MACAddrAdd}
		if v == "del" {
			op.op = link.MACAddrDel
		}
		m, err := w.need("a MAC address")
		if err != nil {
			return op, err
		}
		mac, err := link.ParseMAC(m)
		if err != nil {
			return op, usagef("%s: macaddr %s %q: %v", w.op, v, m, err)
		}
		op.macs = []net.HardwareAddr{mac}
		return op, nil
	case "set":
		op := macaddrOp{op: link.MACAddrSet}
		for w.i+1 < len(w.args) {
			mac, err := link.ParseMAC(w.args[w.i+1])
			if err != nil {
				break
			}
			op.macs = append(op.macs, mac)
			w.i++
		}
		return op, nil
	case "flush":
		return macaddrOp{op: link.MACAddrFlush}, nil
	}
	return macaddrOp{}, usagef("%s: macaddr %q: use add MAC, del MAC, set [MAC…] or flush", w.op, v)
}

// parseBCQueueLen reads a broadcast queue length.
func parseBCQueueLen(v string) (*uint32, error) {
	n, err := parseUint(v, 32)
	if err != nil {
		return nil, errors.New("must be a number 0–4294967295")
	}
	q := uint32(n)
	return &q, nil
}

// parseBCLim reads a broadcast cutoff, a signed 32-bit number of links.
func parseBCLim(v string) (*int32, error) {
	n, err := strconv.ParseInt(v, 0, 32)
	if err != nil {
		return nil, errors.New("must be a 32-bit integer")
	}
	l := int32(n)
	return &l, nil
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
