package capture

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// Filter selects frames by VLAN, MAC and payload ethertype. Every set field
// must match (AND). The zero Filter keeps everything.
//
// Live, a Filter is compiled to classic BPF and attached to the socket, so
// the kernel drops what we do not want before it is copied; offline the same
// Filter is applied to decoded frames with Match.
type Filter struct {
	// VLAN keeps frames that carry this VLAN id in any tag of their stack
	// (outer or inner), like tcpdump's "vlan N or (vlan and vlan N)".
	// VLAN 0 selects priority-tagged frames.
	VLAN *uint16
	// TPID narrows the tag match to tags of this type (0x8100 or 0x88a8).
	// Alone (VLAN nil) it keeps frames with any tag of this type.
	TPID EtherType
	// MAC keeps frames with this source or destination address.
	MAC *MAC
	// EtherType keeps frames whose payload after all tags has this type.
	EtherType *EtherType
}

// IsZero reports whether f keeps every frame.
func (f Filter) IsZero() bool {
	return f.VLAN == nil && f.TPID == 0 && f.MAC == nil && f.EtherType == nil
}

// Validate checks the fields before anything is compiled or attached.
func (f Filter) Validate() error {
	if f.VLAN != nil && *f.VLAN > 4095 {
		return fmt.Errorf("filter: VLAN id %d out of range: use 0-4095", *f.VLAN)
	}
	if f.TPID != 0 && !f.TPID.IsVLAN() {
		return fmt.Errorf("filter: TPID 0x%04x is not a VLAN tag type: use 0x8100 (802.1Q) or 0x88a8 (802.1ad)", uint16(f.TPID))
	}
	if f.EtherType != nil && f.EtherType.IsVLAN() {
		return fmt.Errorf("filter: ethertype 0x%04x is a VLAN tag, not a payload type: select tagged frames with a VLAN filter", uint16(*f.EtherType))
	}
	return nil
}

// String is the filter in tcpdump-like words, for the pcapng if_filter
// option and messages: "vlan 10 and ether host 02:00:00:00:00:01".
func (f Filter) String() string {
	var parts []string
	if f.VLAN != nil || f.TPID != 0 {
		s := "vlan"
		if f.VLAN != nil {
			s += " " + strconv.Itoa(int(*f.VLAN))
		}
		if f.TPID != 0 {
			s += fmt.Sprintf(" tpid 0x%04x", uint16(f.TPID))
		}
		parts = append(parts, s)
	}
	if f.MAC != nil {
		parts = append(parts, "ether host "+f.MAC.String())
	}
	if f.EtherType != nil {
		parts = append(parts, fmt.Sprintf("ether proto 0x%04x", uint16(*f.EtherType)))
	}
	return strings.Join(parts, " and ")
}

// Match applies f to a decoded frame (tags inline, as in files).
func (f Filter) Match(fr *Frame) bool {
	if f.MAC != nil && fr.Src != *f.MAC && fr.Dst != *f.MAC {
		return false
	}
	if f.EtherType != nil && fr.EtherType != *f.EtherType {
		return false
	}
	if f.VLAN != nil || f.TPID != 0 {
		for _, t := range fr.VLANs {
			if (f.VLAN == nil || t.VID == *f.VLAN) && (f.TPID == 0 || t.TPID == f.TPID) {
				return true
			}
		}
		return false
	}
	return true
}

// ParseEtherType reads an ethertype name (arp, ipv4/ip, ipv6/ip6, lldp) or
// number (0x88cc, or decimal).
func ParseEtherType(s string) (EtherType, error) {
	switch strings.ToLower(s) {
	case "arp":
		return EtherTypeARP, nil
	case "ipv4", "ip", "ip4":
		return EtherTypeIPv4, nil
	case "ipv6", "ip6":
		return EtherTypeIPv6, nil
	case "lldp":
		return EtherTypeLLDP, nil
	}
	v, err := strconv.ParseUint(s, 0, 16)
	if err != nil || v < 0x0600 {
		return 0, fmt.Errorf("ethertype %q: use arp, ipv4, ipv6, lldp or a number from 0x0600 like 0x88cc", s)
	}
	return EtherType(v), nil
}

// bpfMode says where the outer VLAN tag is when the program runs.
type bpfMode uint8

// BPF modes. The zero value is not a mode.
const (
	_ bpfMode = iota
	// bpfLive is for an AF_PACKET socket: the kernel has usually moved the
	// outer tag out of the frame into skb metadata (what PACKET_AUXDATA
	// reports), so the program asks the VLAN extensions first
	// (SKF_AD_VLAN_TAG_PRESENT, SKF_AD_VLAN_TAG, SKF_AD_VLAN_TPID) and then
	// looks for inline tags (inner tags, and outer ones on devices that do
	// not strip them). x/net/bpf's VM cannot run these extensions.
	bpfLive
	// bpfInline is for bytes with every tag inline (files); it uses no
	// extension and runs in bpf.NewVM.
	bpfInline
)

// bpfSnap is what an accepting program returns: the bytes to keep. Above
// any MTU plus tags, so accepted frames are never cut.
const bpfSnap = 262144

// inlineTagDepth is how many inline tags the programs walk. With the outer
// tag in aux data this covers a three-tag stack; Match has no limit.
const inlineTagDepth = 3

// compile assembles f into classic BPF for mode. The zero Filter compiles
// to nil: no program, keep everything.
func (f Filter) compile(mode bpfMode) ([]bpf.RawInstruction, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if mode != bpfLive && mode != bpfInline {
		return nil, fmt.Errorf("compile filter: invalid BPF mode %d", mode)
	}
	if f.IsZero() {
		return nil, nil
	}
	a := &asm{labels: map[string]int{}}
	if f.MAC != nil {
		a.macPredicate(*f.MAC)
	}
	if f.VLAN != nil || f.TPID != 0 {
		a.vlanPredicate(f.VLAN, f.TPID, mode == bpfLive)
	}
	if f.EtherType != nil {
		a.etherTypePredicate(*f.EtherType)
	}
	a.emit(bpf.RetConstant{Val: bpfSnap})
	a.label(lblFail)
	a.emit(bpf.RetConstant{Val: 0})
	prog, err := a.resolve()
	if err != nil {
		return nil, fmt.Errorf("compile filter %q: %w", f, err)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("compile filter %q: %w", f, err)
	}
	return raw, nil
}

const lblFail = "fail"

// asm is a tiny assembler: conditional jumps name labels, resolved to the
// forward skips classic BPF wants once the program is complete.
type asm struct {
	prog   []bpf.Instruction
	labels map[string]int
	fixups []fixup
	seq    int
}

type fixup struct {
	at             int
	ifTrue, ifElse string // "" falls through
}

func (a *asm) emit(i bpf.Instruction) { a.prog = append(a.prog, i) }

// newLabel returns a unique label name.
func (a *asm) newLabel(p string) string { a.seq++; return fmt.Sprintf("%s%d", p, a.seq) }

func (a *asm) label(name string) { a.labels[name] = len(a.prog) }

// jeq compares A with v and branches to the labels ("" = next instruction).
func (a *asm) jeq(v uint32, ifTrue, ifElse string) {
	a.fixups = append(a.fixups, fixup{at: len(a.prog), ifTrue: ifTrue, ifElse: ifElse})
	a.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: v})
}

// ja jumps unconditionally.
func (a *asm) ja(to string) {
	a.fixups = append(a.fixups, fixup{at: len(a.prog), ifTrue: to})
	a.emit(bpf.Jump{})
}

func (a *asm) resolve() ([]bpf.Instruction, error) {
	skip := func(from int, to string) (int, error) {
		if to == "" {
			return 0, nil
		}
		pos, ok := a.labels[to]
		if !ok {
			return 0, fmt.Errorf("undefined label %s", to)
		}
		s := pos - from - 1
		if s < 0 {
			return 0, fmt.Errorf("backward jump to %s", to)
		}
		return s, nil
	}
	for _, fx := range a.fixups {
		t, err := skip(fx.at, fx.ifTrue)
		if err != nil {
			return nil, err
		}
		switch ins := a.prog[fx.at].(type) {
		case bpf.Jump:
			ins.Skip = uint32(t)
			a.prog[fx.at] = ins
		case bpf.JumpIf:
			e, err := skip(fx.at, fx.ifElse)
			if err != nil {
				return nil, err
			}
			if t > 255 || e > 255 {
				return nil, errors.New("program too long for a conditional jump")
			}
			ins.SkipTrue, ins.SkipFalse = uint8(t), uint8(e)
			a.prog[fx.at] = ins
		}
	}
	return a.prog, nil
}

// macPredicate: source or destination equals m.
func (a *asm) macPredicate(m MAC) {
	hi := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	lo := uint32(m[4])<<8 | uint32(m[5])
	pass, dst := a.newLabel("macok"), a.newLabel("macdst")
	a.emit(bpf.LoadAbsolute{Off: 6, Size: 4})
	a.jeq(hi, "", dst)
	a.emit(bpf.LoadAbsolute{Off: 10, Size: 2})
	a.jeq(lo, pass, dst)
	a.label(dst)
	a.emit(bpf.LoadAbsolute{Off: 0, Size: 4})
	a.jeq(hi, "", lblFail)
	a.emit(bpf.LoadAbsolute{Off: 4, Size: 2})
	a.jeq(lo, pass, lblFail)
	a.label(pass)
}

// isTagType branches to yes when A holds a VLAN TPID, else to no.
func (a *asm) isTagType(yes, no string) {
	a.jeq(uint32(EtherType8021Q), yes, "")
	a.jeq(uint32(EtherType8021AD), yes, "")
	a.jeq(uint32(EtherTypeQinQ), yes, no)
}

// vlanPredicate: some tag of the stack has the VID (and TPID when set).
// live adds the aux-data tag the kernel took out of the frame.
func (a *asm) vlanPredicate(vid *uint16, tpid EtherType, live bool) {
	pass := a.newLabel("vlanok")
	// tagBody tests the tag whose TPID is in A and whose TCI is loaded by
	// loadTCI, continuing at next when it does not match.
	tagBody := func(loadTCI bpf.Instruction, next string) {
		if tpid != 0 {
			a.jeq(uint32(tpid), "", next)
		}
		if vid == nil {
			a.ja(pass)
			return
		}
		a.emit(loadTCI)
		a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0fff})
		a.jeq(uint32(*vid), pass, next)
	}
	if live {
		inline := a.newLabel("inline")
		a.emit(bpf.LoadExtension{Num: bpf.ExtVLANTagPresent})
		a.jeq(0, inline, "")
		// SKF_AD_VLAN_TPID is 0x8100 for a tag whose protocol the kernel
		// did not record (pre-3.10); with the aux tag checked first the
		// order of the stack is kept: aux is the outermost.
		a.emit(bpf.LoadExtension{Num: bpf.ExtVLANProto})
		tagBody(bpf.LoadExtension{Num: bpf.ExtVLANTag}, inline)
		a.label(inline)
	}
	for k := 0; k < inlineTagDepth; k++ {
		off := uint32(12 + 4*k)
		isTag, next := a.newLabel("tag"), a.newLabel("next")
		a.emit(bpf.LoadAbsolute{Off: off, Size: 2})
		a.isTagType(isTag, lblFail)
		a.label(isTag)
		tagBody(bpf.LoadAbsolute{Off: off + 2, Size: 2}, next)
		a.label(next)
	}
	a.ja(lblFail)
	a.label(pass)
}

// etherTypePredicate: the type after the inline tags equals e. On a live
// socket the outer tag is usually not inline, and the same walk then starts
// at the inner tag or the payload type: both are what we want.
func (a *asm) etherTypePredicate(e EtherType) {
	cmp := a.newLabel("etype")
	for k := 0; k <= inlineTagDepth; k++ {
		a.emit(bpf.LoadAbsolute{Off: uint32(12 + 4*k), Size: 2})
		if k == inlineTagDepth {
			break
		}
		more := a.newLabel("more")
		a.isTagType(more, cmp)
		a.label(more)
	}
	a.label(cmp)
	a.jeq(uint32(e), "", lblFail)
}
