package link

import (
	"bytes"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// This file turns specs and changes into rtnl.LinkMessages and kernel
// replies into Links; kinds.go does the IFLA_INFO_DATA part per kind.

func u32p(v uint32) *uint32 { return &v }

// setTarget puts the namespace a link goes to in a message: IFLA_NET_NS_PID
// for a process (as iproute2 does for a number), else IFLA_NET_NS_FD.
func setTarget(a *rtnl.LinkAttrs, t *target) {
	if t == nil || t.t == nil {
		return
	}
	if t.t.PID != 0 {
		a.NetNSPID = u32p(uint32(t.t.PID))
		return
	}
	a.NetNSFD = u32p(uint32(t.fd))
}

// newLinkMessage builds the RTM_NEWLINK creating s on parent p, in the
// target's namespace when there is one. The alias is not in it: the kernel
// ignores IFLA_IFALIAS at creation, so Create and CreateBatch set it after.
func newLinkMessage(s Spec, p *parentInfo, t *target) (*rtnl.LinkMessage, error) {
	b := s.Base()
	m := &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: b.Name}}
	if p != nil {
		m.Attrs.Link = u32p(uint32(p.index))
	}
	if b.MTU != 0 {
		m.Attrs.MTU = u32p(b.MTU)
	}
	if b.Address != nil {
		m.Attrs.Address = b.Address
	}
	if b.TxQLen != nil {
		m.Attrs.TxQLen = u32p(*b.TxQLen)
	}
	if b.Group != 0 {
		m.Attrs.Group = u32p(b.Group)
	}
	if b.Up {
		m.Flags |= unix.IFF_UP
		m.Change |= unix.IFF_UP
	}
	setTarget(&m.Attrs, t)
	info, err := kindInfo(s)
	if err != nil {
		return nil, err
	}
	m.Attrs.Info = info
	return m, nil
}

// aliasMessage is the second request of a create with an alias, sent in
// the namespace the link landed in and addressed by name there (the
// kernel's NLM_F_EXCL made the name the new link's).
func aliasMessage(s Spec) *rtnl.LinkMessage {
	alias := s.Base().Alias
	return &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: s.Base().Name, Alias: &alias}}
}

// changeMessage builds the RTM_NEWLINK (no NLM_F_CREATE) applying ch to
// cur, addressed by index so a rename works.
func changeMessage(cur *Link, ch *Change, t *target) (*rtnl.LinkMessage, error) {
	m := &rtnl.LinkMessage{Index: cur.Index}
	a := &m.Attrs
	if ch.Name != "" {
		a.Name = ch.Name
	}
	if ch.MTU != nil {
		a.MTU = u32p(*ch.MTU)
	}
	if ch.Address != nil {
		a.Address = ch.Address
	}
	if ch.Alias != nil {
		s := *ch.Alias
		a.Alias = &s
	}
	if ch.Group != nil {
		a.Group = u32p(*ch.Group)
	}
	if ch.TxQLen != nil {
		a.TxQLen = u32p(*ch.TxQLen)
	}
	if ch.Up != nil {
		m.Change |= unix.IFF_UP
		if *ch.Up {
			m.Flags |= unix.IFF_UP
		}
	}
	setTarget(a, t)
	info, err := changeInfo(cur, ch)
	if err != nil {
		return nil, err
	}
	if bp := ch.BridgePort; bp != nil {
		if info == nil {
			info = &rtnl.LinkInfo{}
		}
		info.SlaveKind, info.SlaveData = "bridge", &rtnl.BridgePort{Hairpin: bp.Hairpin}
	}
	a.Info = info
	return m, nil
}

// restoreMessage puts back the common fields ch touches as cur had them;
// nil when ch touches none. The link is addressed by index: a rename may
// have happened.
func restoreMessage(cur *Link, ch *Change) *rtnl.LinkMessage {
	m := &rtnl.LinkMessage{Index: cur.Index}
	a := &m.Attrs
	touched := false
	if ch.Name != "" {
		a.Name, touched = cur.Name, true
	}
	if ch.MTU != nil {
		a.MTU, touched = u32p(cur.MTU), true
	}
	if ch.Address != nil && len(cur.Address) > 0 {
		a.Address, touched = cur.Address, true
	}
	if ch.Alias != nil {
		s := cur.Alias
		a.Alias, touched = &s, true
	}
	if ch.Group != nil {
		a.Group, touched = u32p(cur.Group), true
	}
	if ch.TxQLen != nil && cur.TxQLen != nil {
		a.TxQLen, touched = u32p(*cur.TxQLen), true
	}
	if ch.Master != nil {
		a.Master, touched = u32p(uint32(cur.Master)), true
	}
	if ch.BridgePort != nil && cur.BridgePort != nil && cur.BridgePort.Hairpin != nil {
		a.Info = &rtnl.LinkInfo{SlaveKind: "bridge", SlaveData: &rtnl.BridgePort{Hairpin: cur.BridgePort.Hairpin}}
		touched = true
	}
	if ch.Up != nil {
		m.Change |= unix.IFF_UP
		m.Flags |= cur.Flags & unix.IFF_UP
		touched = true
	}
	if !touched {
		return nil
	}
	return m
}

// decodeLink turns a kernel RTM_NEWLINK into a Link (parent name not yet
// resolved).
func decodeLink(m *rtnl.LinkMessage) (*Link, error) {
	a := &m.Attrs
	l := &Link{
		Index:       m.Index,
		Name:        a.Name,
		Type:        m.Type,
		Flags:       m.Flags,
		MinMTU:      a.MinMTU,
		MaxMTU:      a.MaxMTU,
		OperState:   a.OperState,
		Address:     a.Address,
		Broadcast:   a.Broadcast,
		TxQLen:      a.TxQLen,
		Promiscuity: a.Promiscuity,
		Qdisc:       a.Qdisc,
		LinkMode:    a.LinkMode,
		Allmulti:    a.AllMulti,
		NumTxQueues: a.NumTxQueues,
		NumRxQueues: a.NumRxQueues,
		GSOMaxSize:  a.GSOMaxSize,
		GSOMaxSegs:  a.GSOMaxSegs,
		TSOMaxSize:  a.TSOMaxSize,
		TSOMaxSegs:  a.TSOMaxSegs,
		GROMaxSize:  a.GROMaxSize,
	}
	if len(a.AFSpec) > 0 {
		var af rtnl.AFSpec
		if err := af.UnmarshalBinary(a.AFSpec); err != nil {
			return nil, fmt.Errorf("link %s: IFLA_AF_SPEC: %w", a.Name, err)
		}
		l.AddrGenMode = af.INET6AddrGenMode
	}
	// The kernel sends IFLA_LINK only when it differs from the link's own
	// index (rtnl_fill_link_ifindex); a value of 0 means "no parent" too.
	// A link whose parent is in another namespace (IFLA_LINK_NETNSID) can
	// have the parent's index as its own: a container's eth0 numbered 2 on
	// the host's ifindex-2 eth0. Then IFLA_LINK is absent and the parent's
	// index is the link's.
	switch {
	case a.Link != nil && int32(*a.Link) != m.Index:
		l.ParentIndex = int32(*a.Link)
		l.ParentNetNSID = a.LinkNetNSID
	case a.LinkNetNSID != nil:
		l.ParentIndex = m.Index
		l.ParentNetNSID = a.LinkNetNSID
	}
	if a.MTU != nil {
		l.MTU = *a.MTU
	}
	if a.Group != nil {
		l.Group = *a.Group
	}
	if a.Alias != nil {
		l.Alias = *a.Alias
	}
	if a.Master != nil {
		l.Master = int32(*a.Master)
	}
	if a.Info != nil {
		l.Kind = a.Info.Kind
		if p, ok := a.Info.SlaveData.(*rtnl.BridgePort); ok {
			l.BridgePort = &BridgePortInfo{State: p.State, Hairpin: p.Hairpin}
		}
		if err := decodeKind(l, a.Info); err != nil {
			return nil, fmt.Errorf("link %s: %w", l.Name, err)
		}
	}
	return l, nil
}

// compareSpec lists how an existing link differs from s (parent p) in what
// s sets; Ensure refuses to adopt a link that differs.
func compareSpec(s Spec, p *parentInfo, l *Link) []string {
	var d []string
	diff := func(field string, have, want any) {
		d = append(d, fmt.Sprintf("%s: have %v, want %v", field, have, want))
	}
	b := s.Base()
	if l.Kind != s.Kind() {
		diff("type", kindName(l.Kind), s.Kind())
		return d
	}
	if p != nil && l.ParentIndex != p.index {
		have := l.Parent
		if have == "" {
			have = fmt.Sprintf("ifindex %d", l.ParentIndex)
		}
		diff("link", have, b.Parent)
	}
	if b.MTU != 0 && l.MTU != b.MTU {
		diff("mtu", l.MTU, b.MTU)
	}
	if b.Address != nil && !bytes.Equal(l.Address, b.Address) {
		diff("address", l.Address, b.Address)
	}
	if b.Group != 0 && l.Group != b.Group {
		diff("group", l.Group, b.Group)
	}
	if b.Alias != "" && l.Alias != b.Alias {
		diff("alias", fmt.Sprintf("%q", l.Alias), fmt.Sprintf("%q", b.Alias))
	}
	if b.TxQLen != nil && (l.TxQLen == nil || *l.TxQLen != *b.TxQLen) {
		have := "unknown"
		if l.TxQLen != nil {
			have = fmt.Sprint(*l.TxQLen)
		}
		diff("txqueuelen", have, *b.TxQLen)
	}
	return append(d, compareKind(s, l)...)
}

// sameMACs compares MAC lists as sets (the kernel reports the source list
// in hash order).
func sameMACs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
