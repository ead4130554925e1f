//go:build !vm

// The VM tier (qemu without KVM) would take minutes to create 10,000
// links; the host tier runs this on every `make test`.

package rtnl

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIntegrationDump10kLinks lists a namespace of 10,000 macvlans (plus
// lo and a veth pair) through Links, the product's dump: every link must
// come back, decoded, once. It fails if the read path truncates datagrams
// (a fixed buffer smaller than the kernel's dump skbs), loses a part of
// the multi-part answer, or stops early.
func TestIntegrationDump10kLinks(t *testing.T) {
	const n = 10000
	ns := newTestNS(t)
	c := ns.dial(t)
	ctx := testCtx(t)
	p0 := vethParent(t, ctx, c)
	const group = 77
	errs, err := c.Batch(ctx, macvlanReqs(p0, n, group, uint32(MacvlanModeBridge)))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("create mv%d: %v", i, e)
		}
	}
	// Delete by group: one RCU grace period for all (the namespace's own
	// removal would do it too, but asynchronously, during later tests).
	t.Cleanup(func() { _, _ = c.Execute(testCtx(t), unix.RTM_DELLINK, 0, testLink{group: group}) })

	links, err := c.Links(ctx)
	if err != nil {
		t.Fatalf("dump of %d links: %v", n+3, err)
	}
	if len(links) != n+3 {
		t.Fatalf("dump returned %d links, want %d", len(links), n+3)
	}
	seen := make(map[string]bool, len(links))
	for _, l := range links {
		if seen[l.Attrs.Name] {
			t.Fatalf("%s listed twice", l.Attrs.Name)
		}
		seen[l.Attrs.Name] = true
		if l.Attrs.Info != nil && l.Attrs.Info.Kind == "macvlan" {
			d, ok := l.Attrs.Info.Data.(*Macvlan)
			if !ok || d.Mode == nil || *d.Mode != MacvlanModeBridge {
				t.Fatalf("%s: info data %#v, want a bridge-mode macvlan", l.Attrs.Name, l.Attrs.Info.Data)
			}
		}
	}
	for i := range n {
		if name := fmt.Sprintf("mv%d", i); !seen[name] {
			t.Fatalf("%s missing from the dump", name)
		}
	}
	// The reference agrees on the count.
	if out := ns.ip(t, nil, "-o", "link", "show", "group", fmt.Sprint(group)); countLines(out) != n {
		t.Errorf("ip sees %d links in group %d, want %d", countLines(out), group, n)
	}
}

func countLines(s string) int {
	n := 0
	for _, c := range s {
		if c == '\n' {
			n++
		}
	}
	return n
}
