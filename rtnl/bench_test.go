package rtnl

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The link benchmarks each run in fresh throwaway namespaces, one per
// iteration, on a veth parent; only the measured operation is timed.
// scripts/bench-links.sh (make bench-links) runs them side by side with
// iproute2's `ip -batch` and prints the ratios.

const benchLinks = 1000

// benchGroup is the IFLA_GROUP the benchmarks put their macvlans in.
const benchGroup = 7

// benchNS sets up one iteration: namespace, Conn, veth parent.
func benchNS(b *testing.B) (*testNS, *Conn, uint32, context.Context) {
	b.Helper()
	ns := newTestNS(b)
	c := ns.dial(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	return ns, c, vethParent(b, ctx, c), ctx
}

// benchTeardown removes the iteration's macvlans synchronously, so the
// kernel's asynchronous namespace cleanup does not run during the next
// timed section.
func benchTeardown(b *testing.B, ctx context.Context, c *Conn) {
	b.Helper()
	if _, err := c.Execute(ctx, unix.RTM_DELLINK, 0, testLink{group: benchGroup}); err != nil && !isErrno(err, unix.ENODEV) {
		b.Fatalf("teardown: %v", err)
	}
}

func isErrno(err error, e unix.Errno) bool {
	oe, ok := err.(*OpError)
	return ok && oe.Errno == e
}

// macvlanLinkReqs are n macvlan creations through the product path:
// LinkMessage with the Macvlan driver, as link.CreateBatch would send them.
func macvlanLinkReqs(parent uint32, n int) []Request {
	mode := MacvlanModeBridge
	group := uint32(benchGroup)
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = NewLinkRequest(&LinkMessage{Attrs: LinkAttrs{
			Name: fmt.Sprintf("mv%d", i), Link: &parent, Group: &group,
			Info: &LinkInfo{Kind: "macvlan", Data: &Macvlan{Mode: &mode}},
		}}, netlink.Create|netlink.Excl)
	}
	return reqs
}

func createBatch(b *testing.B, ctx context.Context, c *Conn, parent uint32, n int) {
	b.Helper()
	errs, err := c.Batch(ctx, macvlanLinkReqs(parent, n))
	if err != nil {
		b.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			b.Fatalf("create mv%d: %v", i, e)
		}
	}
}

// ipBatchCreate is the reference: the same links as `ip -batch` lines.
func ipBatchCreate(n int) []byte {
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, "link add mv%d link p0 group %d type macvlan mode bridge\n", i, benchGroup)
	}
	return buf.Bytes()
}

func reportRate(b *testing.B, n int) {
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "links/s")
}

func BenchmarkBatchCreateMacvlan(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		_, c, p0, ctx := benchNS(b)
		b.StartTimer()
		createBatch(b, ctx, c, p0, benchLinks)
		b.StopTimer()
		benchTeardown(b, ctx, c)
		b.StartTimer()
	}
	reportRate(b, benchLinks)
}

func BenchmarkExecuteCreateMacvlan(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		_, c, p0, ctx := benchNS(b)
		reqs := macvlanLinkReqs(p0, benchLinks)
		b.StartTimer()
		for _, r := range reqs {
			if err := c.NewLink(ctx, r.Body.(*LinkMessage), r.Flags); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		benchTeardown(b, ctx, c)
		b.StartTimer()
	}
	reportRate(b, benchLinks)
}

func BenchmarkIPBatchCreateMacvlan(b *testing.B) {
	script := ipBatchCreate(benchLinks)
	for b.Loop() {
		b.StopTimer()
		ns, c, _, ctx := benchNS(b)
		b.StartTimer()
		ns.ip(b, script, "-batch", "-")
		b.StopTimer()
		benchTeardown(b, ctx, c)
		b.StartTimer()
	}
	reportRate(b, benchLinks)
}

// benchDelete times del(ctx, c) on benchLinks fresh macvlans.
func benchDelete(b *testing.B, del func(b *testing.B, ns *testNS, ctx context.Context, c *Conn)) {
	for b.Loop() {
		b.StopTimer()
		ns, c, p0, ctx := benchNS(b)
		createBatch(b, ctx, c, p0, benchLinks)
		b.StartTimer()
		del(b, ns, ctx, c)
		b.StopTimer()
		msgs, err := c.Dump(ctx, unix.RTM_GETLINK, testLink{})
		if err != nil {
			b.Fatal(err)
		}
		if n := len(msgs); n != 3 {
			b.Fatalf("%d links left, want lo, p0, p1", n)
		}
		b.StartTimer()
	}
	reportRate(b, benchLinks)
}

func BenchmarkDeleteOneByOne(b *testing.B) {
	benchDelete(b, func(b *testing.B, _ *testNS, ctx context.Context, c *Conn) {
		for i := range benchLinks {
			if err := c.DelLink(ctx, &LinkMessage{Attrs: LinkAttrs{Name: fmt.Sprintf("mv%d", i)}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDeleteBatch(b *testing.B) {
	benchDelete(b, func(b *testing.B, _ *testNS, ctx context.Context, c *Conn) {
		reqs := make([]Request, benchLinks)
		for i := range reqs {
			reqs[i] = DelLinkRequest(&LinkMessage{Attrs: LinkAttrs{Name: fmt.Sprintf("mv%d", i)}})
		}
		errs, err := c.Batch(ctx, reqs)
		if err != nil {
			b.Fatal(err)
		}
		for i, e := range errs {
			if e != nil {
				b.Fatalf("delete mv%d: %v", i, e)
			}
		}
	})
}

func BenchmarkDeleteByGroup(b *testing.B) {
	benchDelete(b, func(b *testing.B, _ *testNS, ctx context.Context, c *Conn) {
		group := uint32(benchGroup)
		if err := c.DelLink(ctx, &LinkMessage{Attrs: LinkAttrs{Group: &group}}); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkIPBatchDelete(b *testing.B) {
	var script bytes.Buffer
	for i := range benchLinks {
		fmt.Fprintf(&script, "link del mv%d\n", i)
	}
	benchDelete(b, func(b *testing.B, ns *testNS, _ context.Context, _ *Conn) {
		ns.ip(b, script.Bytes(), "-batch", "-")
	})
}

// BenchmarkDump10kLinks dumps a namespace holding 10,000 macvlans.
func BenchmarkDump10kLinks(b *testing.B) {
	const n = 10000
	_, c, p0, ctx := benchNS(b)
	createBatch(b, ctx, c, p0, n)
	b.Cleanup(func() { benchTeardown(b, ctx, c) })
	for b.Loop() {
		// Links: the dump and the decoding of every link.
		links, err := c.Links(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(links) != n+3 {
			b.Fatalf("dump of %d links, want %d", len(links), n+3)
		}
	}
	reportRate(b, n)
}

// BenchmarkCreateVsIPBatch is the comparison `make bench-links` reports:
// each iteration creates 1,000 macvlans through Batch in one fresh namespace
// and through `ip -batch` in another, alternating which goes first, so the
// ratio holds on a machine whose load drifts during the run. Metrics:
// rtnl-s and ip-s per 1,000 links, and ip/rtnl (> 1: rtnl is faster);
// ns/op only counts the loop itself, everything is timed by hand.
func BenchmarkCreateVsIPBatch(b *testing.B) {
	script := ipBatchCreate(benchLinks)
	var rtnlTime, ipTime time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		sides := []func(){
			func() {
				_, c, p0, ctx := benchNS(b)
				start := time.Now()
				createBatch(b, ctx, c, p0, benchLinks)
				rtnlTime += time.Since(start)
				benchTeardown(b, ctx, c)
			},
			func() {
				ns, c, _, ctx := benchNS(b)
				start := time.Now()
				ns.ip(b, script, "-batch", "-")
				ipTime += time.Since(start)
				benchTeardown(b, ctx, c)
			},
		}
		if i%2 == 1 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		i++
		sides[0]()
		sides[1]()
		b.StartTimer()
	}
	b.ReportMetric(rtnlTime.Seconds()/float64(b.N), "rtnl-s/op")
	b.ReportMetric(ipTime.Seconds()/float64(b.N), "ip-s/op")
	b.ReportMetric(float64(ipTime)/float64(rtnlTime), "ip/rtnl")
}
