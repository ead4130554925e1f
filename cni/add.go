package cni

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// mark is the ownership mark of every attachment the plugin makes: the
// link group and alias the rest of vmlink marks its links with. The alias
// object is NETWORK/CONTAINERID/IFNAME, which GC reads back.
var mark = dataplane.Mark{Topology: "cni"}

func attachmentObject(network, containerID, ifname string) string {
	return network + "/" + containerID + "/" + ifname
}

// parseAttachment splits an alias of mark into its network, container id
// and interface name; ok is false for another alias.
func parseAttachment(alias string) (network, containerID, ifname string, ok bool) {
	rest, found := strings.CutPrefix(alias, mark.Alias(""))
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// sandbox is the container's namespace, open for the invocation.
type sandbox struct {
	ns *netns.NS
	c  *rtnl.Conn
}

func openSandbox(path string) (*sandbox, error) {
	ns, err := netns.OpenPath(path)
	if err != nil {
		return nil, err
	}
	c, err := rtnl.Dial(&rtnl.DialOptions{NetNS: ns.FD()})
	if err != nil {
		ns.Close()
		return nil, err
	}
	return &sandbox{ns: ns, c: c}, nil
}

func (s *sandbox) close() {
	s.c.Close()
	s.ns.Close()
}

// masterHandle is a Handle on the namespace the master lives in: the
// plugin's own, or the container's with linkInContainer.
func (p *plugin) masterHandle(sb *sandbox) (*link.Handle, func(), error) {
	if p.conf.LinkInContainer {
		return link.New(sb.c), func() {}, nil
	}
	h, err := link.Open("")
	if err != nil {
		return nil, nil, err
	}
	return h, func() { h.Close() }, nil
}

// master is the configured master, or the interface of the IPv4 default
// route in h's namespace, as the reference plugins default it.
func (p *plugin) master(ctx context.Context, h *link.Handle) (string, error) {
	if p.conf.Master != "" {
		return p.conf.Master, nil
	}
	if p.conf.Kind == "vlan" {
		return "", configError(types.ErrInvalidNetworkConfig, "master", "", "a vlan interface needs its master: add \"master\"")
	}
	routes, err := h.Conn().Routes(ctx, unix.AF_INET)
	if err != nil {
		return "", fmt.Errorf("find the default route's interface: %w", err)
	}
	for _, r := range routes {
		if r.DstLen == 0 && r.Table == unix.RT_TABLE_MAIN && r.Attrs.OIF != nil {
			m, err := h.Conn().GetLink(ctx, &rtnl.LinkMessage{Index: int32(*r.Attrs.OIF)})
			if err == nil {
				return m.Attrs.Name, nil
			}
		}
	}
	return "", configError(types.ErrInvalidNetworkConfig, "master", "", "no master given and no default route to take it from: add \"master\"")
}

// spec is the attachment's link spec, marked as ours.
func (p *plugin) spec(ctx context.Context, h *link.Handle, sb *sandbox) (link.Spec, error) {
	master, err := p.master(ctx, h)
	if err != nil {
		return nil, err
	}
	s, err := p.conf.Spec(p.env.IfName, master)
	if err != nil {
		return nil, err
	}
	b := s.Base()
	b.Up = true
	b.Group = mark.Group()
	b.Alias = mark.Alias(attachmentObject(p.conf.Name, p.env.ContainerID, p.env.IfName))
	if !p.conf.LinkInContainer {
		b.NetNS = &link.Target{FD: sb.ns.FD()}
	}
	return s, nil
}

func (p *plugin) add(ctx context.Context) ([]byte, error) {
	p.cniPathEnv()
	sb, err := openSandbox(p.env.NetNS)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetNS, "open CNI_NETNS "+p.env.NetNS, err.Error())
	}
	defer sb.close()
	h, done, err := p.masterHandle(sb)
	if err != nil {
		return nil, err
	}
	defer done()
	s, err := p.spec(ctx, h, sb)
	if err != nil {
		return nil, err
	}
	// Everything the kernel will be asked is checked before an address
	// is taken from the IPAM plugin: a refused configuration leaks none.
	if err := h.Prepare(ctx, s); err != nil {
		return nil, asCNIError(err)
	}
	if existing, err := link.New(sb.c).Get(ctx, p.env.IfName); err == nil {
		return nil, types.NewError(types.ErrInternal, fmt.Sprintf("the container already has an interface %s (%s)", p.env.IfName, existing.Kind), "CNI_IFNAME must name a new interface")
	}

	// The record comes before the address: a plugin killed between the
	// two leaves a record whose release GC makes harmlessly, never an
	// address no record names.
	if err := p.conf.writeRecord(record{ContainerID: p.env.ContainerID, IfName: p.env.IfName,
		Network: p.conf.Name, NetNS: p.env.NetNS, Conf: p.conf.raw}); err != nil {
		return nil, err
	}
	out, err := p.attach(ctx, s)
	if err != nil {
		if rerr := p.conf.removeRecord(p.env.ContainerID, p.env.IfName); rerr != nil {
			return nil, fmt.Errorf("%w (and %v)", err, rerr)
		}
	}
	return out, err
}

// attach builds the interface, takes its addresses from the IPAM plugin,
// puts them on it and prints the result; a failure leaves neither link
// nor address.
func (p *plugin) attach(ctx context.Context, s link.Spec) ([]byte, error) {
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	ep := &endpoint{spec: s, netns: dataplane.Namespace{Path: p.env.NetNS},
		object: attachmentObject(p.conf.Name, p.env.ContainerID, p.env.IfName)}
	if p.conf.LinkInContainer {
		ep.host = ep.netns
	}
	// The link comes before the addresses, as the reference plugins make
	// it: an IPAM plugin may need it (dhcp runs its client on it in the
	// container, and brings it up itself). It stays down until the second
	// build completes it with what the IPAM plugin gave, so that it comes
	// up addressed and the kernel announces the addresses.
	if err := buildEndpoint(ctx, ep, p.conf.IPAM.Type != ""); err != nil {
		return nil, asCNIError(err)
	}
	if p.conf.IPAM.Type != "" {
		undo := func(err error, release bool) ([]byte, error) {
			bg := context.WithoutCancel(ctx)
			if release {
				_, _ = p.delegate(bg, "DEL")
			}
			if rerr := ep.built.Remove(bg); rerr != nil {
				return nil, fmt.Errorf("%w (and removing %s failed: %v)", err, p.env.IfName, rerr)
			}
			return nil, err
		}
		r, err := p.delegate(ctx, "ADD")
		if err != nil {
			// A failed ADD may have taken an address all the same (dhcp
			// holds a lease it could not report): release it too.
			return undo(err, true)
		}
		ipr, err := current.NewResultFromResult(r)
		if err != nil {
			return undo(fmt.Errorf("read the IPAM result: %w", err), true)
		}
		if len(ipr.IPs) == 0 {
			return undo(types.NewError(types.ErrInternal, "IPAM plugin returned missing IP config", ""), true)
		}
		result.IPs, result.Routes, result.DNS = ipr.IPs, ipr.Routes, ipr.DNS
		if ep.addrs, ep.routes, err = applyIPAM(ipr); err != nil {
			return undo(err, true)
		}
		if err := buildEndpoint(ctx, ep, false); err != nil {
			return undo(asCNIError(err), true)
		}
	}
	result.Interfaces = []*current.Interface{{Name: ep.built.Name, Mac: ep.built.MAC.String(), Sandbox: p.env.NetNS}}
	for _, ip := range result.IPs {
		ip.Interface = current.Int(0)
	}
	if !p.conf.DNS.IsEmpty() {
		result.DNS = p.conf.DNS
	}
	return printResult(result, p.conf.CNIVersion)
}

// applyIPAM turns an IPAM result into addresses and routes the way the
// reference plugins' ConfigureIface does: a route without a gateway takes
// the gateway of its family's address, and a route's priority (metric),
// table and scope (spec 1.1.0) are applied. Its mtu and advmss are not:
// ConfigureIface drops them too.
func applyIPAM(r *current.Result) ([]netip.Prefix, []dataplane.Route, error) {
	var addrs []netip.Prefix
	var gw4, gw6 netip.Addr
	for _, ip := range r.IPs {
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			return nil, nil, fmt.Errorf("IPAM returned an invalid address %v", ip.Address)
		}
		a = a.Unmap()
		ones, _ := ip.Address.Mask.Size()
		addrs = append(addrs, netip.PrefixFrom(a, ones))
		if g, ok := netip.AddrFromSlice(ip.Gateway); ok && ip.Gateway != nil {
			if g.Unmap().Is4() && !gw4.IsValid() {
				gw4 = g.Unmap()
			} else if g.Is6() && !g.Is4In6() && !gw6.IsValid() {
				gw6 = g
			}
		}
	}
	var routes []dataplane.Route
	for _, rt := range r.Routes {
		dst, err := ipNetPrefix(rt.Dst)
		if err != nil {
			return nil, nil, err
		}
		rr := dataplane.Route{Dst: dst}
		if rt.Priority < 0 || rt.Priority > math.MaxUint32 {
			return nil, nil, fmt.Errorf("IPAM returned route %s with priority %d: a metric runs from 0 to %d", dst, rt.Priority, uint32(math.MaxUint32))
		}
		rr.Metric = uint32(rt.Priority)
		if rt.Table != nil {
			if *rt.Table < 0 || *rt.Table > math.MaxUint32 {
				return nil, nil, fmt.Errorf("IPAM returned route %s with table %d: tables run from 0 to %d", dst, *rt.Table, uint32(math.MaxUint32))
			}
			rr.Table = uint32(*rt.Table)
		}
		if rt.Scope != nil {
			if *rt.Scope < 0 || *rt.Scope > math.MaxUint8 {
				return nil, nil, fmt.Errorf("IPAM returned route %s with scope %d: scopes run from 0 to 255", dst, *rt.Scope)
			}
			sc := uint8(*rt.Scope)
			rr.Scope = &sc
		}
		if g, ok := netip.AddrFromSlice(rt.GW); ok && rt.GW != nil {
			rr.Gateway = g.Unmap()
		} else if dst.Addr().Is4() {
			rr.Gateway = gw4
		} else {
			rr.Gateway = gw6
		}
		routes = append(routes, rr)
	}
	return addrs, routes, nil
}

func ipNetPrefix(n net.IPNet) (netip.Prefix, error) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("IPAM returned an invalid route destination %v", n)
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones).Masked(), nil
}

// printResult converts r to the configuration's version.
func printResult(r *current.Result, v string) ([]byte, error) {
	out, err := r.GetAsVersion(v)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if err := out.PrintTo(&b); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// del removes the attachment: the IPAM allocation first (it needs nothing
// but the configuration), then the link if it is still there and ours.
// Nothing it needs may be gone: the namespace, the link, the master.
func (p *plugin) del(ctx context.Context) error {
	p.cniPathEnv()
	if p.conf.IPAM.Type != "" {
		if _, err := p.delegate(ctx, "DEL"); err != nil {
			return err
		}
	}
	if err := deleteIn(ctx, p.env.NetNS, p.env.IfName, attachmentObject(p.conf.Name, p.env.ContainerID, p.env.IfName)); err != nil {
		return err
	}
	return p.conf.removeRecord(p.env.ContainerID, p.env.IfName)
}

// deleteIn deletes the link ifname of object in the namespace at path;
// a path that is empty or no longer a namespace has nothing to delete.
func deleteIn(ctx context.Context, path, ifname, object string) error {
	if path == "" {
		return nil
	}
	sb, err := openSandbox(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "not a namespace") {
			return nil
		}
		return types.NewError(types.ErrInvalidNetNS, "open CNI_NETNS "+path, err.Error())
	}
	defer sb.close()
	return deleteOwned(ctx, sb.c, ifname, object)
}

// deleteOwned deletes the link ifname when it carries the mark of object.
func deleteOwned(ctx context.Context, c *rtnl.Conn, ifname, object string) error {
	l, err := link.New(c).Get(ctx, ifname)
	if errors.Is(err, link.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Group != mark.Group() || l.Alias != mark.Alias(object) {
		return nil
	}
	if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: l.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", ifname, err)
	}
	return nil
}
