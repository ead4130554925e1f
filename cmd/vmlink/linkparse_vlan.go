package main

import (
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
				// Only the number: its range is link's rule (VLAN.Validate).
				n, perr := parseUint(v, 16)
				if perr != nil {
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
