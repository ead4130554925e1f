package main

import (
	"github.com/vmlink/vmlink/link"
)

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
