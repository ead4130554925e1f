package verify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/mdlayher/netlink"
	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
	"golang.org/x/sys/unix"
)

// Discover builds the Topology of a live parent: the interface parent in
// namespace ns ("" is the caller's), its own addresses as the host stack,
// and every macvlan, macvtap, ipvlan and VLAN link stacked on it — directly
// or on a VLAN link of it — in ns itself and in every named namespace under
// /run/netns (what `ip netns list` shows). A link belongs to the parent when
// its IFLA_LINK is the parent's ifindex and its IFLA_LINK_NETNSID names the
// parent's namespace (or is absent and the link lives there).
//
// The switch is left unknown (Switch.Reflects nil): Run detects it.
func Discover(ctx context.Context, ns, parent string) (Topology, error) {
	var t Topology
	if parent == "" {
		return t, fmt.Errorf("%w: no parent interface: name it (--parent IFACE)", ErrTopology)
	}
	spaces, err := openSpaces(ns)
	if err != nil {
		return t, err
	}
	defer func() {
		for _, s := range spaces {
			s.close()
		}
	}()
	home := spaces[0]
	pl := home.byName(parent)
	if pl == nil {
		return t, fmt.Errorf("%w: discover: no interface %q in namespace %s", ErrEnvironment, parent, nsWord(ns))
	}
	t.Parent = Parent{Name: parent, NetNS: ns, MAC: pl.Attrs.Address}
	if t.Parent.Addrs, err = home.addrs(ctx, uint32(pl.Index)); err != nil {
		return t, err
	}

	// lowers maps (namespace index, ifindex) of the parent and of every
	// VLAN link found on it to the tag stack their children's frames carry.
	type lowerKey struct{ space, index int }
	type lowerInfo struct {
		name  string
		vlans []VLANTag
	}
	lowers := map[lowerKey]lowerInfo{{0, int(pl.Index)}: {name: parent}}
	done := map[lowerKey]bool{}
	for depth := 0; depth < 4; depth++ {
		found := false
		for si, s := range spaces {
			for _, l := range s.links {
				k := lowerKey{si, int(l.Index)}
				if done[k] || l.Attrs.Info == nil {
					continue
				}
				// The kernel leaves IFLA_LINK out when the lower's index is
				// the link's own, which happens across namespaces (a
				// container's eth0 numbered like the host's parent).
				lowerIndex := int(l.Index)
				switch {
				case l.Attrs.Link != nil:
					lowerIndex = int(*l.Attrs.Link)
				case l.Attrs.LinkNetNSID == nil:
					continue
				}
				li := si // the namespace the link's lower lives in
				if l.Attrs.LinkNetNSID != nil {
					li = s.spaceOfNSID(*l.Attrs.LinkNetNSID, spaces)
					if li < 0 {
						continue
					}
				}
				low, ok := lowers[lowerKey{li, lowerIndex}]
				if !ok {
					continue
				}
				ep := Endpoint{NetNS: s.name, Interface: l.Attrs.Name, MAC: l.Attrs.Address, VLANs: low.vlans}
				if low.name != parent {
					ep.Lower = low.name
				}
				switch d := l.Attrs.Info.Data.(type) {
				case *rtnl.Macvlan:
					ep.Kind = KindMacvlan
					fillMacvlan(&ep, d)
				case *rtnl.Macvtap:
					ep.Kind = KindMacvtap
					fillMacvlan(&ep, &d.Macvlan)
				case *rtnl.IPVlan:
					ep.Kind = KindIPVlan
					if d.Mode != nil {
						ep.Mode = d.Mode.String()
					}
					if d.Flags != nil {
						ep.IPVlanFlag = d.Flags.String()
					}
				case *rtnl.VLAN:
					ep.Kind = KindVLAN
					tag := VLANTag{Protocol: 0x8100}
					if d.ID != nil {
						tag.ID = *d.ID
					}
					if d.Protocol != nil {
						tag.Protocol = uint16(*d.Protocol)
					}
					ep.VLANs = append(append([]VLANTag(nil), low.vlans...), tag)
					ep.Lower = ""
					lowers[k] = lowerInfo{name: l.Attrs.Name, vlans: ep.VLANs}
				default:
					continue
				}
				done[k] = true
				found = true
				if ep.Addrs, err = s.addrs(ctx, uint32(l.Index)); err != nil {
					return t, err
				}
				if ep.Routes, err = s.routes(ctx, uint32(l.Index)); err != nil {
					return t, err
				}
				if ep.Kind == KindVLAN && len(ep.Addrs) == 0 {
					// A lower only: nothing of its own to probe, but its
					// own frames (IPv6 solicitations) show on the wire.
					t.VLANLinks = append(t.VLANLinks, ep)
					continue
				}
				t.Endpoints = append(t.Endpoints, ep)
			}
		}
		if !found {
			break
		}
	}
	sort.SliceStable(t.Endpoints, func(i, j int) bool {
		return EndpointID(t.Endpoints[i]) < EndpointID(t.Endpoints[j])
	})
	return t, nil
}

func fillMacvlan(ep *Endpoint, d *rtnl.Macvlan) {
	if d.Mode != nil {
		ep.Mode = d.Mode.String()
	} else {
		ep.Mode = "vepa" // no mode attribute means VEPA
	}
	if d.Flags != nil && *d.Flags&rtnl.MacvlanFlagNoPromisc != 0 {
		ep.NoPromisc = true
	}
	ep.SourceMACs = d.MacaddrData
}

func nsWord(ns string) string {
	if ns == "" {
		return "(the current one)"
	}
	return ns
}

// space is one namespace discovery looks into.
type space struct {
	name  string // "" for the caller's (or the parent's when unnamed)
	h     *netns.NS
	conn  *rtnl.Conn
	links []rtnl.LinkMessage
	inode uint64
	// nsids: this namespace's ids for the other spaces, by space index.
	nsids map[int32]int
}

func (s *space) close() {
	if s.conn != nil {
		s.conn.Close()
	}
	if s.h != nil {
		s.h.Close()
	}
}

func (s *space) byName(name string) *rtnl.LinkMessage {
	for i := range s.links {
		if s.links[i].Attrs.Name == name {
			return &s.links[i]
		}
	}
	return nil
}

func (s *space) spaceOfNSID(id int32, _ []*space) int {
	if i, ok := s.nsids[id]; ok {
		return i
	}
	return -1
}

// addrs returns an interface's addresses, IPv4 first, without IPv6
// link-local ones (every interface has one; they say nothing of the setup).
func (s *space) addrs(ctx context.Context, index uint32) ([]netip.Prefix, error) {
	msgs, err := s.conn.Addrs(ctx, unix.AF_UNSPEC, index)
	if err != nil {
		return nil, fmt.Errorf("discover: addresses of ifindex %d in %s: %w", index, nsWord(s.name), err)
	}
	var v4, v6 []netip.Prefix
	for i := range msgs {
		p := msgs[i].Prefix()
		if !p.IsValid() || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	return append(v4, v6...), nil
}

// routes returns the IPv4 routes of the main table out of the interface
// other than the connected routes of its own addresses and the default
// route: what a host shim adds to reach the containers.
func (s *space) routes(ctx context.Context, index uint32) ([]Route, error) {
	msgs, err := s.conn.Routes(ctx, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("discover: routes in %s: %w", nsWord(s.name), err)
	}
	var out []Route
	for _, m := range msgs {
		a := m.Attrs
		if m.Table != unix.RT_TABLE_MAIN || m.Type != unix.RTN_UNICAST || m.DstLen == 0 || m.Protocol == unix.RTPROT_KERNEL ||
			a.OIF == nil || *a.OIF != index || !a.Dst.IsValid() {
			continue
		}
		r := Route{Dst: netip.PrefixFrom(a.Dst, int(m.DstLen))}
		if a.Priority != nil {
			r.Metric = *a.Priority
		}
		out = append(out, r)
	}
	return out, nil
}

// openSpaces opens the parent's namespace first, then every other named
// namespace, dumps their links and learns the namespace ids each assigns to
// the others (after the dumps, which make the kernel assign them).
func openSpaces(home string) ([]*space, error) {
	ctx := context.Background()
	var spaces []*space
	fail := func(err error) ([]*space, error) {
		for _, s := range spaces {
			s.close()
		}
		return nil, err
	}
	open := func(name string) (*space, error) {
		s := &space{name: name}
		var err error
		if name == "" {
			s.h, err = currentNS()
		} else {
			s.h, err = openNetNS(name)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: discover: open namespace %s: %w", ErrEnvironment, nsWord(name), err)
		}
		if s.inode, err = s.h.Inode(); err != nil {
			s.close()
			return nil, fmt.Errorf("%w: discover: namespace %s: %w", ErrEnvironment, nsWord(name), err)
		}
		if s.conn, err = rtnl.Dial(&rtnl.DialOptions{NetNS: s.h.FD()}); err != nil {
			s.close()
			return nil, fmt.Errorf("%w: discover: netlink in namespace %s: %w", ErrEnvironment, nsWord(name), err)
		}
		if s.links, err = s.conn.Links(ctx); err != nil {
			s.close()
			return nil, fmt.Errorf("discover: links in namespace %s: %w", nsWord(name), err)
		}
		return s, nil
	}
	s, err := open(home)
	if err != nil {
		return nil, err
	}
	spaces = append(spaces, s)
	names, err := netns.List()
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fail(fmt.Errorf("discover: list named namespaces: %w", err))
	}
	for _, n := range names {
		if n == home {
			continue
		}
		s, err := open(n)
		if err != nil {
			continue // a namespace we cannot enter holds nothing we can probe
		}
		if s.inode == spaces[0].inode {
			s.close()
			continue
		}
		spaces = append(spaces, s)
	}
	for _, s := range spaces {
		s.nsids = map[int32]int{}
		for j, o := range spaces {
			if o == s {
				continue
			}
			id, err := getNSID(ctx, s.conn, o.h.FD())
			if err == nil && id >= 0 {
				s.nsids[id] = j
			}
		}
	}
	return spaces, nil
}

func currentNS() (*netns.NS, error) { return netns.OpenPath("/proc/thread-self/ns/net") }

// nsidRequest is RTM_GETNSID's body: struct rtgenmsg (padded to 4 bytes)
// and NETNSA_FD naming the namespace to ask about.
type nsidRequest struct{ fd uint32 }

const (
	rtmGetNSID = 90 // RTM_GETNSID
	netnsaNSID = 1  // NETNSA_NSID
	netnsaFD   = 3  // NETNSA_FD
)

func (r nsidRequest) MarshalBinary() ([]byte, error) {
	b := make([]byte, 4, 12)
	b[0] = unix.AF_UNSPEC
	b = binary.NativeEndian.AppendUint16(b, 8)
	b = binary.NativeEndian.AppendUint16(b, netnsaFD)
	return binary.NativeEndian.AppendUint32(b, r.fd), nil
}

// getNSID asks the namespace of c which id it gives the namespace fd
// (-1: none assigned).
func getNSID(ctx context.Context, c *rtnl.Conn, fd int) (int32, error) {
	msgs, err := c.Execute(ctx, netlink.HeaderType(rtmGetNSID), 0, nsidRequest{fd: uint32(fd)})
	if err != nil {
		return -1, err
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return -1, err
		}
		id := int32(-1)
		for ad.Next() {
			if ad.Type() == netnsaNSID {
				id = ad.Int32()
			}
		}
		if err := ad.Err(); err != nil {
			return -1, err
		}
		return id, nil
	}
	return -1, nil
}
