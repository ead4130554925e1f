package link

import (
	"fmt"
	"net"
	"strings"

	"github.com/vmlink/vmlink/rtnl"
)

// Each kind's file (vlan.go, macvlan.go, ipvlan.go, veth.go, dummy.go)
// holds its spec, its rules and its IFLA_INFO_DATA: what creates or changes
// it, its decoding into a Link and the comparison Ensure makes. These
// functions pick the kind.

// kindInfo builds IFLA_LINKINFO for creating s.
func kindInfo(s Spec) (*rtnl.LinkInfo, error) {
	switch v := s.(type) {
	case *VLAN:
		return vlanLinkInfo(v), nil
	case *Macvlan:
		return &rtnl.LinkInfo{Kind: "macvlan", Data: macvlanData(v)}, nil
	case *Macvtap:
		return &rtnl.LinkInfo{Kind: "macvtap", Data: &rtnl.Macvtap{Macvlan: *macvlanData((*Macvlan)(v))}}, nil
	case *IPVlan:
		return ipvlanLinkInfo(v), nil
	case *Veth:
		return vethLinkInfo(v), nil
	case *Dummy:
		// iproute2 sends the kind alone; dummy has no IFLA_INFO_DATA.
		return &rtnl.LinkInfo{Kind: "dummy"}, nil
	}
	return nil, fmt.Errorf("%s link: kind not supported by vmlink", kindOf(s))
}

// changeInfo builds IFLA_LINKINFO for a Set; nil when ch changes nothing
// kind-specific.
func changeInfo(cur *Link, ch *Change) (*rtnl.LinkInfo, error) {
	switch {
	case ch.Macvlan != nil:
		return macvlanChangeInfo(cur, ch.Macvlan), nil
	case ch.VLAN != nil:
		return vlanChangeInfo(ch.VLAN), nil
	case ch.IPVlan != nil:
		return ipvlanChangeInfo(cur, ch.IPVlan), nil
	}
	return nil, nil
}

// decodeKind fills l's kind-specific part from IFLA_LINKINFO. Other kinds
// (veth, bridge, dummy, kinds without a driver) carry nothing Link
// describes.
func decodeKind(l *Link, info *rtnl.LinkInfo) error {
	switch d := info.Data.(type) {
	case *rtnl.Macvlan:
		l.Macvlan = macvlanInfo(d)
	case *rtnl.Macvtap:
		l.Macvlan = macvlanInfo(&d.Macvlan)
	case *rtnl.VLAN:
		v, err := vlanInfo(d)
		if err != nil {
			return err
		}
		l.VLAN = v
	case *rtnl.IPVlan:
		l.IPVlan = ipvlanInfo(d)
	}
	return nil
}

// compareKind lists how l differs from s in the kind-specific options s
// sets (Ensure refuses to adopt a link that differs).
func compareKind(s Spec, l *Link) []string {
	switch v := s.(type) {
	case *VLAN:
		return compareVLAN(v, l)
	case *Macvlan:
		return compareMacvlan(v, l)
	case *Macvtap:
		return compareMacvlan((*Macvlan)(v), l)
	case *IPVlan:
		return compareIPVlan(v, l)
	}
	return nil
}

// diffs collects "field: have X, want Y" lines for compareKind.
type diffs []string

func (d *diffs) add(field string, have, want any) {
	*d = append(*d, fmt.Sprintf("%s: have %v, want %v", field, have, want))
}

func derefOr[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

func macStrings(as []net.HardwareAddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// kindOf returns a display kind for messages when s may be nil.
func kindOf(s Spec) string {
	if s == nil {
		return "link"
	}
	return strings.TrimSpace(s.Kind())
}
