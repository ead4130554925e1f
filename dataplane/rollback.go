package dataplane

// Up's rollback: the journal undone in reverse.

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// rollback undoes the journal in reverse with a fresh context (the
// caller's may be what was cancelled). Links inside a namespace this run
// created are left to go with it, unless they sit on a link in another
// namespace that stays (then the kernel would only remove them later,
// asynchronously).
func (a *applier) rollback(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	hostCreated := a.t.Host != "" && a.created[a.t.Host]
	var errs []error
	n := 0
	for i := len(a.journal) - 1; i >= 0; i-- {
		u := a.journal[i]
		switch u.kind {
		case undoLink:
			if a.created[u.ns] && (u.local || hostCreated) {
				n++
				continue
			}
			removed, err := a.deleteOwnedLink(ctx, u.ns, u.name)
			if err != nil {
				errs = append(errs, err)
			} else if removed {
				n++
			}
		case undoAddr:
			c, err := a.c.get(u.ns)
			if err == nil {
				var m *link.Link
				m, err = link.New(c).Get(ctx, u.name)
				switch {
				case errors.Is(err, link.ErrNotFound):
					err = nil
				case err == nil:
					err = c.DelAddr(ctx, uint32(m.Index), u.prefix)
					if errors.Is(err, unix.EADDRNOTAVAIL) {
						err = nil
					}
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove address %s from %s: %w", u.prefix, u.name, err))
				continue
			}
			a.st.removeAddr(addrRecord{NetNS: u.ns, Link: u.name, Prefix: u.prefix.String()})
			n++
		case undoSysctl:
			if err := u.sysctl.restore(); err != nil {
				errs = append(errs, err)
				continue
			}
			a.st.removeSysctl(u.sysctl)
			n++
		case undoNS:
			a.c.drop(u.name)
			if err := netns.Delete(u.name); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			a.st.removeNS(u.name)
			n++
		}
	}
	if err := a.st.save(a.dir); err != nil {
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// deleteOwnedLink deletes the link if it exists and carries the mark.
func (a *applier) deleteOwnedLink(ctx context.Context, ns, name string) (bool, error) {
	if ns != "" && !netns.Exists(ns) {
		return false, nil
	}
	c, err := a.c.get(ns)
	if err != nil {
		return false, err
	}
	m, err := link.New(c).Get(ctx, name)
	switch {
	case errors.Is(err, link.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("remove %s from %s: %w", name, nsLabel(ns), err)
	}
	if !a.mark.Owns(m.Group, m.Alias) {
		return false, nil
	}
	if err := c.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
		return false, fmt.Errorf("remove %s from %s: %w", name, nsLabel(ns), err)
	}
	return true, nil
}
