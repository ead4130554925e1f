package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

func (n *Networks) addShim(ctx context.Context, c *rtnl.Conn, rec *NetworkRecord) error {
	name := "vms-" + shortID(rec.ID)[:8]
	addrs, err := allocate(rec, "the host shim", nil)
	if err != nil {
		return err
	}
	h := link.New(c)
	l, err := h.Create(ctx, &link.Macvlan{Common: link.Common{Name: name, Parent: rec.Parent, Group: n.mark().Group(), Up: true}, Mode: link.MacvlanModeBridge})
	if err != nil {
		return fmt.Errorf("host shim: %w", err)
	}
	undo := func() { _ = h.Delete(context.WithoutCancel(ctx), name) }
	alias := n.mark().Alias("shim/" + rec.Name)
	if err := h.Set(ctx, name, link.Change{Alias: &alias}); err != nil {
		undo()
		return err
	}
	var host []netip.Prefix
	for _, p := range addrs {
		// The shim's address is a host route; the subnet (or the range
		// containers get addresses from) is routed through the shim.
		hp := netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
		host = append(host, hp)
		if _, err := ensureAddr(ctx, c, l.Index, hp); err != nil {
			undo()
			return fmt.Errorf("host shim: %w", err)
		}
	}
	for _, cfg := range rec.IPAM {
		dst := cfg.Subnet
		if cfg.IPRange.IsValid() {
			dst = cfg.IPRange
		}
		if err := ensureRoute(ctx, c, rtnl.Route{Dst: dst, OIF: uint32(l.Index), Metric: 50}); err != nil {
			undo()
			return fmt.Errorf("host shim: %w", err)
		}
	}
	rec.Shim = &Attached{NetNS: n.Host, Interface: name, MAC: l.Address.String(), Addrs: host, EndpointID: newID()}
	return nil
}

// outsideShimRoutes are the container addresses the host shim's routes do
// not cover: with an --ip-range the shim routes only the range (the usual
// setup, which leaves the rest of the subnet to hosts outside), so an
// address given with --ip outside it needs a host route of its own.
func outsideShimRoutes(rec *NetworkRecord, addrs []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		for _, c := range rec.IPAM {
			if c.Subnet.Contains(a.Addr()) && c.IPRange.IsValid() && !c.IPRange.Contains(a.Addr()) {
				out = append(out, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()))
			}
		}
	}
	return out
}

// shimHostRoutes adds (or, on disconnect, removes) the host routes through
// the network's shim for a container's addresses outside its routes. A
// route already gone (the shim removed behind our back) is not an error on
// removal.
func (n *Networks) shimHostRoutes(ctx context.Context, rec *NetworkRecord, addrs []netip.Prefix, add bool) error {
	dsts := outsideShimRoutes(rec, addrs)
	if rec.Shim == nil || len(dsts) == 0 {
		return nil
	}
	c, err := n.connFor(rec)
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := link.New(c).Get(ctx, rec.Shim.Interface)
	if errors.Is(err, link.ErrNotFound) {
		err = fmt.Errorf("the link is gone (vmlink net ls repairs the state): %w", err)
	}
	if err != nil {
		if add {
			return fmt.Errorf("host shim %s: %w", rec.Shim.Interface, err)
		}
		return nil
	}
	for _, dst := range dsts {
		r := rtnl.Route{Dst: dst, OIF: uint32(m.Index), Metric: 50}
		if add {
			if err := ensureRoute(ctx, c, r); err != nil {
				return fmt.Errorf("host shim: %w", err)
			}
			continue
		}
		if err := c.DelRoute(ctx, r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("host shim: delete route %s: %w", dst, err)
		}
	}
	return nil
}

// shimWouldLose refuses a host shim that could not work: without an
// --ip-range the shim routes the whole subnet with metric 50, and when the
// host already has an address in that subnet its connected route (metric
// 0, same prefix) wins, so the host's packets to the containers still
// leave through the parent, which the containers never hear.
func shimWouldLose(ctx context.Context, c *rtnl.Conn, rec *NetworkRecord) error {
	addrs, err := c.Addrs(ctx, unix.AF_UNSPEC, 0)
	if err != nil {
		return fmt.Errorf("host shim: list the host's addresses: %w", err)
	}
	for _, cfg := range rec.IPAM {
		if cfg.IPRange.IsValid() {
			continue
		}
		for _, a := range addrs {
			p := a.Prefix()
			if !p.IsValid() || p.Bits() > cfg.Subnet.Bits() || !p.Masked().Contains(cfg.Subnet.Addr()) {
				continue
			}
			return refuse("--host-shim: the host has %s%s, whose route to %s wins over the shim's: add --ip-range (e.g. %s) so the shim routes the containers' range, or remove that address",
				p, linkWhere(ctx, c, a.Index), cfg.Subnet, upperHalf(cfg.Subnet))
		}
	}
	return nil
}

// linkWhere is " on IFNAME" for the link at index, or "".
func linkWhere(ctx context.Context, c *rtnl.Conn, index uint32) string {
	if m, err := c.GetLink(ctx, &rtnl.LinkMessage{Index: int32(index)}); err == nil {
		return " on " + m.Attrs.Name
	}
	return ""
}

// upperHalf is the upper half of a subnet: a range example.
func upperHalf(s netip.Prefix) netip.Prefix {
	if s.Bits() >= s.Addr().BitLen() {
		return s
	}
	b := s.Addr().AsSlice()
	bit := s.Bits()
	b[bit/8] |= 0x80 >> (bit % 8)
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, bit+1)
}
