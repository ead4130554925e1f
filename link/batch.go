package link

import (
	"context"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// CreateBatch creates every spec, all or nothing: it validates them all and
// checks their parents first (nothing is sent if one is wrong), then sends
// the RTM_NEWLINKs pipelined through rtnl's Batch (many per sendmsg). If
// the kernel refuses any, every link the batch created is deleted again and
// the error names the first refusal and how many failed.
//
// For speed give the links a Group: deleting them with DeleteGroup is one
// request.
//
// As Create does, a link going to another namespace under the name of a
// link of this one (a container's eth0 on the host's eth0) is created under
// a temporary name and renamed over there after the batch: 6.1 looks the
// name up in the requesting namespace and would refuse it with EEXIST.
func (h *Handle) CreateBatch(ctx context.Context, specs []Spec) error {
	if len(specs) == 0 {
		return nil
	}
	names := make(map[string]int, len(specs))
	parents := map[string]*rtnl.LinkMessage{}
	for i, s := range specs {
		if s == nil {
			return fmt.Errorf("create batch: spec %d is nil", i)
		}
		if err := s.Validate(); err != nil {
			return batchErr(i, err)
		}
		b := s.Base()
		if j, dup := names[b.Name]; dup && sameNS(specs[j].Base().NetNS, b.NetNS) {
			return batchErr(i, fieldErr(s.Kind(), b.Name, "name", b.Name, fmt.Sprintf("already used by line %d: give each link its own name", j+1)))
		}
		names[b.Name] = i
		if s.needsParent() {
			parents[b.Parent] = nil
		}
	}
	// One dump resolves every parent when there are many distinct ones;
	// a GETLINK each when few.
	if len(parents) > 8 {
		msgs, err := h.c.Links(ctx)
		if err != nil {
			return fmt.Errorf("create batch: list links: %w", err)
		}
		for i := range msgs {
			if _, ok := parents[msgs[i].Attrs.Name]; ok {
				parents[msgs[i].Attrs.Name] = &msgs[i]
			}
		}
	} else {
		for name := range parents {
			m, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
			if err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("create batch: get parent %s: %w", name, err)
			}
			parents[name] = m
		}
	}
	// Names that exist here: a link bound elsewhere under one of them is
	// created under a temporary name (see Create).
	here, err := h.namesHere(ctx, specs)
	if err != nil {
		return fmt.Errorf("create batch: %w", err)
	}
	// Open every target namespace once.
	targets := map[Target]*target{}
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	tgtOf := make([]*target, len(specs))
	for i, s := range specs {
		t := s.Base().NetNS
		if t == nil {
			tgtOf[i] = &target{fd: -1}
			continue
		}
		if targets[*t] == nil {
			ot, err := openTarget(t)
			if err != nil {
				return batchErr(i, err)
			}
			targets[*t] = ot
		}
		tgtOf[i] = targets[*t]
	}
	reqs := make([]rtnl.Request, len(specs))
	// createName is each link's name as sent (a temporary one for those in
	// here); the rollback deletes by it until the rename has happened.
	createName := make([]string, len(specs))
	var finish []int // specs needing a second request (rename, alias)
	for i, s := range specs {
		var p *parentInfo
		if s.needsParent() {
			pm := parents[s.Base().Parent]
			if pm == nil {
				return batchErr(i, &FieldError{Kind: s.Kind(), Name: s.Base().Name, Field: "link",
					Value: s.Base().Parent, Fix: fmt.Sprintf("no such parent link%s: create it first or name an existing one", h.where()), Err: ErrNotFound})
			}
			var err error
			if p, err = parentFromMsg(s, pm); err != nil {
				return batchErr(i, err)
			}
		}
		msg, err := newLinkMessage(s, p, tgtOf[i])
		if err != nil {
			return batchErr(i, err)
		}
		createName[i] = s.Base().Name
		if tgtOf[i].t != nil && here[createName[i]] {
			createName[i] = tempName()
			msg.Attrs.Name = createName[i]
			msg.Flags &^= unix.IFF_UP // up after the rename: the kernel renames only links that are down
			msg.Change &^= unix.IFF_UP
		}
		if s.Base().Alias != "" || createName[i] != s.Base().Name {
			finish = append(finish, i)
		}
		reqs[i] = rtnl.NewLinkRequest(msg, netlink.Create|netlink.Excl)
	}
	errs, terr := h.c.Batch(ctx, reqs)
	created := make([]bool, len(specs))
	var (
		failed   int
		firstErr error
		firstAt  = -1
	)
	fail := func(i int, err error) {
		failed++
		if firstAt < 0 {
			firstAt, firstErr = i, err
		}
	}
	for i := range specs {
		var e error
		switch {
		case i < len(errs):
			e = errs[i]
		case terr != nil:
			e = terr
		}
		if e != nil {
			fail(i, e)
			continue
		}
		created[i] = true
	}
	if failed == 0 && len(finish) > 0 {
		// Aliases are set where the links landed: one batch per namespace.
		byTarget := map[*target][]int{}
		var order []*target
		for _, i := range finish {
			t := tgtOf[i]
			if t.t == nil {
				t = nil
			}
			if _, ok := byTarget[t]; !ok {
				order = append(order, t)
			}
			byTarget[t] = append(byTarget[t], i)
		}
		for _, t := range order {
			idx := byTarget[t]
			there, err := h.in(t)
			if err != nil {
				for _, i := range idx {
					fail(i, fmt.Errorf("set alias: %w", err))
				}
				continue
			}
			freqs := make([]rtnl.Request, 0, len(idx))
			sent := make([]int, 0, len(idx))
			for _, i := range idx {
				m, err := there.finishMessage(ctx, specs[i], createName[i])
				if err != nil {
					fail(i, err)
					continue
				}
				freqs = append(freqs, rtnl.Request{Type: unix.RTM_NEWLINK, Body: m})
				sent = append(sent, i)
			}
			ferrs, fterr := there.c.Batch(ctx, freqs)
			there.Close()
			for k, i := range sent {
				var e error
				switch {
				case k < len(ferrs):
					e = ferrs[k]
				case fterr != nil:
					e = fterr
				}
				if e != nil {
					fail(i, fmt.Errorf("%s: %w", finishStep(specs[i], createName[i]), e))
					continue
				}
				createName[i] = specs[i].Base().Name
			}
		}
	}
	if failed == 0 {
		// Options older kernels drop without a word (bclim before 6.4):
		// read back only the links that asked for them.
		for i, s := range specs {
			if !hasNewerOptions(s) {
				continue
			}
			there, err := h.in(tgtOf[i])
			if err != nil {
				fail(i, fmt.Errorf("read the new link back: %w", err))
				break
			}
			l, err := there.get(ctx, createName[i])
			there.Close()
			if err == nil {
				err = ignoredByKernel(s, l)
			} else {
				err = fmt.Errorf("read the new link back: %w", err)
			}
			if err != nil {
				fail(i, err)
				break
			}
		}
	}
	if firstAt < 0 {
		return nil
	}
	n := 0
	for _, c := range created {
		if c {
			n++
		}
	}
	msg := fmt.Sprintf("%s: %v", opName("create", specs[firstAt]), firstErr)
	if failed > 1 {
		msg += fmt.Sprintf(" (%d of %d lines failed)", failed, len(specs))
	}
	if rerr := h.rollbackBatch(ctx, createName, created, tgtOf); rerr != nil {
		msg += fmt.Sprintf("; deleting the %d links already created failed too: %v", n, rerr)
	} else if n > 0 {
		msg += fmt.Sprintf("; the %d links the batch had created were deleted", n)
	}
	return &BatchError{Line: firstAt + 1, Msg: msg, Err: firstErr}
}

// namesHere reports which of the names of specs bound for another
// namespace exist in h's: one dump when there are many, a GETLINK each
// when few, nothing when no spec leaves.
func (h *Handle) namesHere(ctx context.Context, specs []Spec) (map[string]bool, error) {
	var leaving []string
	for _, s := range specs {
		if s.Base().NetNS != nil {
			leaving = append(leaving, s.Base().Name)
		}
	}
	here := map[string]bool{}
	if len(leaving) > 8 {
		msgs, err := h.c.Links(ctx)
		if err != nil {
			return nil, fmt.Errorf("list links: %w", err)
		}
		for i := range msgs {
			here[msgs[i].Attrs.Name] = true
		}
		return here, nil
	}
	for _, name := range leaving {
		_, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
		switch {
		case err == nil:
			here[name] = true
		case !errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("look for %s here: %w", name, err)
		}
	}
	return here, nil
}

// finishMessage is the second request of a batch-created link, sent in
// the namespace where it landed: its alias, and for one created under a
// temporary name, the rename (by ifindex, read back here) and up.
func (h *Handle) finishMessage(ctx context.Context, s Spec, createdAs string) (*rtnl.LinkMessage, error) {
	b := s.Base()
	if createdAs == b.Name {
		return aliasMessage(s), nil
	}
	cur, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: createdAs}})
	if err != nil {
		return nil, fmt.Errorf("%s: read it back: %w", finishStep(s, createdAs), err)
	}
	return finishByIndex(cur.Index, s, createdAs), nil
}

// BatchError is CreateBatch's refusal, about the spec at Line (1-based
// position in the batch), so a caller that read the specs from a file can
// name the file's own line. The refusal stays reachable (errors.Is/As).
type BatchError struct {
	Line int
	Msg  string // what went wrong, without the position
	Err  error
}

func (e *BatchError) Error() string { return fmt.Sprintf("create batch: line %d: %s", e.Line, e.Msg) }
func (e *BatchError) Unwrap() error { return e.Err }

func batchErr(i int, err error) error { return &BatchError{Line: i + 1, Msg: err.Error(), Err: err} }

func sameNS(a, b *Target) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// rollbackBatch deletes the links marked created, by the names they have
// now, with a fresh context: the caller's may be what failed.
func (h *Handle) rollbackBatch(ctx context.Context, names []string, created []bool, tgtOf []*target) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*rtnl.DefaultTimeout)
	defer cancel()
	byTarget := map[*target][]string{}
	for i, name := range names {
		if created[i] {
			t := tgtOf[i]
			if t.t == nil {
				t = nil
			}
			byTarget[t] = append(byTarget[t], name)
		}
	}
	var errs []error
	for t, names := range byTarget {
		if t == nil {
			errs = append(errs, h.deleteNames(ctx, names))
			continue
		}
		c, err := t.dial()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, (&Handle{c: c, ns: t.t.String()}).deleteNames(ctx, names))
		c.Close()
	}
	return errors.Join(errs...)
}
