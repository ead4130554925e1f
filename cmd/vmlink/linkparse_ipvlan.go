package main

import (
	"github.com/vmlink/vmlink/link"
)

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
