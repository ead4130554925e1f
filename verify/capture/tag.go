package capture

import (
	"fmt"

	"github.com/vmlink/vmlink/rtnl"
)

// Tag is one VLAN tag as it was on the wire.
type Tag struct {
	TPID EtherType `json:"tpid"` // 0x8100 (802.1Q) or 0x88a8 (802.1ad); 0x9100 in old QinQ gear
	VID  uint16    `json:"vid"`  // 0-4095; 0 is a priority tag (PCP only, no VLAN)
	PCP  uint8     `json:"pcp"`  // priority code point, 0-7
	DEI  bool      `json:"dei"`  // drop eligible indicator (was CFI)
}

// tagFromTCI splits a tag control information word.
func tagFromTCI(tpid EtherType, tci uint16) Tag {
	return Tag{TPID: tpid, VID: tci & 0x0fff, PCP: uint8(tci >> 13), DEI: tci&0x1000 != 0}
}

// TCI is the 16-bit tag control information word of t.
func (t Tag) TCI() uint16 {
	tci := t.VID&0x0fff | uint16(t.PCP&7)<<13
	if t.DEI {
		tci |= 0x1000
	}
	return tci
}

// Protocol names the tag kind as ip-link does ("802.1Q" or "802.1ad", the
// project's one VLAN protocol vocabulary), or by number for a TPID no VLAN
// link uses (0x9100).
func (t Tag) Protocol() string {
	if p := rtnl.VLANProtocol(t.TPID); p.Valid() {
		return p.String()
	}
	return fmt.Sprintf("0x%04x", uint16(t.TPID))
}

// String is e.g. "802.1Q 10" or "802.1ad 100 p 3 DEI".
func (t Tag) String() string {
	s := fmt.Sprintf("%s %d", t.Protocol(), t.VID)
	if t.PCP != 0 {
		s += fmt.Sprintf(" p %d", t.PCP)
	}
	if t.DEI {
		s += " DEI"
	}
	return s
}
