package capture

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Stack is a VLAN tag stack reduced to what identifies it (TPIDs and VIDs,
// outermost first; priorities are not part of it). It is comparable, so it
// keys maps; stacks deeper than four tags keep their first four.
type Stack struct {
	n    uint8
	tags [maxInlineTags]struct {
		TPID EtherType
		VID  uint16
	}
}

// StackOf returns the stack of tags.
func StackOf(tags []Tag) Stack {
	var s Stack
	for i, t := range tags {
		if i == len(s.tags) {
			break
		}
		s.tags[i].TPID, s.tags[i].VID = t.TPID, t.VID
		s.n++
	}
	return s
}

// Len is the number of tags (0: untagged).
func (s Stack) Len() int { return int(s.n) }

// Tags returns the stack's tags (PCP and DEI zero).
func (s Stack) Tags() []Tag {
	out := make([]Tag, s.n)
	for i := range out {
		out[i] = Tag{TPID: s.tags[i].TPID, VID: s.tags[i].VID}
	}
	return out
}

// String is "untagged", "802.1Q 10" or "802.1ad 100 / 802.1Q 20".
func (s Stack) String() string {
	if s.n == 0 {
		return "untagged"
	}
	parts := make([]string, s.n)
	for i := range parts {
		t := s.tags[i]
		parts[i] = Tag{TPID: t.TPID, VID: t.VID}.String()
	}
	return strings.Join(parts, " / ")
}

// less orders stacks: untagged first, then by tags.
func (s Stack) less(o Stack) bool {
	for i := 0; i < int(min(s.n, o.n)); i++ {
		a, b := s.tags[i], o.tags[i]
		if a.VID != b.VID {
			return a.VID < b.VID
		}
		if a.TPID != b.TPID {
			return a.TPID < b.TPID
		}
	}
	return s.n < o.n
}

// stackKey packs the first four tags of a stack into an integer map key:
// 14 bits a tag (TPID as 2 bits, VID as 12), the depth above them. The
// decoder only makes tags of the three VLAN TPIDs, so nothing is lost;
// another TPID (a Tag built by hand) is kept as code 0 and read back as 0.
// A Tally does this once per frame; hashing an integer is several times
// cheaper than hashing a Stack.
func stackKey(tags []Tag) uint64 {
	n := min(len(tags), maxInlineTags)
	k := uint64(n) << 56
	for i := 0; i < n; i++ {
		var code uint64
		switch tags[i].TPID {
		case EtherType8021Q:
			code = 1
		case EtherType8021AD:
			code = 2
		case EtherTypeQinQ:
			code = 3
		}
		k |= (code<<12 | uint64(tags[i].VID&0x0fff)) << (14 * i)
	}
	return k
}

func stackFromKey(k uint64) Stack {
	var s Stack
	s.n = uint8(k >> 56)
	for i := 0; i < int(s.n); i++ {
		v := k >> (14 * i)
		s.tags[i].VID = uint16(v & 0x0fff)
		s.tags[i].TPID = [4]EtherType{0, EtherType8021Q, EtherType8021AD, EtherTypeQinQ}[v>>12&3]
	}
	return s
}

// counters counts per integer key. A capture sees a handful of distinct
// stacks, so the first few keys live in a slice searched linearly (cheaper
// than hashing, per frame); the rest go to a map.
type counters struct {
	keys []uint64
	vals []uint64
	more map[uint64]uint64
}

const countersInline = 16

func (c *counters) inc(k uint64) { c.add(k, 1) }

func (c *counters) add(k, n uint64) {
	for i, x := range c.keys {
		if x == k {
			c.vals[i] += n
			return
		}
	}
	if c.more != nil {
		if _, ok := c.more[k]; ok {
			c.more[k] += n
			return
		}
	}
	if len(c.keys) < countersInline {
		c.keys = append(c.keys, k)
		c.vals = append(c.vals, n)
		return
	}
	if c.more == nil {
		c.more = map[uint64]uint64{}
	}
	c.more[k] += n
}

func (c *counters) each(fn func(k, n uint64)) {
	for i, k := range c.keys {
		fn(k, c.vals[i])
	}
	for k, n := range c.more {
		fn(k, n)
	}
}

// Tally counts frames per VLAN stack and per source MAC: the summary at the
// end of a capture (which MACs appeared with which tags, in which
// direction). Add does not allocate once a stack or MAC has been seen.
type Tally struct {
	Frames uint64
	stacks counters
	macs   map[uint64]*macCount
	last   *macCount // the previous frame's sender: bursts skip the lookup
}

// macCount is what a Tally knows about one source MAC.
type macCount struct {
	MAC    MAC
	Frames uint64
	In     uint64 // frames received (any inbound direction)
	Out    uint64 // frames sent
	// Owner is the owner a pcapng of ours recorded in a packet comment
	// (the first one seen), for a summary read back from the file.
	Owner  string
	stacks counters
}

// stackCounts returns the stacks this MAC sent frames with, untagged first.
func (m *macCount) stackCounts() []stackCount { return sortedStacks(&m.stacks) }

// Add counts f.
func (t *Tally) Add(f *Frame) {
	if t.macs == nil {
		t.macs = map[uint64]*macCount{}
	}
	sk := stackKey(f.VLANs)
	t.Frames++
	t.stacks.inc(sk)
	m := t.last
	if m == nil || m.MAC != f.Src {
		mk := f.Src.key()
		if m = t.macs[mk]; m == nil {
			m = &macCount{MAC: f.Src}
			t.macs[mk] = m
		}
		t.last = m
	}
	m.Frames++
	m.stacks.inc(sk)
	if m.Owner == "" && f.Comment != "" {
		m.Owner = f.Comment
	}
	switch {
	case f.Dir.Inbound():
		m.In++
	case f.Dir.Outbound():
		m.Out++
	}
}

// merge adds the counts of o (a parallel worker's) to t.
func (t *Tally) merge(o *Tally) {
	if o.Frames == 0 {
		return
	}
	if t.macs == nil {
		t.macs = map[uint64]*macCount{}
	}
	t.Frames += o.Frames
	o.stacks.each(func(k, n uint64) { t.stacks.add(k, n) })
	for k, om := range o.macs {
		m := t.macs[k]
		if m == nil {
			m = &macCount{MAC: om.MAC}
			t.macs[k] = m
		}
		m.Frames += om.Frames
		if m.Owner == "" {
			m.Owner = om.Owner
		}
		m.In += om.In
		m.Out += om.Out
		om.stacks.each(func(k, n uint64) { m.stacks.add(k, n) })
	}
	t.last = nil
}

// stackCount is the number of frames seen with one stack.
type stackCount struct {
	Stack  Stack
	Frames uint64
}

func sortedStacks(c *counters) []stackCount {
	var out []stackCount
	c.each(func(k, n uint64) { out = append(out, stackCount{stackFromKey(k), n}) })
	sort.Slice(out, func(i, j int) bool { return out[i].Stack.less(out[j].Stack) })
	return out
}

// stackCounts returns the per-stack counts, untagged first, then by VLAN id.
func (t *Tally) stackCounts() []stackCount { return sortedStacks(&t.stacks) }

// ofMAC returns the counts of one source MAC, nil if it sent nothing.
func (t *Tally) ofMAC(m MAC) *macCount { return t.macs[m.key()] }

// macCounts returns the per-source-MAC counts, most frames first.
func (t *Tally) macCounts() []*macCount {
	out := make([]*macCount, 0, len(t.macs))
	for _, m := range t.macs {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Frames != out[j].Frames {
			return out[i].Frames > out[j].Frames
		}
		return out[i].MAC.key() < out[j].MAC.key()
	})
	return out
}

// WriteSummary prints the per-VLAN and per-MAC tables; owners may be nil.
func (t *Tally) WriteSummary(w io.Writer, owners Owners) error {
	var b strings.Builder
	plural := func(n uint64) string {
		if n == 1 {
			return "1 frame"
		}
		return fmt.Sprintf("%d frames", n)
	}
	if t.Frames == 0 {
		_, err := io.WriteString(w, "no frames\n")
		return err
	}
	b.WriteString("per VLAN:\n")
	for _, s := range t.stackCounts() {
		fmt.Fprintf(&b, "  %-28s %s\n", s.Stack, plural(s.Frames))
	}
	b.WriteString("per source MAC:\n")
	for _, m := range t.macCounts() {
		owner := owners.Owner(m.MAC)
		if owner == "" {
			owner = m.Owner
		}
		if owner == "" {
			owner = "-"
		}
		var names []string
		for _, s := range m.stackCounts() {
			names = append(names, s.Stack.String())
		}
		dir := ""
		if m.In+m.Out > 0 {
			dir = fmt.Sprintf("(in %d, out %d)  ", m.In, m.Out)
		}
		fmt.Fprintf(&b, "  %s  %-20s %-12s %s%s\n", m.MAC, owner, plural(m.Frames), dir, strings.Join(names, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
