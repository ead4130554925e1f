package link

import (
	"fmt"
	"net"

	"github.com/vmlink/vmlink/rtnl"
)

// DefaultMacvlanMode is the mode vmlink creates a macvlan or macvtap in
// when none is given. The kernel's own default would be vepa.
const DefaultMacvlanMode = MacvlanModeBridge

// Macvlan is a macvlan link on Parent:
// `ip link add NAME link PARENT type macvlan mode MODE …`.
type Macvlan struct {
	Common
	// Mode; unset creates bridge mode (DefaultMacvlanMode).
	Mode MacvlanMode
	// NoPromisc (`nopromisc`) is only valid in passthru mode.
	NoPromisc bool
	// NoDst (`nodst`) is only valid in source mode.
	NoDst bool
	// SourceMACs is the list of source MACs a source-mode link accepts
	// (`macaddr set MAC…`); only valid in source mode. A non-nil empty
	// list is a list given empty (`macaddr flush`), also refused outside
	// source mode.
	SourceMACs []net.HardwareAddr
	// BCQueueLen (`bcqueuelen`) is the length of the broadcast/multicast
	// receive queue (the parent uses the largest of its links'); kernel 5.11+.
	BCQueueLen *uint32
	// BCCutoff (`bclim`) is the number of links above which a multicast is
	// queued instead of delivered inline; kernel 6.4+ (iproute2 6.4+).
	BCCutoff *int32
}

// Macvtap is a macvtap link: a macvlan with a tap character device
// (/dev/tapN) for a VM. Same fields and rules as Macvlan.
type Macvtap Macvlan

// Kind implements Spec.
func (*Macvlan) Kind() string { return "macvlan" }

// Kind implements Spec.
func (*Macvtap) Kind() string { return "macvtap" }

func (*Macvlan) needsParent() bool { return true }
func (*Macvtap) needsParent() bool { return true }

// Validate implements Spec.
func (m *Macvlan) Validate() error { return m.validate("macvlan") }

// Validate implements Spec.
func (m *Macvtap) Validate() error { return (*Macvlan)(m).validate("macvtap") }

// EffectiveMode is the mode the link is created in: Mode, or
// DefaultMacvlanMode when unset.
func (m *Macvlan) EffectiveMode() MacvlanMode {
	if m.Mode == MacvlanModeUnset {
		return DefaultMacvlanMode
	}
	return m.Mode
}

// Flags returns the IFLA_MACVLAN_FLAGS bits of the spec.
func (m *Macvlan) Flags() MacvlanFlags {
	var f MacvlanFlags
	if m.NoPromisc {
		f |= MacvlanFlagNoPromisc
	}
	if m.NoDst {
		f |= MacvlanFlagNoDst
	}
	return f
}

func (m *Macvlan) validate(kind string) error {
	if err := m.Common.validate(kind, true); err != nil {
		return err
	}
	op := MACAddrNone
	if m.SourceMACs != nil {
		op = MACAddrSet
	}
	return validateMacvlanOpts(kind, m.Name, m.EffectiveMode(), m.NoPromisc, m.NoDst, m.SourceMACs, op)
}

// badMacvlanMode is the error for a mode outside the vocabulary; the fix is
// ParseMacvlanMode's.
func badMacvlanMode(kind, name string, m MacvlanMode) error {
	_, err := ParseMacvlanMode("")
	return fieldErr(kind, name, "mode", m.String(), err.Error())
}

// validateMacvlanOpts checks mode-dependent options against the mode the
// link will have.
func validateMacvlanOpts(kind, name string, mode MacvlanMode, noPromisc, noDst bool, macs []net.HardwareAddr, op MACAddrOp) error {
	if !mode.Valid() {
		return badMacvlanMode(kind, name, mode)
	}
	if noPromisc && mode != MacvlanModePassthru {
		return fieldErr(kind, name, "nopromisc", "", fmt.Sprintf("only valid in passthru mode, not %s: drop nopromisc or use mode passthru", mode))
	}
	if noDst && mode != MacvlanModeSource {
		return fieldErr(kind, name, "nodst", "", fmt.Sprintf("only valid in source mode, not %s: drop nodst or use mode source", mode))
	}
	if (len(macs) > 0 || op != MACAddrNone) && mode != MacvlanModeSource {
		return fieldErr(kind, name, "macaddr", "", fmt.Sprintf("a list of source MACs is only valid in source mode, not %s: drop the source MACs or use mode source", mode))
	}
	seen := map[string]bool{}
	for _, a := range macs {
		if err := CheckUnicastMAC(a); err != nil {
			return fieldErr(kind, name, "macaddr", a.String(), err.Error())
		}
		if seen[string(a)] && op == MACAddrSet {
			return fieldErr(kind, name, "macaddr", a.String(), "listed twice: give each source MAC once")
		}
		seen[string(a)] = true
	}
	return nil
}

// macvlanData is the macvlan/macvtap IFLA_INFO_DATA creating m. The mode is
// always sent (the kernel's default without it is vepa).
func macvlanData(m *Macvlan) *rtnl.Macvlan {
	mode := rtnl.MacvlanMode(m.EffectiveMode())
	d := &rtnl.Macvlan{Mode: &mode, BcQueueLen: m.BCQueueLen, BcCutoff: m.BCCutoff}
	if f := m.Flags(); f != 0 {
		ff := rtnl.MacvlanFlags(f)
		d.Flags = &ff
	}
	if len(m.SourceMACs) > 0 {
		op := rtnl.MacaddrSet
		d.MacaddrMode = &op
		d.MacaddrData = m.SourceMACs
	}
	return d
}

func macvlanInfo(d *rtnl.Macvlan) *MacvlanInfo {
	mi := &MacvlanInfo{
		MACAddrCount:   d.MacaddrCount,
		MACAddrs:       d.MacaddrData,
		BCQueueLen:     d.BcQueueLen,
		BCQueueLenUsed: d.BcQueueLenUsed,
		BCCutoff:       d.BcCutoff,
	}
	if d.Mode != nil {
		mi.Mode = MacvlanMode(*d.Mode)
	}
	if d.Flags != nil {
		mi.Flags = *d.Flags
	}
	return mi
}

// hasNewerOptions reports whether s asks for an option ignoredByKernel
// checks, so that a batch reads back only those links.
func hasNewerOptions(s Spec) bool {
	m := macvlanSpec(s)
	return m != nil && (m.BCCutoff != nil || m.BCQueueLen != nil)
}

// macvlanSpec is s as a *Macvlan when it is a macvlan or a macvtap (the
// same options), else nil.
func macvlanSpec(s Spec) *Macvlan {
	switch v := s.(type) {
	case *Macvlan:
		return v
	case *Macvtap:
		return (*Macvlan)(v)
	}
	return nil
}

// defaultBCCutoff is the kernel's bclim when none is set. macvlan_fill_info
// leaves IFLA_MACVLAN_BC_CUTOFF out of a dump when the cutoff has this value
// (measured on 6.18: bclim 0, -1, 2 and 8 are reported, 1 is not).
const defaultBCCutoff = 1

// reportedBCCutoff is the cutoff a dump says, the default when absent.
func reportedBCCutoff(m *MacvlanInfo) int32 {
	if m.BCCutoff == nil {
		return defaultBCCutoff
	}
	return *m.BCCutoff
}

// ignoredByKernel finds options of s the kernel accepted without applying:
// attributes newer than the kernel, which it skips without a word (macvlan
// parses IFLA_INFO_DATA leniently). ip reports success for them; the link
// l read back after creation tells. bclim (IFLA_MACVLAN_BC_CUTOFF) came in
// 6.4: Debian 12's 6.1 creates the link and drops the option.
func ignoredByKernel(s Spec, l *Link) error {
	m := macvlanSpec(s)
	if m == nil || l.Macvlan == nil {
		return nil
	}
	// An absent cutoff is the default on 6.4+, so only a bclim other than
	// the default shows that the kernel dropped it.
	if m.BCCutoff != nil && *m.BCCutoff != defaultBCCutoff && l.Macvlan.BCCutoff == nil {
		return fieldErr(s.Kind(), m.Name, "bclim", fmt.Sprint(*m.BCCutoff),
			"this kernel ignores it (IFLA_MACVLAN_BC_CUTOFF needs Linux 6.4 or newer): leave bclim out here")
	}
	if m.BCQueueLen != nil && l.Macvlan.BCQueueLen == nil {
		return fieldErr(s.Kind(), m.Name, "bcqueuelen", fmt.Sprint(*m.BCQueueLen),
			"this kernel ignores it (IFLA_MACVLAN_BC_QUEUE_LEN needs Linux 5.11 or newer): leave bcqueuelen out here")
	}
	return nil
}

// macvlanChangeInfo builds IFLA_LINKINFO changing a macvlan or macvtap
// link cur.
func macvlanChangeInfo(cur *Link, c *MacvlanChange) *rtnl.LinkInfo {
	d := &rtnl.Macvlan{BcQueueLen: c.BCQueueLen, BcCutoff: c.BCCutoff}
	if c.Mode != MacvlanModeUnset {
		mode := c.Mode
		d.Mode = &mode
	}
	if c.Flags != nil {
		f := *c.Flags
		d.Flags = &f
	}
	if c.MACAddrOp != MACAddrNone {
		op := c.MACAddrOp
		d.MacaddrMode = &op
		switch c.MACAddrOp {
		case MACAddrAdd, MACAddrDel:
			d.Macaddr = c.MACAddrs[0]
		case MACAddrSet:
			d.MacaddrData = c.MACAddrs
		}
	}
	if cur.Kind == "macvtap" {
		return &rtnl.LinkInfo{Kind: "macvtap", Data: &rtnl.Macvtap{Macvlan: *d}}
	}
	return &rtnl.LinkInfo{Kind: "macvlan", Data: d}
}

// compareMacvlan lists how a macvlan or macvtap link differs from m.
func compareMacvlan(m *Macvlan, l *Link) []string {
	if l.Macvlan == nil {
		return []string{"mode: not reported by the kernel"}
	}
	var d diffs
	if have, want := l.Macvlan.Mode, m.EffectiveMode(); have != want {
		d.add("mode", have, want)
	}
	if have, want := l.Macvlan.Flags, m.Flags(); have != want {
		d.add("flags", have, want)
	}
	if m.BCQueueLen != nil && (l.Macvlan.BCQueueLen == nil || *l.Macvlan.BCQueueLen != *m.BCQueueLen) {
		d.add("bcqueuelen", derefOr(l.Macvlan.BCQueueLen), *m.BCQueueLen)
	}
	if m.BCCutoff != nil && reportedBCCutoff(l.Macvlan) != *m.BCCutoff {
		d.add("bclim", reportedBCCutoff(l.Macvlan), *m.BCCutoff)
	}
	if len(m.SourceMACs) > 0 && !sameMACs(macStrings(l.Macvlan.MACAddrs), macStrings(m.SourceMACs)) {
		d.add("macaddr", macStrings(l.Macvlan.MACAddrs), macStrings(m.SourceMACs))
	}
	return d
}
