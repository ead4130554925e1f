package dataplane

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// ParentMismatchError is a link called X.N that is not VLAN N on X: the
// name promises a VLAN parent the link is not, so it is not used.
type ParentMismatchError struct {
	Name string
	Base string
	ID   uint16
	Have string // what the link is ("a macvlan", "VLAN 7 on eth1")
}

func (e *ParentMismatchError) Error() string {
	return fmt.Sprintf("parent %s exists but is not VLAN %d on %s (it is %s)", e.Name, e.ID, e.Base, e.Have)
}

// EnsureVLANParent makes sure the VLAN parent called name ("X.N", docker's
// `-o parent=eth0.10`) exists in host as VLAN N on X. A missing one is
// created with the mark (alias "parent/X.N") and IPv6 disabled on it, then
// brought up; an existing one must be VLAN N on X (a *ParentMismatchError
// otherwise) and is used as it is. created reports whether this call made
// it; the caller removes it with its last user.
//
// IPv6 is off on a VLAN parent vmlink creates because the link only
// carries its children's frames: with IPv6 on, its own stack would send
// DAD and router solicitations onto the trunk under the parent's MAC,
// frames nobody asked for that a capture on the wire then shows as a
// station nobody declared. A VLAN parent that already existed is the
// user's and keeps its settings.
func EnsureVLANParent(ctx context.Context, host Namespace, name string, mark Mark) (l *link.Link, created bool, err error) {
	base, id, ok := splitVLANParent(name)
	if !ok {
		return nil, false, fmt.Errorf("parent %s: not a VLAN parent name: use X.N (VLAN N on X)", name)
	}
	c, err := host.dial()
	if err != nil {
		return nil, false, err
	}
	defer c.Close()
	h := link.New(c)
	l, err = h.Get(ctx, name)
	if err == nil {
		if l.Kind != "vlan" || l.VLAN == nil || l.VLAN.ID != id || l.Parent != base {
			return nil, false, &ParentMismatchError{Name: name, Base: base, ID: id, Have: describeLink(l)}
		}
		return l, false, nil
	}
	if !errors.Is(err, link.ErrNotFound) {
		return nil, false, fmt.Errorf("parent %s: %w", name, err)
	}
	spec := &link.VLAN{Common: link.Common{Name: name, Parent: base, Group: mark.Group(), Alias: mark.Alias("parent/" + name)}, ID: id}
	if l, err = h.Create(ctx, spec); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil, false, &FeatureError{Feature: "8021q", Err: err}
		}
		return nil, false, err
	}
	err = host.writeSysctl("net/ipv6/conf/"+name+"/disable_ipv6", "1")
	if err == nil {
		up := true
		err = h.Set(ctx, name, link.Change{Up: &up})
	}
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := c.DelLink(cctx, &rtnl.LinkMessage{Index: l.Index}); derr != nil && !errors.Is(derr, unix.ENODEV) {
			return nil, false, fmt.Errorf("parent %s: %w; deleting it failed too: %v", name, err, derr)
		}
		return nil, false, fmt.Errorf("parent %s: %w", name, err)
	}
	return l, true, nil
}
