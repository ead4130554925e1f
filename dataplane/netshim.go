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
	if err := setAlias(ctx, c, l.Index, n.mark().Alias("shim/"+rec.Name)); err != nil {
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
	m, err := getLink(ctx, c, rec.Shim.Interface)
	if err == nil && m == nil {
		err = fmt.Errorf("the link is gone (vmlink net ls repairs the state)")
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
