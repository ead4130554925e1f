package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vmlink/vmlink/link"
)

// vlanOpts are the options after `type vlan`.
type vlanOpts struct {
	id      *uint16
	proto   link.VLANProtocol
	flags   link.VLANFlags
	ingress []link.QoSMapping
	egress  []link.QoSMapping
	touched bool // a flag or map was given
}

// parseVLANOpts converts the words after `type vlan`.
func parseVLANOpts(args []string) (*vlanOpts, error) {
	o := &vlanOpts{}
	w := &words{op: "vlan", args: args}
	for ; w.more(); w.i++ {
		if err := o.option(w); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// option takes the option at w's position and its values, in iproute2's
// order of tests (id before ingress-qos-map, so "i" is id).
func (o *vlanOpts) option(w *words) error {
	a := w.opt
	var err error
	switch {
	case matches(a, "protocol"):
		o.proto, err = takeKindValue(w, "protocol", "802.1Q or 802.1ad", link.ParseVLANProtocol)
	case matches(a, "id"):
		o.id, err = takeKindValue(w, "id", "a VLAN id, 0–4094", parseVLANID)
	case matches(a, "reorder_hdr"):
		err = o.takeFlag(w, &o.flags.ReorderHdr, "reorder_hdr")
	case matches(a, "gvrp"):
		err = o.takeFlag(w, &o.flags.GVRP, "gvrp")
	case matches(a, "mvrp"):
		err = o.takeFlag(w, &o.flags.MVRP, "mvrp")
	case matches(a, "loose_binding"):
		err = o.takeFlag(w, &o.flags.LooseBinding, "loose_binding")
	case matches(a, "bridge_binding"):
		err = o.takeFlag(w, &o.flags.BridgeBinding, "bridge_binding")
	case matches(a, "ingress-qos-map"), matches(a, "egress-qos-map"):
		err = o.takeQoS(w)
	case matches(a, "help"):
		return errHelp
	default:
		return usagef("vlan: unknown option %q: use id, protocol, reorder_hdr, gvrp, mvrp, loose_binding, bridge_binding, ingress-qos-map or egress-qos-map", a)
	}
	return err
}

// parseVLANID reads a VLAN id as a number only: its range is link's rule
// (VLAN.Validate).
func parseVLANID(v string) (*uint16, error) {
	n, err := parseUint(v, 16)
	if err != nil {
		return nil, fmt.Errorf("VLAN ids run from 0 to %d (4095 is reserved)", link.MaxVLANID)
	}
	id := uint16(n)
	return &id, nil
}

// takeFlag takes `name on|off` into *p.
func (o *vlanOpts) takeFlag(w *words, p **bool, name string) error {
	b, err := takeKindValue(w, name, "on or off", parseOnOff)
	if err != nil {
		return err
	}
	*p = b
	o.touched = true
	return nil
}

func parseOnOff(v string) (*bool, error) {
	switch v {
	case "on":
		t := true
		return &t, nil
	case "off":
		f := false
		return &f, nil
	}
	return nil, errors.New("must be on or off")
}

// takeQoS takes `ingress-qos-map` or `egress-qos-map` and every FROM:TO
// pair that follows it; the maps add up when given again.
func (o *vlanOpts) takeQoS(w *words) error {
	name := "ingress-qos-map"
	if matches(w.opt, "egress-qos-map") && !matches(w.opt, "ingress-qos-map") {
		name = "egress-qos-map"
	}
	var maps []link.QoSMapping
	for w.i+1 < len(w.args) && strings.Contains(w.args[w.i+1], ":") {
		w.i++
		m, err := parseQoSMapping(w.args[w.i])
		if err != nil {
			return usagef("vlan: %s %q: %v", name, w.args[w.i], err)
		}
		maps = append(maps, m)
	}
	if len(maps) == 0 {
		return usagef("vlan: %s needs FROM:TO pairs, e.g. %s 1:2", name, name)
	}
	if name == "ingress-qos-map" {
		o.ingress = append(o.ingress, maps...)
	} else {
		o.egress = append(o.egress, maps...)
	}
	o.touched = true
	return nil
}

// change is the VLANChange of `link set DEV type vlan …`, nil when no flag
// or map was given; the id and protocol cannot change.
func (o *vlanOpts) change(dev string) (*link.VLANChange, error) {
	if o.id != nil {
		return nil, usagef("link set %s: vlan id cannot change: delete the link and add it with the new id", dev)
	}
	if o.proto != link.VLANProtocolUnset {
		return nil, usagef("link set %s: vlan protocol cannot change: delete the link and add it with the new protocol", dev)
	}
	if !o.touched {
		return nil, nil
	}
	return &link.VLANChange{VLANFlags: o.flags, IngressQoS: o.ingress, EgressQoS: o.egress}, nil
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
