package verify

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/mdlayher/netlink"
	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
	"golang.org/x/sys/unix"
)

// The kernel's neighbour tables (ARP, NDP) are each one table for the
// whole machine, all namespaces included; an entry younger than 5 s is
// never reclaimed, and beyond gc_thresh3 the kernel refuses new ones (see
// the engine's comment). These are the probes' side of that: how many
// pairs may be in flight, whether the table overflowed anyway, and the
// removal of the entries our probes made.

// Bounds of the pairs in flight.
const (
	minNeighBudget = 16
	maxNeighBudget = 512
)

// neighBudget is how many pairs may be in flight: half the room left in
// the fuller of the ARP and NDP tables (gc_thresh3 minus the entries in
// use), within 16 and 512. The tables' counters are only visible from the
// initial namespace; elsewhere the kernel's default cap (1024) and an
// empty table are assumed.
func neighBudget() int {
	room := maxNeighBudget * 2
	for _, t := range []struct{ thresh, stat string }{
		{"/proc/sys/net/ipv4/neigh/default/gc_thresh3", "/proc/net/stat/arp_cache"},
		{"/proc/sys/net/ipv6/neigh/default/gc_thresh3", "/proc/net/stat/ndisc_cache"},
	} {
		thresh := 1024
		if b, err := os.ReadFile(t.thresh); err == nil {
			if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				thresh = v
			}
		}
		entries, _ := neighStat(t.stat, "entries")
		room = min(room, thresh-int(entries))
	}
	return min(max(room/2, minNeighBudget), maxNeighBudget)
}

// neighStat reads one column of a /proc/net/stat neighbour table file,
// summed over CPUs (entries: the first row's value, a global count).
func neighStat(path, column string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		return 0, false
	}
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == column {
			col = i
		}
	}
	if col < 0 {
		return 0, false
	}
	var sum uint64
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if col >= len(f) {
			continue
		}
		v, err := strconv.ParseUint(f[col], 16, 64)
		if err != nil {
			continue
		}
		if column == "entries" {
			return v, true
		}
		sum += v
	}
	return sum, true
}

// neighOverflows is how often the ARP and NDP tables refused a new entry
// since boot (table_fulls), and whether that could be read at all.
func neighOverflows() (uint64, bool) {
	a, ok4 := neighStat("/proc/net/stat/arp_cache", "table_fulls")
	b, ok6 := neighStat("/proc/net/stat/ndisc_cache", "table_fulls")
	return a + b, ok4 || ok6
}

// neighKey is one neighbour entry of a namespace.
type neighKey struct {
	index uint32
	ip    netip.Addr
}

// neighDel asks for one entry's removal; done runs when it was tried.
type neighDel struct {
	key  neighKey
	done func()
}

// nsNeigh is one namespace's neighbour state.
type nsNeigh struct {
	conn    *rtnl.Conn
	before  map[neighKey]bool
	ifindex map[string]uint32
	dels    chan neighDel
}

// neighCleaner removes the neighbour entries our probes made in the
// targets' namespaces, and only those: whatever was in a table before the
// run stays.
type neighCleaner struct {
	byNS  map[string]*nsNeigh
	exp   *Expectation
	wg    sync.WaitGroup
	owned map[string]map[uint32]bool // namespace → our endpoints' interfaces
}

// newNeighCleaner dials every target namespace and notes its entries. A
// namespace that cannot be read is left alone (its entries then age out
// as the kernel's would).
func newNeighCleaner(ctx context.Context, exp *Expectation) *neighCleaner {
	nc := &neighCleaner{byNS: map[string]*nsNeigh{}, exp: exp, owned: map[string]map[uint32]bool{}}
	for _, ep := range exp.Endpoints {
		if _, done := nc.byNS[ep.NetNS]; done || ep.Kind == KindOutside && ep.NetNS == "" {
			continue
		}
		c, err := dialRtnl(ep.NetNS)
		if err != nil {
			nc.byNS[ep.NetNS] = nil
			continue
		}
		ns := &nsNeigh{conn: c, ifindex: map[string]uint32{}, dels: make(chan neighDel, 4096)}
		entries, err := dumpNeigh(ctx, c)
		if err != nil {
			c.Close()
			nc.byNS[ep.NetNS] = nil
			continue
		}
		ns.before = map[neighKey]bool{}
		for _, k := range entries {
			ns.before[k] = true
		}
		nc.byNS[ep.NetNS] = ns
		nc.wg.Add(1)
		go nc.serve(ctx, ns)
	}
	for _, ep := range exp.Endpoints {
		ns := nc.byNS[ep.NetNS]
		if ns == nil {
			continue
		}
		if idx, err := indexIn(ep.NetNS, ep.Interface); err == nil {
			ns.ifindex[ep.Interface] = idx
			if nc.owned[ep.NetNS] == nil {
				nc.owned[ep.NetNS] = map[uint32]bool{}
			}
			nc.owned[ep.NetNS][idx] = true
		}
	}
	return nc
}

// dialRtnl opens an rtnetlink socket in namespace ns (a name under
// /run/netns, a path, or "" for ours).
func dialRtnl(ns string) (*rtnl.Conn, error) {
	switch {
	case ns == "":
		return rtnl.Dial(nil)
	case strings.ContainsRune(ns, '/'):
		var c *rtnl.Conn
		err := netns.DoIn(ns, func() error {
			var derr error
			c, derr = rtnl.Dial(nil)
			return derr
		})
		return c, err
	}
	return rtnl.DialNetNS(ns, nil)
}

// indexIn is the index of interface name inside namespace ns.
func indexIn(ns, name string) (uint32, error) {
	var idx uint32
	err := netns.DoIn(ns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		idx = uint32(ifi.Index)
		return nil
	})
	return idx, err
}

// dumpNeigh lists a namespace's ARP and NDP entries.
func dumpNeigh(ctx context.Context, c *rtnl.Conn) ([]neighKey, error) {
	msgs, err := c.Dump(ctx, unix.RTM_GETNEIGH, &rtnl.NeighMessage{Family: unix.AF_UNSPEC})
	if err != nil {
		return nil, fmt.Errorf("dump neighbours: %w", err)
	}
	var out []neighKey
	for _, m := range msgs {
		var nm rtnl.NeighMessage
		if err := nm.UnmarshalBinary(m.Data); err != nil || !nm.Dst.IsValid() {
			continue
		}
		out = append(out, neighKey{nm.Index, nm.Dst})
	}
	return out, nil
}

// serve removes entries as they are asked for, many per batch.
func (nc *neighCleaner) serve(ctx context.Context, ns *nsNeigh) {
	defer nc.wg.Done()
	for d := range ns.dels {
		batch := []neighDel{d}
	more:
		for len(batch) < rtnl.MaxBatchChunk {
			select {
			case d, ok := <-ns.dels:
				if !ok {
					break more
				}
				batch = append(batch, d)
			default:
				break more
			}
		}
		reqs := make([]rtnl.Request, len(batch))
		for i, d := range batch {
			reqs[i] = delNeighRequest(d.key)
		}
		_, _ = ns.conn.Batch(context.WithoutCancel(ctx), reqs)
		for _, d := range batch {
			d.done()
		}
	}
}

func delNeighRequest(k neighKey) rtnl.Request {
	fam := uint8(unix.AF_INET)
	if k.ip.Is6() {
		fam = unix.AF_INET6
	}
	return rtnl.Request{Type: unix.RTM_DELNEIGH, Flags: netlink.HeaderFlags(0),
		Body: &rtnl.NeighMessage{Family: fam, Index: k.index, Dst: k.ip}}
}

// forget removes to's entry for ip, unless it predates the run, and then
// calls done.
func (nc *neighCleaner) forget(to Endpoint, ip netip.Addr, done func()) {
	ns := nc.byNS[to.NetNS]
	if ns == nil {
		done()
		return
	}
	idx, ok := ns.ifindex[to.Interface]
	k := neighKey{idx, ip}
	if !ok || ns.before[k] {
		done()
		return
	}
	ns.dels <- neighDel{key: k, done: done}
}

// close waits for the removals asked for, then sweeps: every entry for an
// endpoint's address on an endpoint's interface that was not there before
// the run goes (a lost answer, whose request still made the entry).
func (nc *neighCleaner) close(ctx context.Context) {
	for _, ns := range nc.byNS {
		if ns != nil {
			close(ns.dels)
		}
	}
	nc.wg.Wait()
	ours := map[netip.Addr]bool{}
	for _, ep := range nc.exp.Endpoints {
		for _, p := range ep.Addrs {
			ours[p.Addr()] = true
		}
	}
	for name, ns := range nc.byNS {
		if ns == nil {
			continue
		}
		entries, err := dumpNeigh(context.WithoutCancel(ctx), ns.conn)
		if err == nil {
			var reqs []rtnl.Request
			for _, k := range entries {
				if !ns.before[k] && ours[k.ip] && nc.owned[name][k.index] {
					reqs = append(reqs, delNeighRequest(k))
				}
			}
			if len(reqs) > 0 {
				_, _ = ns.conn.Batch(context.WithoutCancel(ctx), reqs)
			}
		}
		ns.conn.Close()
	}
}
