package verify

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/internal/nsname"
	"github.com/vmlink/vmlink/rtnl"
	"golang.org/x/sys/unix"
)

// DiscoverOptions name and narrow what Discover finds. The zero value
// finds everything and asks Docker at DOCKER_HOST (or its default socket).
type DiscoverOptions struct {
	// DockerHost is the Docker API socket, "unix:///path" (--docker-host).
	DockerHost string
	// Filter keeps only the endpoints it matches.
	Filter EndpointFilter
}

// EndpointFilter narrows discovery to some endpoints. Each non-empty list must
// match (a list matches when any of its entries does).
type EndpointFilter struct {
	// Networks are network names: a Docker network the endpoint's
	// container is attached to, or a vmlink network whose containers'
	// namespaces NetworkMembers lists.
	Networks       []string
	NetworkMembers map[string][]string
	// Containers are container names ("b1", "docker:b1", "podman:p1",
	// "k8s:default/web-0") or ids (at least 4 leading characters).
	Containers []string
	// NetNS are namespaces as `ip netns` names them, as displayed
	// ("docker:b1"), or by path.
	NetNS []string
}

func (f EndpointFilter) empty() bool {
	return len(f.Networks) == 0 && len(f.Containers) == 0 && len(f.NetNS) == 0
}

// String describes the filter for messages: "--container b1,b2".
func (f EndpointFilter) String() string {
	var parts []string
	for _, x := range []struct {
		flag string
		v    []string
	}{{"--network", f.Networks}, {"--container", f.Containers}, {"--netns", f.NetNS}} {
		if len(x.v) > 0 {
			parts = append(parts, x.flag+" "+strings.Join(x.v, ","))
		}
	}
	return strings.Join(parts, " ")
}

// Discover is DiscoverWith without options.
func Discover(ctx context.Context, ns, parent string) (Topology, error) {
	return DiscoverWith(ctx, ns, parent, DiscoverOptions{})
}

// DiscoverWith builds the Topology of a live parent: the interface parent
// in namespace ns ("" is the caller's), its own addresses as the host
// stack, and every macvlan, macvtap, ipvlan and VLAN link stacked on it —
// directly or on a VLAN link of it — in every network namespace of the
// host (internal/netns.Walk: named ones, Docker's, bind mounts, every
// process's), each named as its user knows it (docker:b1, podman:p1,
// k8s:ns/pod, NAME). A link belongs to the parent when its IFLA_LINK is
// the parent's ifindex and its IFLA_LINK_NETNSID names the parent's
// namespace (or is absent and the link lives there). Topology.Search says
// where it looked.
//
// The switch is left unknown (Switch.Reflects nil): Run detects it.
func DiscoverWith(ctx context.Context, ns, parent string, o DiscoverOptions) (Topology, error) {
	var t Topology
	if parent == "" {
		return t, fmt.Errorf("%w: no parent interface: name it (--parent IFACE)", ErrTopology)
	}
	spaces, search, err := openSpaces(ctx, ns, o.DockerHost)
	if err != nil {
		return t, err
	}
	defer func() {
		for _, s := range spaces {
			s.close()
		}
	}()
	search.Filter = o.Filter.String()
	t.Search = search
	home := spaces[0]
	pl := home.byName(parent)
	if pl == nil {
		return t, fmt.Errorf("%w: discover: no interface %q in namespace %s", ErrEnvironment, parent, nsWord(ns))
	}
	t.Parent = Parent{Name: parent, NetNS: ns, MAC: pl.Attrs.Address}
	if t.Parent.Addrs, err = home.addrs(ctx, uint32(pl.Index)); err != nil {
		return t, err
	}

	// lowers maps the parent and every VLAN link found on it to the tag
	// stack their children's frames carry.
	lowers := map[lowerKey]lowerInfo{{0, int(pl.Index)}: {name: parent}}
	// lowerSpaces are the namespaces holding a lower: the only ones a
	// link's IFLA_LINK_NETNSID needs to be resolved against (asking each
	// namespace for every other's id would cost N² requests).
	lowerSpaces := []int{0}
	done := map[lowerKey]bool{}
	for depth := 0; depth < 4; depth++ {
		found := false
		for si, s := range spaces {
			for _, l := range s.links {
				k := lowerKey{si, int(l.Index)}
				if done[k] || l.Attrs.Info == nil {
					continue
				}
				lk, ok := s.lowerKeyOf(ctx, si, &l, lowerSpaces, spaces)
				if !ok {
					continue
				}
				low, ok := lowers[lk]
				if !ok {
					continue
				}
				ep, ok := s.endpoint(&l, low, parent)
				if !ok {
					continue
				}
				if ep.Kind == KindVLAN {
					lowers[k] = lowerInfo{name: l.Attrs.Name, vlans: ep.VLANs}
					if !slices.Contains(lowerSpaces, si) {
						lowerSpaces = append(lowerSpaces, si)
					}
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
				if !o.Filter.matches(s) {
					t.Search.Filtered++
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

// lowerKey is a link by namespace (its index in the spaces) and ifindex.
type lowerKey struct{ space, index int }

// lowerInfo is a lower children sit on: its name, and the VLAN tags the
// children's frames carry on the parent's wire.
type lowerInfo struct {
	name  string
	vlans []VLANTag
}

// lowerKeyOf is where link l of spaces[si] (s) has its lower: the namespace
// (its own, or the one IFLA_LINK_NETNSID names, looked up among
// candidates) and the ifindex there. false when l has none, or it lies in
// a namespace we do not hold.
func (s *space) lowerKeyOf(ctx context.Context, si int, l *rtnl.LinkMessage, candidates []int, spaces []*space) (lowerKey, bool) {
	// The kernel leaves IFLA_LINK out when the lower's index is the
	// link's own, which happens across namespaces (a container's eth0
	// numbered like the host's parent).
	lowerIndex := int(l.Index)
	switch {
	case l.Attrs.Link != nil:
		lowerIndex = int(*l.Attrs.Link)
	case l.Attrs.LinkNetNSID == nil:
		return lowerKey{}, false
	}
	li := si // the namespace the link's lower lives in
	if l.Attrs.LinkNetNSID != nil {
		li = s.spaceOfNSID(ctx, *l.Attrs.LinkNetNSID, candidates, spaces)
		if li < 0 {
			return lowerKey{}, false
		}
	}
	return lowerKey{li, lowerIndex}, true
}

// endpoint is the endpoint link l of s is, on lower low of parent: its
// kind and modes, and for a VLAN link the tag it adds to low's. false for a
// link of a kind verify does not judge.
func (s *space) endpoint(l *rtnl.LinkMessage, low lowerInfo, parent string) (Endpoint, bool) {
	ep := Endpoint{NetNS: s.name, Interface: l.Attrs.Name, MAC: l.Attrs.Address, VLANs: low.vlans, Namespace: s.identity()}
	if s.ns != nil && s.ns.Display != s.name && (s.name != "" || s.ns.Runtime != "") {
		ep.Name = s.ns.Display + "/" + l.Attrs.Name
	}
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
		tag := VLANTag{Protocol: rtnl.VLANProtocol8021Q}
		if d.ID != nil {
			tag.ID = *d.ID
		}
		if d.Protocol != nil {
			tag.Protocol = *d.Protocol
		}
		ep.VLANs = append(append([]VLANTag(nil), low.vlans...), tag)
		ep.Lower = ""
	default:
		return ep, false
	}
	return ep, true
}

func fillMacvlan(ep *Endpoint, d *rtnl.Macvlan) {
	if d.Mode != nil {
		ep.Mode = d.Mode.String()
	} else {
		ep.Mode = rtnl.MacvlanModeVEPA.String() // no mode attribute means VEPA
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
	name  string // what Endpoint.NetNS holds: "" for the caller's, a name under /run/netns, or a path
	ns    *nsname.Namespace
	h     *netns.NS
	conn  *rtnl.Conn
	links []rtnl.LinkMessage
	inode uint64
	// nsids: the ids this namespace gives other spaces (by space index),
	// as far as asked; -1 for none.
	nsids map[int]int32
}

// identity is the namespace's stable identity for reports.
func (s *space) identity() *NetNSIdentity {
	id := &NetNSIdentity{Inode: s.inode, Path: s.name}
	if s.ns == nil {
		return id
	}
	id.Display, id.Path = s.ns.Display, s.ns.Path
	id.Runtime, id.ContainerID, id.Container = s.ns.Runtime, s.ns.ContainerID, s.ns.Container
	if len(s.ns.PIDs) > 0 {
		id.PID = s.ns.PIDs[0]
	}
	return id
}

// matches reports whether the endpoints of s pass the filter.
func (f EndpointFilter) matches(s *space) bool {
	if f.empty() {
		return true
	}
	n := s.ns
	if n == nil {
		n = &nsname.Namespace{}
	}
	if len(f.Networks) > 0 && !slices.ContainsFunc(f.Networks, func(w string) bool {
		return (n.Runtime == nsname.RuntimeDocker && slices.Contains(n.Networks, w)) ||
			(s.name != "" && slices.Contains(f.NetworkMembers[w], s.name))
	}) {
		return false
	}
	if len(f.Containers) > 0 && !slices.ContainsFunc(f.Containers, func(c string) bool {
		return n.Runtime != "" && (c == n.Container || c == n.Display ||
			(len(c) >= 4 && strings.HasPrefix(n.ContainerID, c)))
	}) {
		return false
	}
	if len(f.NetNS) > 0 && !slices.ContainsFunc(f.NetNS, func(w string) bool {
		return w == s.name || (s.ns != nil && (w == n.Name || w == n.Display || w == n.Path))
	}) {
		return false
	}
	return true
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

// spaceOfNSID returns which of the candidate spaces s calls id (-1: none),
// asking s's namespace for the ids it gives them (RTM_GETNSID) once each.
func (s *space) spaceOfNSID(ctx context.Context, id int32, candidates []int, spaces []*space) int {
	if s.nsids == nil {
		s.nsids = map[int]int32{}
	}
	for _, j := range candidates {
		if spaces[j] == s {
			continue
		}
		got, ok := s.nsids[j]
		if !ok {
			got = -1
			if v, err := s.conn.NSIDOf(ctx, spaces[j].h.FD()); err == nil {
				got = v
			}
			s.nsids[j] = got
		}
		if got == id {
			return j
		}
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

// openSpaces opens the parent's namespace first, then every other network
// namespace of the host (netns.Walk, named by nsname.Resolve) and dumps
// their links (which makes the kernel assign the namespace ids links
// refer to; spaceOfNSID asks for them later).
func openSpaces(ctx context.Context, home, dockerHost string) ([]*space, *Search, error) {
	var spaces []*space
	fail := func(err error) ([]*space, *Search, error) {
		for _, s := range spaces {
			s.close()
		}
		return nil, nil, err
	}
	open := func(name string, h *netns.NS, err error) (*space, error) {
		s := &space{name: name, h: h}
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
	var (
		h   *netns.NS
		err error
	)
	if home == "" {
		h, err = netns.Current()
	} else {
		h, err = netns.OpenNameOrPath(home)
	}
	s, err := open(home, h, err)
	if err != nil {
		return nil, nil, err
	}
	spaces = append(spaces, s)

	found, walkErr := netns.Walk(netns.WalkOptions{})
	if len(found) == 0 && walkErr != nil {
		return fail(fmt.Errorf("%w: discover: list namespaces: %w", ErrEnvironment, walkErr))
	}
	named := nsname.Resolve(ctx, found, nsname.Options{DockerHost: dockerHost})
	search := newSearch(named)
	for i := range named.Namespaces {
		n := &named.Namespaces[i]
		if n.Inode == spaces[0].inode {
			spaces[0].ns = n
			continue
		}
		var h *netns.NS
		var err error
		if n.Name != "" {
			h, err = netns.Open(n.Name)
		} else {
			h, err = netns.OpenPath(n.Path)
		}
		s, err := open(n.Open(), h, err)
		if err != nil {
			search.Unreadable++
			continue // gone meanwhile, or not ours to enter: nothing we could probe
		}
		s.ns = n
		spaces = append(spaces, s)
	}
	return spaces, search, nil
}
