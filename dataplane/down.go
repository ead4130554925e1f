package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// Removed is what Down removed.
type Removed struct {
	Links      []string `json:"links"`      // "NETNS/IFNAME" ("/IFNAME" in the caller's namespace)
	Namespaces []string `json:"namespaces"` // namespaces deleted
	Addrs      []string `json:"addresses"`  // "NETNS/IFNAME ADDR" taken back from links not owned
}

// Down removes what Up created for t, and nothing else: links carrying the
// topology's mark in every namespace the topology names, the addresses Up
// added to links it does not own (from the state file), and the namespaces
// it created (marked on their loopback, and listed in the state file). It
// works after a crash of Up, and removing an absent topology is no error.
func Down(ctx context.Context, t *Topology, opts *Options) (*Removed, error) {
	if err := checkTopoName(t.Name); err != nil {
		return nil, ferr("name", t.Name, "%v", err)
	}
	dir := opts.stateDir()
	unlock, err := lockState(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := loadTopoState(dir, t.Name)
	if err != nil {
		return nil, err
	}
	mark := Mark{t.Name}
	c := conns{}
	defer c.close()
	out := &Removed{}

	names := touchedNamespaces(t, st)
	owned, err := ownedNamespaces(ctx, names, st, mark)
	if err != nil {
		return out, fmt.Errorf("down %s: %w", t.Name, err)
	}
	hostOwned := t.Host != "" && owned[t.Host]

	errs := takeBackAddrs(ctx, c, dir, t.Name, st, out)
	// Sysctls changed in namespaces the topology does not own.
	for _, r := range slices.Clone(st.Sysctls) {
		if err := r.restore(); err != nil {
			errs = append(errs, err)
			continue
		}
		st.removeSysctl(r)
	}
	// Marked links. In a namespace that is about to be deleted they go with
	// it — unless they sit on a parent in a namespace that stays, which the
	// kernel would only clean up later.
	for _, n := range names {
		if n != "" && !netns.Exists(n) {
			continue
		}
		if owned[n] && hostOwned {
			continue
		}
		removed, err := deleteMarked(ctx, c, n, mark)
		out.Links = append(out.Links, removed...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, deleteOwnedNamespaces(c, names, owned, st, out)...)
	st.Uses = nil
	if err := st.save(dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("down %s: %w", t.Name, err)
	}
	return out, nil
}

// touchedNamespaces lists every namespace the topology touches, the host
// first so that deleting its parents takes the interfaces on them along in
// one go.
func touchedNamespaces(t *Topology, st *topoState) []string {
	names := []string{t.Host}
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, p := range t.Parents {
		if p.Sandbox != nil {
			add(p.Sandbox.Switch)
		}
	}
	for _, e := range t.Endpoints {
		add(e.netns())
	}
	for _, n := range st.Namespaces {
		add(n)
	}
	if st.Host != "" {
		add(st.Host)
	}
	return names
}

// ownedNamespaces tells which of the existing named namespaces the
// topology created: listed in its state, or marked on their loopback.
func ownedNamespaces(ctx context.Context, names []string, st *topoState, mark Mark) (map[string]bool, error) {
	owned := map[string]bool{}
	for _, n := range names {
		if n == "" || !netns.Exists(n) {
			continue
		}
		o := slices.Contains(st.Namespaces, n)
		if !o {
			var err error
			if o, err = nsOwned(ctx, n, mark.nsAlias()); err != nil {
				return nil, fmt.Errorf("netns %s: %w", n, err)
			}
		}
		owned[n] = o
	}
	return owned, nil
}

// takeBackAddrs removes the addresses Up added to links that are not the
// topology's, except those another topology declares too: they stay, for
// that one to take.
func takeBackAddrs(ctx context.Context, c conns, dir, topology string, st *topoState, out *Removed) []error {
	var errs []error
	for _, r := range slices.Clone(st.Addrs) {
		if r.NetNS != "" && !netns.Exists(r.NetNS) {
			st.removeAddr(r)
			continue
		}
		shared, err := otherDeclares(dir, topology, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if shared {
			st.removeAddr(r)
			continue
		}
		if err := delAddrRecord(ctx, c, r); err != nil {
			errs = append(errs, err)
			continue
		}
		st.removeAddr(r)
		out.Addrs = append(out.Addrs, r.NetNS+"/"+r.Link+" "+r.Prefix)
	}
	return errs
}

// deleteOwnedNamespaces deletes the namespaces the topology created, and
// forgets those of its state that are gone already.
func deleteOwnedNamespaces(c conns, names []string, owned map[string]bool, st *topoState, out *Removed) []error {
	var errs []error
	for _, n := range names {
		if n == "" || !owned[n] {
			continue
		}
		c.drop(n)
		if err := netns.Delete(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		st.removeNS(n)
		out.Namespaces = append(out.Namespaces, n)
	}
	// Namespaces listed in the state that are gone already.
	for _, n := range slices.Clone(st.Namespaces) {
		if !netns.Exists(n) {
			// A crash between creating the name and mounting the
			// namespace leaves a bare file: remove it too.
			if err := netns.Delete(n); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			st.removeNS(n)
		}
	}
	return errs
}

func delAddrRecord(ctx context.Context, c conns, r addrRecord) error {
	conn, err := c.get(r.NetNS)
	if err != nil {
		return err
	}
	m, err := link.New(conn).Get(ctx, r.Link)
	switch {
	case errors.Is(err, link.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	p, err := parsePrefix(r.Prefix)
	if err != nil {
		return fmt.Errorf("state: address %q: %w", r.Prefix, err)
	}
	if err := conn.DelAddr(ctx, uint32(m.Index), p); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove address %s from %s: %w", p, r.Link, err)
	}
	return nil
}

// deleteMarked removes the topology's links from a namespace. When every
// link of the topology's group there carries its mark they go in one
// request by group (one RCU grace period for all); otherwise one by one.
func deleteMarked(ctx context.Context, c conns, ns string, mark Mark) ([]string, error) {
	conn, err := c.get(ns)
	if err != nil {
		return nil, err
	}
	g := mark.Group()
	links, err := link.New(conn).List(ctx, link.Filter{Group: &g})
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", nsLabel(ns), err)
	}
	var ours []*link.Link
	foreign := false
	for _, m := range links {
		if mark.Owns(m.Group, m.Alias) {
			ours = append(ours, m)
		} else {
			foreign = true
		}
	}
	if len(ours) == 0 {
		return nil, nil
	}
	var names []string
	for _, m := range ours {
		names = append(names, ns+"/"+m.Name)
	}
	if !foreign {
		err := conn.DelLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Group: &g}})
		if err != nil && !errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("remove links of group %d in %s: %w", g, nsLabel(ns), err)
		}
		return names, nil
	}
	var errs []error
	for _, m := range ours {
		if err := conn.DelLink(ctx, &rtnl.LinkMessage{Index: m.Index}); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("remove %s from %s: %w", m.Name, nsLabel(ns), err))
		}
	}
	return names, errors.Join(errs...)
}
