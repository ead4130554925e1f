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
	parents, err := checkBatch(specs)
	if err != nil {
		return err
	}
	if err := h.lookUpParents(ctx, parents); err != nil {
		return fmt.Errorf("create batch: %w", err)
	}
	// Names that exist here: a link bound elsewhere under one of them is
	// created under a temporary name (see Create).
	here, err := h.namesHere(ctx, specs)
	if err != nil {
		return fmt.Errorf("create batch: %w", err)
	}
	b := &batch{h: h, specs: specs, firstAt: -1}
	defer b.closeTargets()
	if err := b.openTargets(); err != nil {
		return err
	}
	reqs, err := b.requests(parents, here)
	if err != nil {
		return err
	}
	b.send(ctx, reqs)
	if b.failed == 0 && len(b.finish) > 0 {
		b.finishAll(ctx)
	}
	if b.failed == 0 {
		b.checkKept(ctx)
	}
	return b.undo(ctx)
}

// batch is a CreateBatch under way once its specs are checked: where each
// link goes, the name it is created under, and what failed.
type batch struct {
	h     *Handle
	specs []Spec
	// targets are the target namespaces, each opened once; tgtOf[i] is
	// spec i's (one with a nil Target for h's namespace).
	targets map[Target]*target
	tgtOf   []*target
	// createName is each link's name as sent (a temporary one for those in
	// here); the rollback deletes by it until the rename has happened.
	createName []string
	finish     []int // specs needing a second request (rename, alias)
	created    []bool
	failed     int
	firstErr   error
	firstAt    int // the first failed spec, -1 while none has
}

// fail records that spec i failed with err.
func (b *batch) fail(i int, err error) {
	b.failed++
	if b.firstAt < 0 {
		b.firstAt, b.firstErr = i, err
	}
}

// checkBatch validates every spec and refuses a name given twice for one
// namespace, before anything is sent. It returns the parents to look up.
func checkBatch(specs []Spec) (map[string]*rtnl.LinkMessage, error) {
	names := make(map[string]int, len(specs))
	parents := map[string]*rtnl.LinkMessage{}
	for i, s := range specs {
		if s == nil {
			return nil, fmt.Errorf("create batch: spec %d is nil", i)
		}
		if err := s.Validate(); err != nil {
			return nil, batchErr(i, err)
		}
		b := s.Base()
		if j, dup := names[b.Name]; dup && sameNS(specs[j].Base().NetNS, b.NetNS) {
			return nil, batchErr(i, fieldErr(s.Kind(), b.Name, "name", b.Name, fmt.Sprintf("already used by line %d: give each link its own name", j+1)))
		}
		names[b.Name] = i
		if s.needsParent() {
			parents[b.Parent] = nil
		}
	}
	return parents, nil
}

// lookUpParents fills in each parent's message, leaving nil the ones that
// do not exist: one dump resolves every parent when there are many
// distinct ones, a GETLINK each when few.
func (h *Handle) lookUpParents(ctx context.Context, parents map[string]*rtnl.LinkMessage) error {
	if len(parents) > 8 {
		msgs, err := h.c.Links(ctx)
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		for i := range msgs {
			if _, ok := parents[msgs[i].Attrs.Name]; ok {
				parents[msgs[i].Attrs.Name] = &msgs[i]
			}
		}
		return nil
	}
	for name := range parents {
		m, err := h.getMsg(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name}})
		if err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("get parent %s: %w", name, err)
		}
		parents[name] = m
	}
	return nil
}

// openTargets opens every target namespace once.
func (b *batch) openTargets() error {
	b.targets = map[Target]*target{}
	b.tgtOf = make([]*target, len(b.specs))
	for i, s := range b.specs {
		t := s.Base().NetNS
		if t == nil {
			b.tgtOf[i] = &target{fd: -1}
			continue
		}
		if b.targets[*t] == nil {
			ot, err := openTarget(t)
			if err != nil {
				return batchErr(i, err)
			}
			b.targets[*t] = ot
		}
		b.tgtOf[i] = b.targets[*t]
	}
	return nil
}

func (b *batch) closeTargets() {
	for _, t := range b.targets {
		t.close()
	}
}

// requests builds every spec's RTM_NEWLINK, checked against its parent;
// a link bound elsewhere whose name exists here goes under a temporary
// name, to be renamed (and brought up) by a second request, as a link
// with an alias is given it.
func (b *batch) requests(parents map[string]*rtnl.LinkMessage, here map[string]bool) ([]rtnl.Request, error) {
	reqs := make([]rtnl.Request, len(b.specs))
	b.createName = make([]string, len(b.specs))
	for i, s := range b.specs {
		p, err := b.h.batchParent(s, parents)
		if err != nil {
			return nil, batchErr(i, err)
		}
		msg, err := newLinkMessage(s, p, b.tgtOf[i])
		if err != nil {
			return nil, batchErr(i, err)
		}
		b.createName[i] = s.Base().Name
		if b.tgtOf[i].t != nil && here[b.createName[i]] {
			b.createName[i] = tempName()
			msg.Attrs.Name = b.createName[i]
			msg.Flags &^= unix.IFF_UP // up after the rename: the kernel renames only links that are down
			msg.Change &^= unix.IFF_UP
		}
		if s.Base().Alias != "" || b.createName[i] != s.Base().Name {
			b.finish = append(b.finish, i)
		}
		reqs[i] = rtnl.NewLinkRequest(msg, netlink.Create|netlink.Excl)
	}
	return reqs, nil
}

// batchParent checks s's parent, looked up by lookUpParents, as Create's
// checkParent does; nil for a kind without a parent.
func (h *Handle) batchParent(s Spec, parents map[string]*rtnl.LinkMessage) (*parentInfo, error) {
	if !s.needsParent() {
		return nil, nil
	}
	pm := parents[s.Base().Parent]
	if pm == nil {
		return nil, h.noParent(s)
	}
	return parentFromMsg(s, pm)
}

// send sends the requests pipelined and records which links were created.
func (b *batch) send(ctx context.Context, reqs []rtnl.Request) {
	errs, terr := b.h.c.Batch(ctx, reqs)
	b.created = make([]bool, len(b.specs))
	for i := range b.specs {
		if e := batchResult(errs, terr, i); e != nil {
			b.fail(i, e)
			continue
		}
		b.created[i] = true
	}
}

// batchResult is the outcome of request k of a Batch that returned errs
// and terr: its own error, or the batch's when the batch stopped first.
func batchResult(errs []error, terr error, k int) error {
	switch {
	case k < len(errs):
		return errs[k]
	case terr != nil:
		return terr
	}
	return nil
}

// finishAll sends the second requests (rename, alias) where the links
// landed: one batch per namespace.
func (b *batch) finishAll(ctx context.Context) {
	byTarget := map[*target][]int{}
	var order []*target
	for _, i := range b.finish {
		t := b.tgtOf[i]
		if t.t == nil {
			t = nil
		}
		if _, ok := byTarget[t]; !ok {
			order = append(order, t)
		}
		byTarget[t] = append(byTarget[t], i)
	}
	for _, t := range order {
		b.finishIn(ctx, t, byTarget[t])
	}
}

// finishIn sends the second requests of the specs idx, whose links are in
// t's namespace (h's when t is nil); a link renamed there is deleted by its
// final name if the batch fails.
func (b *batch) finishIn(ctx context.Context, t *target, idx []int) {
	there, err := b.h.in(t)
	if err != nil {
		for _, i := range idx {
			b.fail(i, fmt.Errorf("set alias: %w", err))
		}
		return
	}
	freqs := make([]rtnl.Request, 0, len(idx))
	sent := make([]int, 0, len(idx))
	for _, i := range idx {
		m, err := there.finishMessage(ctx, b.specs[i], b.createName[i])
		if err != nil {
			b.fail(i, err)
			continue
		}
		freqs = append(freqs, rtnl.Request{Type: unix.RTM_NEWLINK, Body: m})
		sent = append(sent, i)
	}
	ferrs, fterr := there.c.Batch(ctx, freqs)
	there.Close()
	for k, i := range sent {
		if e := batchResult(ferrs, fterr, k); e != nil {
			b.fail(i, fmt.Errorf("%s: %w", finishStep(b.specs[i], b.createName[i]), e))
			continue
		}
		b.createName[i] = b.specs[i].Base().Name
	}
}

// checkKept reads back the links that asked for options older kernels
// drop without a word (bclim before 6.4), and stops at the first whose
// option was dropped.
func (b *batch) checkKept(ctx context.Context) {
	for i, s := range b.specs {
		if !hasNewerOptions(s) {
			continue
		}
		if err := b.kept(ctx, i); err != nil {
			b.fail(i, err)
			return
		}
	}
}

// kept reads spec i's link back and reports an option the kernel dropped.
func (b *batch) kept(ctx context.Context, i int) error {
	there, err := b.h.in(b.tgtOf[i])
	if err != nil {
		return fmt.Errorf("read the new link back: %w", err)
	}
	l, err := there.get(ctx, b.createName[i])
	there.Close()
	if err != nil {
		return fmt.Errorf("read the new link back: %w", err)
	}
	return ignoredByKernel(b.specs[i], l)
}

// undo is the batch's result: nil when every spec succeeded; otherwise the
// links the batch created are deleted again and the error names the first
// failure, how many failed, and what became of the rest.
func (b *batch) undo(ctx context.Context) error {
	if b.firstAt < 0 {
		return nil
	}
	n := 0
	for _, c := range b.created {
		if c {
			n++
		}
	}
	msg := fmt.Sprintf("%s: %v", opName("create", b.specs[b.firstAt]), b.firstErr)
	if b.failed > 1 {
		msg += fmt.Sprintf(" (%d of %d lines failed)", b.failed, len(b.specs))
	}
	if rerr := b.h.rollbackBatch(ctx, b.createName, b.created, b.tgtOf); rerr != nil {
		msg += fmt.Sprintf("; deleting the %d links already created failed too: %v", n, rerr)
	} else if n > 0 {
		msg += fmt.Sprintf("; the %d links the batch had created were deleted", n)
	}
	return &BatchError{Line: b.firstAt + 1, Msg: msg, Err: b.firstErr}
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
