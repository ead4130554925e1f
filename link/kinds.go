package link

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// kindInfo builds IFLA_LINKINFO for creating s.
func kindInfo(s Spec) (*rtnl.LinkInfo, error) {
	switch v := s.(type) {
	case *Macvlan:
		return &rtnl.LinkInfo{Kind: "macvlan", Data: macvlanData(v)}, nil
	case *Macvtap:
		return &rtnl.LinkInfo{Kind: "macvtap", Data: &rtnl.Macvtap{Macvlan: *macvlanData((*Macvlan)(v))}}, nil
	case *Veth:
		peer := &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: v.Peer, Address: v.PeerAddress}}
		if v.PeerUp {
			peer.Flags |= unix.IFF_UP
			peer.Change |= unix.IFF_UP
		}
		return &rtnl.LinkInfo{Kind: "veth", Data: &rtnl.Veth{Peer: peer}}, nil
	case *Dummy:
		// iproute2 sends the kind alone; dummy has no IFLA_INFO_DATA.
		return &rtnl.LinkInfo{Kind: "dummy"}, nil
	}
	return vlanKindInfo(s)
}

// macvlanData is the macvlan/macvtap IFLA_INFO_DATA creating m. The mode is
// always sent (the kernel's default without it is vepa).
func macvlanData(m *Macvlan) *rtnl.Macvlan {
	mode := rtnl.MacvlanMode(m.EffectiveMode())
	d := &rtnl.Macvlan{Mode: &mode, BcQueueLen: m.BCQueueLen, BcCutoff: m.BCCutoff}
	if f := m.Flags(); f != 0 {
		ff := rtnl.MacvlanFlags(f)
		d.Flags = &ff
	}
	if len(m.SourceMACs) > 0 {
		op := rtnl.MacaddrSet
		d.MacaddrMode = &op
		d.MacaddrData = m.SourceMACs
	}
	return d
}

// changeInfo builds IFLA_LINKINFO for a Set; nil when ch changes nothing
// kind-specific.
func changeInfo(cur *Link, ch *Change) (*rtnl.LinkInfo, error) {
	switch {
	case ch.Macvlan != nil:
		c := ch.Macvlan
		d := &rtnl.Macvlan{BcQueueLen: c.BCQueueLen, BcCutoff: c.BCCutoff}
		if c.Mode != MacvlanModeUnset {
			mode := rtnl.MacvlanMode(c.Mode)
			d.Mode = &mode
		}
		if c.Flags != nil {
			f := rtnl.MacvlanFlags(*c.Flags)
			d.Flags = &f
		}
		if km, ok := c.MACAddrOp.KernelMode(); ok {
			op := rtnl.MacaddrMode(km)
			d.MacaddrMode = &op
			switch c.MACAddrOp {
			case MACAddrAdd, MACAddrDel:
				d.Macaddr = c.MACAddrs[0]
			case MACAddrSet:
				d.MacaddrData = c.MACAddrs
			}
		}
		if cur.Kind == "macvtap" {
			return &rtnl.LinkInfo{Kind: "macvtap", Data: &rtnl.Macvtap{Macvlan: *d}}, nil
		}
		return &rtnl.LinkInfo{Kind: "macvlan", Data: d}, nil
	case ch.VLAN != nil, ch.IPVlan != nil:
		return vlanChangeInfo(cur, ch)
	}
	return nil, nil
}

// decodeKind fills l's kind-specific part from IFLA_LINKINFO.
func decodeKind(l *Link, info *rtnl.LinkInfo) error {
	switch d := info.Data.(type) {
	case nil:
		return nil
	case *rtnl.Macvlan:
		l.Macvlan = macvlanInfo(d)
	case *rtnl.Macvtap:
		l.Macvlan = macvlanInfo(&d.Macvlan)
	default:
		return decodeVLANKind(l, info)
	}
	return nil
}

func macvlanInfo(d *rtnl.Macvlan) *MacvlanInfo {
	mi := &MacvlanInfo{
		MACAddrCount:   d.MacaddrCount,
		MACAddrs:       d.MacaddrData,
		BCQueueLen:     d.BcQueueLen,
		BCQueueLenUsed: d.BcQueueLenUsed,
		BCCutoff:       d.BcCutoff,
	}
	if d.Mode != nil {
		mi.Mode = MacvlanMode(*d.Mode)
	}
	if d.Flags != nil {
		mi.Flags = *d.Flags
	}
	return mi
}

// compareKind lists kind-specific differences between s and l.
func compareKind(s Spec, l *Link) []string {
	var d []string
	diff := func(field string, have, want any) {
		d = append(d, fmt.Sprintf("%s: have %v, want %v", field, have, want))
	}
	m := macvlanSpec(s)
	if m == nil {
		return compareVLANKind(s, l)
	}
	if l.Macvlan == nil {
		return []string{"mode: not reported by the kernel"}
	}
	if have, want := l.Macvlan.Mode, m.EffectiveMode(); have != want {
		diff("mode", have, want)
	}
	if have, want := l.Macvlan.Flags, m.Flags(); have != want {
		diff("flags", have, want)
	}
	if m.BCQueueLen != nil && (l.Macvlan.BCQueueLen == nil || *l.Macvlan.BCQueueLen != *m.BCQueueLen) {
		diff("bcqueuelen", derefOr(l.Macvlan.BCQueueLen), *m.BCQueueLen)
	}
	if m.BCCutoff != nil && reportedBCCutoff(l.Macvlan) != *m.BCCutoff {
		diff("bclim", reportedBCCutoff(l.Macvlan), *m.BCCutoff)
	}
	if len(m.SourceMACs) > 0 && !sameMACs(macStrings(l.Macvlan.MACAddrs), macStrings(m.SourceMACs)) {
		diff("macaddr", macStrings(l.Macvlan.MACAddrs), macStrings(m.SourceMACs))
	}
	return d
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

// hasNewerOptions reports whether s asks for an option ignoredByKernel
// checks, so that a batch reads back only those links.
func hasNewerOptions(s Spec) bool {
	m := macvlanSpec(s)
	return m != nil && (m.BCCutoff != nil || m.BCQueueLen != nil)
}

// macvlanSpec is s as a *Macvlan when it is a macvlan or a macvtap (the
// same options), else nil.
func macvlanSpec(s Spec) *Macvlan {
	switch v := s.(type) {
	case *Macvlan:
		return v
	case *Macvtap:
		return (*Macvlan)(v)
	}
	return nil
}

// defaultBCCutoff is the kernel's bclim when none is set. macvlan_fill_info
// leaves IFLA_MACVLAN_BC_CUTOFF out of a dump when the cutoff has this value
// (measured on 6.18: bclim 0, -1, 2 and 8 are reported, 1 is not).
const defaultBCCutoff = 1

// reportedBCCutoff is the cutoff a dump says, the default when absent.
func reportedBCCutoff(m *MacvlanInfo) int32 {
	if m.BCCutoff == nil {
		return defaultBCCutoff
	}
	return *m.BCCutoff
}

// ignoredByKernel finds options of s the kernel accepted without applying:
// attributes newer than the kernel, which it skips without a word (macvlan
// parses IFLA_INFO_DATA leniently). ip reports success for them; the link
// l read back after creation tells. bclim (IFLA_MACVLAN_BC_CUTOFF) came in
// 6.4: Debian 12's 6.1 creates the link and drops the option.
func ignoredByKernel(s Spec, l *Link) error {
	m := macvlanSpec(s)
	if m == nil || l.Macvlan == nil {
		return nil
	}
	// An absent cutoff is the default on 6.4+, so only a bclim other than
	// the default shows that the kernel dropped it.
	if m.BCCutoff != nil && *m.BCCutoff != defaultBCCutoff && l.Macvlan.BCCutoff == nil {
		return fieldErr(s.Kind(), m.Name, "bclim", fmt.Sprint(*m.BCCutoff),
			"this kernel ignores it (IFLA_MACVLAN_BC_CUTOFF needs Linux 6.4 or newer): leave bclim out here")
	}
	if m.BCQueueLen != nil && l.Macvlan.BCQueueLen == nil {
		return fieldErr(s.Kind(), m.Name, "bcqueuelen", fmt.Sprint(*m.BCQueueLen),
			"this kernel ignores it (IFLA_MACVLAN_BC_QUEUE_LEN needs Linux 5.11 or newer): leave bcqueuelen out here")
	}
	return nil
}
