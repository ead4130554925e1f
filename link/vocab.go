package link

import "github.com/vmlink/vmlink/rtnl"

// The typed vocabulary of link kinds is rtnl's (defined once, with the
// kernel's values and one String/Parse pair); link
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
	// MACAddrOp is what a `macaddr` option does to a source-mode link's
	// list of allowed source MACs. The zero value means no change.
	MACAddrOp = rtnl.MacaddrMode
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

	MACAddrNone  MACAddrOp = 0
	MACAddrAdd             = rtnl.MacaddrAdd   // macaddr add MAC
	MACAddrDel             = rtnl.MacaddrDel   // macaddr del MAC
	MACAddrFlush           = rtnl.MacaddrFlush // macaddr flush
	MACAddrSet             = rtnl.MacaddrSet   // macaddr set [MAC…]: replace the list

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
