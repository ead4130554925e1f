package link

import (
	"fmt"
	"net"
	"strings"

	"github.com/vmlink/vmlink/rtnl"
)

// The typed vocabulary of link kinds is rtnl's (defined once, with the
// kernel's values, one String/Parse pair and text marshalling); link
// re-exports it so that a caller of link needs no rtnl import.
type (
	// MacvlanMode is a macvlan or macvtap mode. The zero value means "not
	// given", which vmlink creates as bridge (see the package documentation).
	MacvlanMode = rtnl.MacvlanMode
	// MacvlanFlags are the IFLA_MACVLAN_FLAGS bits.
	MacvlanFlags = rtnl.MacvlanFlags
	// IPVlanMode is an ipvlan mode. The zero value means "not given": the
	// kernel then uses l3.
	IPVlanMode = rtnl.IPVlanMode
	// IPVlanFlags is how ipvlan links of one parent reach each other:
	// bridge, private or vepa. The zero value means "not given": bridge.
	IPVlanFlags = rtnl.IPVlanFlags
	// VLANProtocol is the VLAN tag's TPID. The zero value means "not
	// given": the kernel then uses 802.1Q.
	VLANProtocol = rtnl.VLANProtocol
)

// Values of the vocabulary; the zero value of each is "not given".
const (
	MacvlanModeUnset    MacvlanMode = 0
	MacvlanModePrivate              = rtnl.MacvlanModePrivate
	MacvlanModeVEPA                 = rtnl.MacvlanModeVEPA
	MacvlanModeBridge               = rtnl.MacvlanModeBridge
	MacvlanModePassthru             = rtnl.MacvlanModePassthru
	MacvlanModeSource               = rtnl.MacvlanModeSource

	MacvlanFlagNoPromisc = rtnl.MacvlanFlagNoPromisc // passthru: do not put the parent in promiscuous mode
	MacvlanFlagNoDst     = rtnl.MacvlanFlagNoDst     // source: do not also deliver to the link the destination MAC matches

	IPVlanModeUnset IPVlanMode = 0
	IPVlanModeL2               = rtnl.IPVlanModeL2
	IPVlanModeL3               = rtnl.IPVlanModeL3
	IPVlanModeL3S              = rtnl.IPVlanModeL3S

	IPVlanFlagUnset   IPVlanFlags = 0
	IPVlanFlagBridge              = rtnl.IPVlanFlagBridge
	IPVlanFlagPrivate             = rtnl.IPVlanFlagPrivate
	IPVlanFlagVEPA                = rtnl.IPVlanFlagVEPA

	VLANProtocolUnset VLANProtocol = 0
	VLAN8021Q                      = rtnl.VLANProtocol8021Q  // customer tag, `protocol 802.1Q`
	VLAN8021AD                     = rtnl.VLANProtocol8021AD // service tag (QinQ), `protocol 802.1ad`
)

// The one conversion from iproute2's words; the errors say only the fix
// (the caller names the field and the value).
var (
	ParseMacvlanMode  = rtnl.ParseMacvlanMode
	ParseIPVlanMode   = rtnl.ParseIPVlanMode
	ParseIPVlanFlags  = rtnl.ParseIPVlanFlags
	ParseVLANProtocol = rtnl.ParseVLANProtocol
)

// DefaultMacvlanMode is the mode vmlink creates a macvlan or macvtap in
// when none is given. The kernel's own default would be vepa.
const DefaultMacvlanMode = MacvlanModeBridge

// MACAddrOp is what a `macaddr` option does to a source-mode link's list of
// allowed source MACs. The zero value means no change.
type MACAddrOp uint8

const (
	MACAddrNone  MACAddrOp = iota
	MACAddrAdd             // macaddr add MAC
	MACAddrDel             // macaddr del MAC
	MACAddrFlush           // macaddr flush
	MACAddrSet             // macaddr set [MAC…]: replace the list
)

// String returns the iproute2 keyword.
func (o MACAddrOp) String() string {
	switch o {
	case MACAddrNone:
		return "none"
	case MACAddrAdd:
		return "add"
	case MACAddrDel:
		return "del"
	case MACAddrFlush:
		return "flush"
	case MACAddrSet:
		return "set"
	}
	return "unknown"
}

// KernelMode returns the IFLA_MACVLAN_MACADDR_MODE value; ok is false for
// MACAddrNone.
func (o MACAddrOp) KernelMode() (mode uint32, ok bool) {
	switch o {
	case MACAddrAdd:
		return 0, true
	case MACAddrDel:
		return 1, true
	case MACAddrFlush:
		return 2, true
	case MACAddrSet:
		return 3, true
	}
	return 0, false
}

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

// validateIPVlanOpts checks a given (non-zero) ipvlan mode and flag.
func validateIPVlanOpts(kind, name string, m IPVlanMode, f IPVlanFlags) error {
	if m != IPVlanModeUnset && !m.Valid() {
		_, err := ParseIPVlanMode("")
		return fieldErr(kind, name, "mode", m.String(), err.Error())
	}
	if f != IPVlanFlagUnset && !f.Valid() {
		_, err := ParseIPVlanFlags("")
		return fieldErr(kind, name, "flag", f.String(), err.Error())
	}
	return nil
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

// IPVlan is an ipvlan link: `ip link add NAME link PARENT type ipvlan mode
// l3 [bridge|private|vepa]`.
type IPVlan struct {
	Common
	Mode IPVlanMode
	Flag IPVlanFlags
}

// Kind implements Spec.
func (*IPVlan) Kind() string { return "ipvlan" }

func (*IPVlan) needsParent() bool { return true }

// Validate implements Spec.
func (v *IPVlan) Validate() error {
	if err := v.Common.validate("ipvlan", true); err != nil {
		return err
	}
	if err := validateIPVlanOpts("ipvlan", v.Name, v.Mode, v.Flag); err != nil {
		return err
	}
	if v.Address != nil {
		// ipvlan links share the parent's MAC: the kernel refuses another.
		return fieldErr("ipvlan", v.Name, "address", v.Address.String(), "ipvlan links always use the parent's MAC: drop address")
	}
	return nil
}

// Veth is a veth pair: `ip link add NAME type veth peer name PEER`. The
// peer is created next to the link (move it with Set afterwards).
type Veth struct {
	Common
	Peer        string
	PeerAddress net.HardwareAddr
	// PeerUp brings the peer up too.
	PeerUp bool
}

// Kind implements Spec.
func (*Veth) Kind() string { return "veth" }

func (*Veth) needsParent() bool { return false }

// Validate implements Spec.
func (v *Veth) Validate() error {
	if err := v.Common.validate("veth", false); err != nil {
		return err
	}
	if err := CheckName(v.Peer); err != nil {
		return fieldErr("veth", v.Name, "peer name", v.Peer, err.Error())
	}
	if v.Peer == v.Name {
		return fieldErr("veth", v.Name, "peer name", v.Peer, "the peer needs a name of its own")
	}
	if v.PeerAddress != nil {
		if err := CheckUnicastMAC(v.PeerAddress); err != nil {
			return fieldErr("veth", v.Name, "peer address", v.PeerAddress.String(), err.Error())
		}
	}
	return nil
}

// Dummy is a dummy link (`type dummy`), a parent that needs no peer.
type Dummy struct {
	Common
}

// Kind implements Spec.
func (*Dummy) Kind() string { return "dummy" }

func (*Dummy) needsParent() bool { return false }

// Validate implements Spec.
func (d *Dummy) Validate() error { return d.Common.validate("dummy", false) }

// kindOf returns a display kind for messages when s may be nil.
func kindOf(s Spec) string {
	if s == nil {
		return "link"
	}
	return strings.TrimSpace(s.Kind())
}
