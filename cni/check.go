package cni

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify"
)

func checkFailed(msg string, details ...string) *types.Error {
	return types.NewError(ErrCheckConfig, msg, strings.Join(details, "; "))
}

// check is CHECK: the reference plugins' checks (IPAM's own CHECK, link
// kind and mode, MAC, addresses, routes) plus the parent ifindex and every
// other field the configuration sets, then the attachment on the wire.
func (p *plugin) check(ctx context.Context) error {
	p.cniPathEnv()
	if err := version.ParsePrevResult(&p.conf.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "decode prevResult: "+err.Error(), "")
	}
	if p.conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs prevResult: the runtime passes the result of ADD", "")
	}
	prev, err := current.NewResultFromResult(p.conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "convert prevResult: "+err.Error(), "")
	}
	if p.conf.IPAM.Type != "" {
		if _, err := p.delegate(ctx, "CHECK"); err != nil {
			return err
		}
	}
	idx := -1
	for i, it := range prev.Interfaces {
		if it.Name == p.env.IfName && (it.Sandbox == p.env.NetNS || it.Sandbox == "") {
			idx = i
		}
	}
	if idx < 0 {
		return checkFailed(fmt.Sprintf("prevResult has no interface %s in sandbox %s", p.env.IfName, p.env.NetNS))
	}
	sb, err := openSandbox(p.env.NetNS)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, "open CNI_NETNS "+p.env.NetNS, err.Error())
	}
	defer sb.close()
	h, done, err := p.masterHandle(sb)
	if err != nil {
		return err
	}
	defer done()
	s, err := p.spec(ctx, h, sb)
	if err != nil {
		return err
	}
	if mac, err := net.ParseMAC(prev.Interfaces[idx].Mac); err == nil {
		s.Base().Address = mac
	}
	s.Base().Up = false
	l, diffs, err := h.Compare(ctx, s)
	switch {
	case errors.Is(err, link.ErrNotFound) && l == nil:
		return checkFailed(fmt.Sprintf("%s is gone from the container", p.env.IfName), err.Error())
	case err != nil:
		return checkFailed(fmt.Sprintf("%s: %v", p.env.IfName, err))
	case len(diffs) > 0:
		return checkFailed(fmt.Sprintf("%s differs from its configuration", p.env.IfName), diffs...)
	}
	if err := checkMasterUp(ctx, h, s.Base().Parent); err != nil {
		return err
	}
	if err := checkUp(l); err != nil {
		return err
	}
	if err := checkAddrs(ctx, sb.c, l, prev, idx); err != nil {
		return err
	}
	if err := checkRoutes(ctx, sb.c, l, prev); err != nil {
		return err
	}
	return p.proveWire(ctx, s, l, sb)
}

// Operational states (IF_OPER_*) CHECK tells apart.
const (
	operUnknown        = 0
	operDown           = 2
	operLowerLayerDown = 3
	operUp             = 6
)

// checkUp: an interface set down, or whose master is down, fails; one that
// is up but not yet operationally up (the kernel's link watch reports
// carrier changes up to a second late) is still settling: try again.
func checkUp(l *link.Link) error {
	if !l.Up() {
		return checkFailed(fmt.Sprintf("%s is down", l.Name), "bring it up or delete and re-add the attachment")
	}
	if l.OperState == nil {
		return nil
	}
	switch *l.OperState {
	case operUp, operUnknown:
		return nil
	case operLowerLayerDown:
		return checkFailed(fmt.Sprintf("the master of %s is down (operstate LOWERLAYERDOWN)", l.Name))
	case operDown:
		// The master is up (checkMasterUp): a carrier change not yet
		// propagated.
	}
	return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("%s is up but not yet operationally up (operstate %d)", l.Name, *l.OperState), "")
}

// checkMasterUp fails when the master is down or has no carrier: the
// attachment's operstate then follows it down.
func checkMasterUp(ctx context.Context, h *link.Handle, master string) error {
	m, err := h.Get(ctx, master)
	if err != nil {
		return checkFailed(fmt.Sprintf("master %s: %v", master, err))
	}
	if !m.Up() {
		return checkFailed(fmt.Sprintf("the master of %s is down", master), "ip link set "+master+" up")
	}
	if m.Flags&unix.IFF_LOWER_UP == 0 {
		return checkFailed(fmt.Sprintf("the master %s has no carrier", master))
	}
	return nil
}

// checkAddrs finds every address of prevResult that belongs to the
// interface on the link; a tentative IPv6 address is a state still
// settling (code 11).
func checkAddrs(ctx context.Context, c *rtnl.Conn, l *link.Link, prev *current.Result, idx int) error {
	msgs, err := c.Addrs(ctx, 0, uint32(l.Index))
	if err != nil {
		return fmt.Errorf("list the addresses of %s: %w", l.Name, err)
	}
	for _, ip := range prev.IPs {
		if ip.Interface != nil && *ip.Interface != idx {
			continue
		}
		want, err := ipNetPrefix(ip.Address)
		if err != nil {
			return err
		}
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		want = netip.PrefixFrom(a.Unmap(), want.Bits())
		found := false
		for _, m := range msgs {
			// Prefix, not IFA_LOCAL: the kernel sends IPv6 addresses in
			// IFA_ADDRESS only.
			if m.Prefix() == want {
				found = true
				if m.Flags&unix.IFA_F_TENTATIVE != 0 {
					return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("address %s on %s is still tentative (duplicate address detection)", want, l.Name), "")
				}
			}
		}
		if !found {
			return checkFailed(fmt.Sprintf("address %s is missing from %s", want, l.Name))
		}
	}
	return nil
}

// checkRoutes finds every route of prevResult in the container, through
// the interface.
func checkRoutes(ctx context.Context, c *rtnl.Conn, l *link.Link, prev *current.Result) error {
	_, routes, err := applyIPAM(prev)
	if err != nil {
		return err
	}
	for _, want := range routes {
		fam := uint8(unix.AF_INET)
		if want.Dst.Addr().Is6() {
			fam = unix.AF_INET6
		}
		have, err := c.Routes(ctx, fam)
		if err != nil {
			return fmt.Errorf("list routes: %w", err)
		}
		found := false
		for _, r := range have {
			if r.DstPrefix() == want.Dst && r.Attrs.Gateway == want.Gateway && r.Attrs.OIF != nil && int32(*r.Attrs.OIF) == l.Index &&
				routeTable(r) == want.Table && sameMetric(r, want.Metric) && (want.Scope == nil || r.Scope == *want.Scope) {
				found = true
			}
		}
		if !found {
			var extra strings.Builder
			if want.Gateway.IsValid() {
				extra.WriteString(" via " + want.Gateway.String())
			}
			extra.WriteString(" dev " + l.Name)
			if want.Table != 0 && want.Table != unix.RT_TABLE_MAIN {
				fmt.Fprintf(&extra, " table %d", want.Table)
			}
			if want.Metric != 0 {
				fmt.Fprintf(&extra, " metric %d", want.Metric)
			}
			if want.Scope != nil {
				fmt.Fprintf(&extra, " scope %d", *want.Scope)
			}
			return checkFailed(fmt.Sprintf("route %s%s is missing", want.Dst, extra.String()))
		}
	}
	return nil
}

// routeTable is the table a dumped route is in, 0 for main (as
// dataplane.Route names it).
func routeTable(r rtnl.RouteMessage) uint32 {
	t := uint32(r.Table)
	if r.Attrs.Table != nil {
		t = *r.Attrs.Table
	}
	if t == unix.RT_TABLE_MAIN {
		return 0
	}
	return t
}

// sameMetric reports whether a dumped route has the metric want asks
// for. The kernel gives an IPv6 route added without one the metric 1024
// (IP6_RT_PRIO_USER).
func sameMetric(r rtnl.RouteMessage, want uint32) bool {
	have := uint32(0)
	if r.Attrs.Priority != nil {
		have = *r.Attrs.Priority
	}
	if r.Family == unix.AF_INET6 && want == 0 {
		want = 1024
	}
	return have == want
}

// proveWire runs vmlink's verifier on this attachment and one sibling on
// the same master: its MAC is unique on the master's segment and the only
// source of its frames there, its frames carry the right VLAN tag, and it
// reaches the sibling (and the host stack) exactly as its mode promises.
// Discovery looks in every namespace (named, bind-mounted, every
// process's), so CNI_NETNS may be any path: the attachment is the
// interface IfName in the namespace of CNI_NETNS's inode. With
// linkInContainer the master, and so the capture, is in the container's
// namespace.
func (p *plugin) proveWire(ctx context.Context, s link.Spec, l *link.Link, sb *sandbox) error {
	ino, err := sb.ns.Inode()
	if err != nil {
		return fmt.Errorf("the container's namespace: %w", err)
	}
	home := ""
	if p.conf.LinkInContainer {
		home = p.env.NetNS
	}
	master := s.Base().Parent
	t, err := verify.Discover(ctx, home, master)
	if err != nil {
		return fmt.Errorf("discover the endpoints on %s: %w", master, err)
	}
	var ours *verify.Endpoint
	var sibling *verify.Endpoint
	for i := range t.Endpoints {
		ep := &t.Endpoints[i]
		switch {
		case ep.Namespace != nil && ep.Namespace.Inode == ino && ep.Interface == p.env.IfName:
			ours = ep
		case sibling == nil && len(ep.Addrs) > 0 && ep.Kind != verify.KindHost:
			sibling = ep
		}
	}
	if ours == nil {
		return checkFailed(fmt.Sprintf("%s in %s is not found on %s by discovery", p.env.IfName, p.env.NetNS, master))
	}
	// Discovery saw every namespace: no other interface on the master may
	// carry a macvlan's own MAC (the kernel refuses duplicates only among
	// macvlan siblings; the host or another kind can still clash). VLANs
	// and ipvlans share their parent's MAC by design.
	if ours.Kind == "macvlan" || ours.Kind == "macvtap" {
		for i := range t.Endpoints {
			if ep := &t.Endpoints[i]; ep != ours && bytes.Equal(ep.MAC, ours.MAC) {
				return checkFailed(fmt.Sprintf("MAC %s of %s is also %s's on %s", ours.MAC, l.Name, ep.Name, master))
			}
		}
	}
	eps := []verify.Endpoint{*ours}
	if sibling != nil {
		eps = append(eps, *sibling)
	}
	t.Endpoints = eps
	rep, err := verify.Run(ctx, t, verify.Options{})
	if errors.Is(err, verify.ErrNoPair) {
		// A lone attachment on a master without an address (typical of
		// linkInContainer: the container's own master): no path to
		// probe, so nothing is captured and the wire part proves no more
		// than the MAC's uniqueness above. CHECK has no result to say it
		// in; it says it on stderr, which runtimes log.
		fmt.Fprintf(os.Stderr, "vmlink: CHECK %s: not proven on the wire: no sibling attachment and no address on %s to probe from, so no frame was captured (only the MAC's uniqueness among the namespaces is proven); give %s an address or add a second attachment\n",
			l.Name, master, master)
		return nil
	}
	if err != nil {
		return fmt.Errorf("verify %s on %s: %w", l.Name, master, err)
	}
	if rep.OK {
		return nil
	}
	var details []string
	for _, c := range rep.Checks {
		if !c.OK && !c.Skipped {
			details = append(details, c.Name+": "+c.Detail)
		}
	}
	for _, pr := range rep.Pairs {
		if !pr.OK {
			details = append(details, fmt.Sprintf("%s -> %s: expected %s, observed %s (%s)", pr.From, pr.To, pr.Expected, pr.Observed, pr.Why))
		}
	}
	return types.NewError(ErrCheckWire, fmt.Sprintf("%s misbehaves on the wire of %s", l.Name, master), strings.Join(details, "; "))
}

// status is STATUS: the master is there and up, and the IPAM plugin says
// it is ready when it speaks STATUS.
func (p *plugin) status(ctx context.Context) error {
	p.cniPathEnv()
	if !p.conf.LinkInContainer {
		h, err := link.Open("")
		if err != nil {
			return err
		}
		defer h.Close()
		master, err := p.master(ctx, h)
		if err != nil {
			return types.NewError(types.ErrPluginNotAvailable, "no master", err.Error())
		}
		ml, err := h.Get(ctx, master)
		if err != nil {
			return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("master %s is missing", master), err.Error())
		}
		if !ml.Up() {
			return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf("master %s is down", master), "bring it up: ip link set "+master+" up")
		}
	}
	if p.ipamSpeaks(ctx, "1.1.0") {
		return invoke.DelegateStatus(ctx, p.conf.IPAM.Type, p.conf.raw, nil)
	}
	return nil
}

// ipamSpeaks reports whether the IPAM plugin supports spec version v (an
// older one, like Debian's host-local 1.1.1, knows no STATUS or GC).
func (p *plugin) ipamSpeaks(ctx context.Context, v string) bool {
	if p.conf.IPAM.Type == "" {
		return false
	}
	path, err := invoke.FindInPath(p.conf.IPAM.Type, filepath.SplitList(p.env.Path))
	if err != nil {
		return false
	}
	info, err := invoke.GetVersionInfo(ctx, path, nil)
	if err != nil {
		return false
	}
	for _, s := range info.SupportedVersions() {
		if s == v {
			return true
		}
	}
	return false
}
