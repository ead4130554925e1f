package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// Finding is one disagreement between the state file and the kernel that
// List repaired.
type Finding string

// List returns the networks, sorted by name, after reconciling the state
// with the kernel: endpoints whose namespace or interface is gone are
// dropped, a network whose host namespace is gone is dropped, and each
// repair is reported.
func (n *Networks) List(ctx context.Context) ([]*NetworkRecord, []Finding, error) {
	var out []*NetworkRecord
	var found []Finding
	err := n.with(func(st *netState) error {
		for name, rec := range st.Networks {
			if rec.Host != "" && !netns.Exists(rec.Host) {
				found = append(found, Finding(fmt.Sprintf("network %s: its namespace %s is gone: dropped the network", name, rec.Host)))
				delete(st.Networks, name)
				continue
			}
			for cn, a := range rec.Endpoints {
				if !netns.Exists(a.NetNS) {
					found = append(found, Finding(fmt.Sprintf("network %s: container %s is gone (namespace deleted): dropped it", name, cn)))
					delete(rec.Endpoints, cn)
					if err := n.shimHostRoutes(ctx, rec, a.Addrs, false); err != nil {
						return err
					}
					continue
				}
				ec, err := rtnl.DialNetNS(a.NetNS, nil)
				if err != nil {
					return err
				}
				m, err := link.New(ec).Get(ctx, a.Interface)
				ec.Close()
				gone := errors.Is(err, link.ErrNotFound)
				if err != nil && !gone {
					return err
				}
				if gone || !n.mark().Owns(m.Group, m.Alias) {
					found = append(found, Finding(fmt.Sprintf("network %s: container %s has no interface %s any more: dropped it", name, cn, a.Interface)))
					delete(rec.Endpoints, cn)
					if err := n.shimHostRoutes(ctx, rec, a.Addrs, false); err != nil {
						return err
					}
				}
			}
			c, err := n.connFor(rec)
			if err != nil {
				return err
			}
			h := link.New(c)
			_, err = h.Get(ctx, rec.Parent)
			parentGone := errors.Is(err, link.ErrNotFound)
			if parentGone {
				err = nil
			}
			var shim *link.Link
			shimGone := false
			if err == nil && rec.Shim != nil {
				shim, err = h.Get(ctx, rec.Shim.Interface)
				if shimGone = errors.Is(err, link.ErrNotFound); shimGone {
					err = nil
				}
			}
			c.Close()
			if err != nil {
				return err
			}
			if rec.Shim != nil && (shimGone || !n.mark().Owns(shim.Group, shim.Alias)) {
				found = append(found, Finding(fmt.Sprintf("network %s: its host shim %s is gone (deleted by hand): the host no longer reaches the containers; dropped it (recreate the network with --host-shim)", name, rec.Shim.Interface)))
				rec.Shim = nil
			}
			if parentGone {
				found = append(found, Finding(fmt.Sprintf("network %s: its parent %s is gone (its containers' interfaces went with it)", name, rec.Parent)))
				for cn := range rec.Endpoints {
					delete(rec.Endpoints, cn)
				}
			}
		}
		orphans, err := n.removeOrphans(ctx, st)
		found = append(found, orphans...)
		if err != nil {
			return saveAnyway(err)
		}
		for _, rec := range st.Networks {
			out = append(out, rec)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		sort.Slice(found, func(i, j int) bool { return found[i] < found[j] })
		return nil
	})
	return out, found, err
}

// removeOrphans removes what a vmlink killed mid-way (kill -9, a crash)
// created but never recorded: links carrying the networks' mark that no
// record explains — an endpoint interface, a host shim, an auto-created
// parent — and namespaces connect created (their loopback carries the mark)
// that no endpoint uses. The marks are set by the creating request itself
// (the group) or right after it, so nothing of ours goes unnoticed.
func (n *Networks) removeOrphans(ctx context.Context, st *netState) ([]Finding, error) {
	var found []Finding
	var errs []error
	usedNS := map[string]bool{}
	// "NETNS\x00ALIAS", and "NETNS\x00ALIAS\x00IFNAME" for an endpoint
	// marked with the legacy alias, which does not name the interface.
	wantLinks := map[string]bool{}
	for _, rec := range st.Networks {
		if rec.ParentCreated {
			wantLinks[rec.Host+"\x00"+n.mark().Alias("parent/"+rec.Parent)] = true
		}
		if rec.Shim != nil {
			wantLinks[rec.Host+"\x00"+n.mark().Alias("shim/"+rec.Name)] = true
		}
		for _, a := range rec.Endpoints {
			usedNS[a.NetNS] = true
			wantLinks[a.NetNS+"\x00"+n.mark().Alias(endpointObject(rec.Name, a.NetNS, a.Interface))] = true
			wantLinks[a.NetNS+"\x00"+n.mark().Alias(legacyEndpointObject(rec.Name, a.NetNS))+"\x00"+a.Interface] = true
		}
	}
	for _, ns := range st.Pending {
		if usedNS[ns] {
			continue
		}
		// Delete also removes the bare file a kill between creating the
		// name and mounting the namespace leaves behind.
		if _, err := os.Lstat(filepath.Join(netns.Dir, ns)); err == nil {
			if err := netns.Delete(ns); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			found = append(found, Finding(fmt.Sprintf("namespace %s was being created by an interrupted connect: removed it", ns)))
		}
	}
	st.Pending = nil
	names, err := netns.List()
	if err != nil {
		return nil, err
	}
	scan := append([]string{n.Host}, names...)
	seen := map[string]bool{}
	for _, ns := range scan {
		if seen[ns] {
			continue
		}
		seen[ns] = true
		var c *rtnl.Conn
		if ns == "" {
			c, err = rtnl.Dial(nil)
		} else {
			c, err = rtnl.DialNetNS(ns, nil)
		}
		if err != nil {
			continue // deleted meanwhile, or not ours to read
		}
		links, err := link.New(c).List(ctx, link.Filter{})
		if err != nil {
			c.Close()
			continue
		}
		owned := false
		for _, m := range links {
			if m.Name == "lo" && m.Alias == n.mark().nsAlias() {
				owned = true
			}
		}
		if owned && ns != "" && !usedNS[ns] {
			removed, err := n.removeOrphanNS(ctx, c, ns, links)
			if err != nil {
				errs = append(errs, err)
			}
			if removed {
				found = append(found, Finding(fmt.Sprintf("namespace %s was created by an interrupted connect and is used by no network: removed it", ns)))
			}
			continue
		}
		for _, m := range links {
			if m.Group != n.mark().Group() || m.Name == "lo" || !n.mark().Owns(m.Group, m.Alias) {
				continue
			}
			if wantLinks[ns+"\x00"+m.Alias] || wantLinks[ns+"\x00"+m.Alias+"\x00"+m.Name] {
				continue
			}
			if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("remove orphan %s in %s: %w", m.Name, nsLabel(ns), err))
				continue
			}
			found = append(found, Finding(fmt.Sprintf("link %s in %s (%s) belongs to no network (an interrupted vmlink): removed it", m.Name, nsLabel(ns), orDefault(m.Alias, "no alias yet"))))
		}
		c.Close()
	}
	return found, errors.Join(errs...)
}

// removeOrphanNS deletes a namespace connect created that no endpoint uses
// (c is open in it and is closed, links are its links); removed reports
// that the namespace is gone. Its links of ours go first, each by
// RTM_DELLINK: the kernel tears a deleted namespace's links down only
// later, and an ipvlan keeps its addresses on its parent's port until then
// (see detach).
func (n *Networks) removeOrphanNS(ctx context.Context, c *rtnl.Conn, ns string, links []*link.Link) (removed bool, err error) {
	var errs []error
	for _, m := range links {
		if m.Name != "lo" && m.Group == n.mark().Group() {
			if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("remove %s in %s: %w", m.Name, nsLabel(ns), err))
			}
		}
	}
	c.Close()
	if err := netns.Delete(ns); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, errors.Join(append(errs, err)...)
	}
	return true, errors.Join(errs...)
}
