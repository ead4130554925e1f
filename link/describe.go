package link

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Link is a link's state as the kernel reports it (RTM_NEWLINK from a get
// or a dump), decoded into plain fields, with the parent's name resolved.
type Link struct {
	Index int32
	Name  string
	// Kind is IFLA_INFO_KIND ("vlan", "macvlan", "veth"…); "" for links
	// without one (loopback, physical NICs).
	Kind string
	// Type is the ARPHRD_* hardware type (1 = Ethernet).
	Type uint16
	// Flags are the IFF_* flags (IFF_UP, IFF_LOWER_UP…).
	Flags uint32
	// ParentIndex is IFLA_LINK, 0 when the link has no parent. For a
	// parent in another namespace it may equal Index (the kernel then
	// sends no IFLA_LINK).
	ParentIndex int32
	// Parent is the parent's name when it lives in the same namespace and
	// was found; "" otherwise.
	Parent string
	// ParentNetNSID is IFLA_LINK_NETNSID: the parent lives in the
	// namespace with this id (as seen from the link's namespace).
	ParentNetNSID *int32
	// ParentDown is true when the parent (same namespace) is not up: ip
	// prints M-DOWN.
	ParentDown bool
	MTU        uint32
	MinMTU     *uint32
	MaxMTU     *uint32
	// OperState is IF_OPER_* (6 = up).
	OperState *uint8
	Address   net.HardwareAddr
	Broadcast net.HardwareAddr
	Group     uint32
	Alias     string
	TxQLen    *uint32
	// Promiscuity counts the users that put the link in promiscuous mode.
	Promiscuity *uint32
	// Master is IFLA_MASTER (a bridge port's bridge), 0 if none.
	Master     int32
	MasterName string
	// Optional attributes rtnl may decode; nil when not reported.
	Qdisc       string
	LinkMode    *uint8
	Allmulti    *uint32
	NumTxQueues *uint32
	NumRxQueues *uint32
	// Offload limits (gso_max_size … gro_max_size), as the kernel reports them.
	GSOMaxSize, GSOMaxSegs, TSOMaxSize, TSOMaxSegs, GROMaxSize *uint32
	// AddrGenMode is IFLA_INET6_ADDR_GEN_MODE (IN6_ADDR_GEN_MODE_*), nil
	// when the kernel does not report it (IPv6 disabled).
	AddrGenMode *uint8

	// BridgePort is the link's state as a port of a bridge; nil when the
	// kernel reports none (the link is no bridge's port).
	BridgePort *BridgePortInfo

	// Exactly one of these is set for the kinds vmlink knows.
	VLAN    *VLANInfo
	Macvlan *MacvlanInfo
	IPVlan  *IPVlanInfo

	// ModeDefaulted is true on a Link returned by Create or Ensure when the
	// spec gave no macvlan/macvtap mode and vmlink chose bridge. It is not
	// stored in the kernel (see the package documentation), so links read
	// back later never have it.
	ModeDefaulted bool
}

// Up reports whether the link is administratively up.
func (l *Link) Up() bool { return l.Flags&unix.IFF_UP != 0 }

// BridgePortInfo is a bridge port's IFLA_INFO_SLAVE_DATA.
type BridgePortInfo struct {
	// State is IFLA_BRPORT_STATE (BR_STATE_*: 3 is forwarding).
	State *uint8
	// Hairpin is IFLA_BRPORT_MODE.
	Hairpin *bool
}

// Forwarding reports whether the port passes frames (BR_STATE_FORWARDING).
func (p *BridgePortInfo) Forwarding() bool {
	return p != nil && p.State != nil && *p.State == brStateForwarding
}

// brStateForwarding is BR_STATE_FORWARDING.
const brStateForwarding = 3

// VLANInfo is a VLAN link's IFLA_INFO_DATA.
type VLANInfo struct {
	ID         uint16
	Protocol   VLANProtocol
	Flags      uint32
	HasFlags   bool
	IngressQoS []QoSMapping
	EgressQoS  []QoSMapping
}

// MacvlanInfo is a macvlan or macvtap link's IFLA_INFO_DATA.
type MacvlanInfo struct {
	Mode           MacvlanMode
	Flags          MacvlanFlags
	MACAddrCount   *uint32
	MACAddrs       []net.HardwareAddr
	BCQueueLen     *uint32
	BCQueueLenUsed *uint32
	BCCutoff       *int32
}

// IPVlanInfo is an ipvlan link's IFLA_INFO_DATA.
type IPVlanInfo struct {
	Mode IPVlanMode
	// Flag is nil when the kernel did not report flags.
	Flag *IPVlanFlags
}

// Description is a link described with the keys and values of
// `ip -d -j link show`, in iproute2's order, so that scripts written
// against iproute2's JSON read ours unchanged. Keys iproute2 prints that
// vmlink does not decode (proto_down, altnames, xdp, parentbus…) are absent.
type Description struct {
	IfIndex int32 `json:"ifindex"`
	// Link is the parent's name (same namespace); LinkIndex replaces it
	// when the parent is in another namespace (with LinkNetNSID).
	Link        *string  `json:"link,omitempty"`
	LinkIndex   *int32   `json:"link_index,omitempty"`
	IfName      string   `json:"ifname"`
	Flags       []string `json:"flags"`
	MTU         uint32   `json:"mtu"`
	Qdisc       string   `json:"qdisc,omitempty"`
	Master      string   `json:"master,omitempty"`
	OperState   string   `json:"operstate,omitempty"`
	LinkMode    string   `json:"linkmode,omitempty"`
	Group       string   `json:"group"`
	TxQLen      *uint32  `json:"txqlen,omitempty"`
	LinkType    string   `json:"link_type"`
	Address     string   `json:"address,omitempty"`
	Broadcast   string   `json:"broadcast,omitempty"`
	LinkNetNSID *int32   `json:"link_netnsid,omitempty"`
	// LinkNetNS names the namespace LinkNetNSID stands for, when the
	// caller resolved it (Handle.NetNSNames); text only, as in ip's output.
	LinkNetNS   string  `json:"-"`
	Promiscuity *uint32 `json:"promiscuity,omitempty"`
	Allmulti    *uint32 `json:"allmulti,omitempty"`
	MinMTU      *uint32 `json:"min_mtu,omitempty"`
	MaxMTU      *uint32 `json:"max_mtu,omitempty"`
	LinkInfo    *Info   `json:"linkinfo,omitempty"`
	AddrGenMode string  `json:"inet6_addr_gen_mode,omitempty"`
	NumTxQueues *uint32 `json:"num_tx_queues,omitempty"`
	NumRxQueues *uint32 `json:"num_rx_queues,omitempty"`
	GSOMaxSize  *uint32 `json:"gso_max_size,omitempty"`
	GSOMaxSegs  *uint32 `json:"gso_max_segs,omitempty"`
	TSOMaxSize  *uint32 `json:"tso_max_size,omitempty"`
	TSOMaxSegs  *uint32 `json:"tso_max_segs,omitempty"`
	GROMaxSize  *uint32 `json:"gro_max_size,omitempty"`
	IfAlias     string  `json:"ifalias,omitempty"`

	// modeNote is appended to the macvlan mode in Text ("vmlink default").
	modeNote string
}

// Info is `linkinfo`.
type Info struct {
	InfoKind string `json:"info_kind"`
	// InfoData is *VLANData, *MacvlanData or *IPVlanData.
	InfoData any `json:"info_data,omitempty"`
}

// VLANData is `linkinfo.info_data` of a VLAN link.
type VLANData struct {
	Protocol   string       `json:"protocol"`
	ID         uint16       `json:"id"`
	Flags      []string     `json:"flags,omitzero"` // [] when the kernel reports no flag set
	IngressQoS []QoSMapping `json:"ingress_qos,omitempty"`
	EgressQoS  []QoSMapping `json:"egress_qos,omitempty"`
}

// MacvlanData is `linkinfo.info_data` of a macvlan or macvtap link.
type MacvlanData struct {
	Mode           string   `json:"mode"`
	NoPromisc      bool     `json:"nopromisc,omitempty"`
	NoDst          bool     `json:"nodst,omitempty"`
	BCQueueLen     *uint32  `json:"bcqueuelen,omitempty"`
	UsedBCQueueLen *uint32  `json:"usedbcqueuelen,omitempty"`
	BCLim          *int32   `json:"bclim,omitempty"`
	MACAddrCount   *uint32  `json:"macaddr_count,omitempty"`
	MACAddrData    []string `json:"macaddr_data,omitempty"`
}

// IPVlanData is `linkinfo.info_data` of an ipvlan link.
type IPVlanData struct {
	Mode    string `json:"mode,omitempty"`
	Private bool   `json:"private,omitempty"`
	VEPA    bool   `json:"vepa,omitempty"`
	Bridge  bool   `json:"bridge,omitempty"`
}

// iffNames are the IFF_* flags in iproute2's print order.
var iffNames = []struct {
	bit  uint32
	name string
}{
	{unix.IFF_LOOPBACK, "LOOPBACK"},
	{unix.IFF_BROADCAST, "BROADCAST"},
	{unix.IFF_POINTOPOINT, "POINTOPOINT"},
	{unix.IFF_MULTICAST, "MULTICAST"},
	{unix.IFF_NOARP, "NOARP"},
	{unix.IFF_ALLMULTI, "ALLMULTI"},
	{unix.IFF_PROMISC, "PROMISC"},
	{unix.IFF_MASTER, "MASTER"},
	{unix.IFF_SLAVE, "SLAVE"},
	{unix.IFF_DEBUG, "DEBUG"},
	{unix.IFF_DYNAMIC, "DYNAMIC"},
	{unix.IFF_AUTOMEDIA, "AUTOMEDIA"},
	{unix.IFF_PORTSEL, "PORTSEL"},
	{unix.IFF_NOTRAILERS, "NOTRAILERS"},
	{unix.IFF_UP, "UP"},
	{unix.IFF_LOWER_UP, "LOWER_UP"},
	{unix.IFF_DORMANT, "DORMANT"},
	{unix.IFF_ECHO, "ECHO"},
}

// flagNames returns the flags as iproute2 prints them: NO-CARRIER first when
// up without carrier, then the IFF_* names in iproute2's order, unknown bits
// in hex, and M-DOWN when the parent is down.
func flagNames(flags uint32, parentDown bool) []string {
	out := []string{}
	if flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING == 0 {
		out = append(out, "NO-CARRIER")
	}
	flags &^= unix.IFF_RUNNING
	for _, f := range iffNames {
		if flags&f.bit != 0 {
			flags &^= f.bit
			out = append(out, f.name)
		}
	}
	if flags != 0 {
		out = append(out, strconv.FormatUint(uint64(flags), 16))
	}
	if parentDown {
		out = append(out, "M-DOWN")
	}
	return out
}

var operStates = []string{"UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"}

// linkTypeName maps the ARPHRD_* types vmlink meets to iproute2's names.
func linkTypeName(t uint16) string {
	switch t {
	case unix.ARPHRD_ETHER:
		return "ether"
	case unix.ARPHRD_LOOPBACK:
		return "loopback"
	case unix.ARPHRD_VOID:
		return "void"
	case unix.ARPHRD_NONE:
		return "none"
	case unix.ARPHRD_IPGRE:
		return "gre"
	case unix.ARPHRD_TUNNEL:
		return "ipip"
	case unix.ARPHRD_SIT:
		return "sit"
	}
	return "[" + strconv.Itoa(int(t)) + "]"
}

// groupName returns iproute2's name for a group: "default" for 0, else the
// number (names from /etc/iproute2/group are the CLI's business).
func groupName(g uint32) string {
	if g == 0 {
		return "default"
	}
	return strconv.FormatUint(uint64(g), 10)
}

// vlanFlagNamesOf returns the VLAN flags as iproute2 names them.
func vlanFlagNamesOf(flags uint32) []string {
	out := []string{}
	for _, f := range vlanFlagNames {
		if flags&f.bit != 0 {
			flags &^= f.bit
			out = append(out, f.name)
		}
	}
	if flags != 0 {
		out = append(out, strconv.FormatUint(uint64(flags), 16))
	}
	return out
}

// Describe returns the link's description with iproute2's keys.
func (l *Link) Describe() *Description {
	d := &Description{
		IfIndex:     l.Index,
		IfName:      l.Name,
		Flags:       flagNames(l.Flags, l.ParentDown),
		MTU:         l.MTU,
		Qdisc:       l.Qdisc,
		Master:      l.MasterName,
		Group:       groupName(l.Group),
		TxQLen:      l.TxQLen,
		LinkType:    linkTypeName(l.Type),
		LinkNetNSID: l.ParentNetNSID,
		Promiscuity: l.Promiscuity,
		Allmulti:    l.Allmulti,
		MinMTU:      l.MinMTU,
		MaxMTU:      l.MaxMTU,
		NumTxQueues: l.NumTxQueues,
		NumRxQueues: l.NumRxQueues,
		GSOMaxSize:  l.GSOMaxSize,
		GSOMaxSegs:  l.GSOMaxSegs,
		TSOMaxSize:  l.TSOMaxSize,
		TSOMaxSegs:  l.TSOMaxSegs,
		GROMaxSize:  l.GROMaxSize,
		AddrGenMode: addrGenModeName(l.AddrGenMode),
		IfAlias:     l.Alias,
	}
	d.setParent(l)
	if l.Master != 0 && d.Master == "" {
		d.Master = "if" + strconv.Itoa(int(l.Master))
	}
	if l.OperState != nil {
		d.OperState = operStateName(*l.OperState)
	}
	if l.LinkMode != nil {
		d.LinkMode = linkModeName(*l.LinkMode)
	}
	if len(l.Address) > 0 {
		d.Address = l.Address.String()
	}
	if len(l.Broadcast) > 0 {
		d.Broadcast = l.Broadcast.String()
	}
	if l.Kind != "" {
		d.LinkInfo = &Info{InfoKind: l.Kind, InfoData: l.infoData()}
		if _, ok := d.LinkInfo.InfoData.(*MacvlanData); ok && l.ModeDefaulted {
			d.modeNote = "vmlink default"
		}
	}
	return d
}

// setParent names the parent as ip does: by name when it is in the same
// namespace and known, by index otherwise. ip prints the parent only from
// IFLA_LINK, which the kernel leaves out when the parent's index is the
// link's own (see decodeLink).
func (d *Description) setParent(l *Link) {
	if l.ParentIndex == 0 || l.ParentIndex == l.Index {
		return
	}
	if l.ParentNetNSID != nil || l.Parent == "" {
		idx := l.ParentIndex
		d.LinkIndex = &idx
	} else {
		p := l.Parent
		d.Link = &p
	}
}

// operStateName is iproute2's name for an IF_OPER_* state, its number when
// it has none.
func operStateName(s uint8) string {
	if int(s) < len(operStates) {
		return operStates[s]
	}
	return strconv.Itoa(int(s))
}

// linkModeName is iproute2's name for an IF_LINK_MODE_* mode, its number
// when it has none.
func linkModeName(m uint8) string {
	switch m {
	case 0:
		return "DEFAULT"
	case 1:
		return "DORMANT"
	}
	return strconv.Itoa(int(m))
}

// infoData is the kind's `linkinfo.info_data`, nil for a kind vmlink does
// not decode.
func (l *Link) infoData() any {
	switch {
	case l.VLAN != nil:
		return l.VLAN.data()
	case l.Macvlan != nil:
		return l.Macvlan.data()
	case l.IPVlan != nil:
		return l.IPVlan.data()
	}
	return nil
}

func (v *VLANInfo) data() *VLANData {
	vd := &VLANData{
		Protocol:   v.Protocol.String(),
		ID:         v.ID,
		IngressQoS: v.IngressQoS,
		EgressQoS:  v.EgressQoS,
	}
	if v.Protocol == VLANProtocolUnset {
		vd.Protocol = "802.1q" // what iproute2 prints without the attribute
	}
	if v.HasFlags {
		vd.Flags = vlanFlagNamesOf(v.Flags)
	}
	return vd
}

func (m *MacvlanInfo) data() *MacvlanData {
	md := &MacvlanData{
		Mode:           m.Mode.String(),
		NoPromisc:      m.Flags&MacvlanFlagNoPromisc != 0,
		NoDst:          m.Flags&MacvlanFlagNoDst != 0,
		BCQueueLen:     m.BCQueueLen,
		UsedBCQueueLen: m.BCQueueLenUsed,
		BCLim:          m.BCCutoff,
	}
	if m.Mode == MacvlanModeSource {
		md.MACAddrCount = m.MACAddrCount
		if m.MACAddrCount != nil {
			for _, a := range m.MACAddrs {
				md.MACAddrData = append(md.MACAddrData, a.String())
			}
		}
	}
	return md
}

func (i *IPVlanInfo) data() *IPVlanData {
	ipd := &IPVlanData{}
	if i.Mode != IPVlanModeUnset {
		ipd.Mode = i.Mode.String()
	}
	if f := i.Flag; f != nil {
		switch *f {
		case IPVlanFlagPrivate:
			ipd.Private = true
		case IPVlanFlagVEPA:
			ipd.VEPA = true
		default:
			ipd.Bridge = true
		}
	}
	return ipd
}

// Text returns the description in the shape of `ip -d link show`:
//
//	5: mv1@p0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000
//	    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff promiscuity 0 minmtu 68 maxmtu 65535
//	    macvlan mode bridge bcqueuelen 1000 usedbcqueuelen 1000
//
// Fields iproute2 prints that vmlink does not decode are left out.
func (d *Description) Text() string {
	var b strings.Builder
	d.writeHeader(&b)
	d.writeLinkLayer(&b)
	if d.LinkInfo != nil {
		fmt.Fprintf(&b, "\n    %s", d.LinkInfo.InfoKind)
		switch v := d.LinkInfo.InfoData.(type) {
		case *VLANData:
			v.writeText(&b)
		case *MacvlanData:
			v.writeText(&b, d.modeNote)
		case *IPVlanData:
			v.writeText(&b)
		}
	}
	d.writeDeviceAttrs(&b)
	if d.IfAlias != "" {
		fmt.Fprintf(&b, "\n    alias %s", d.IfAlias)
	}
	b.WriteByte('\n')
	return b.String()
}

// writeHeader writes the first line: index, name@parent, flags, mtu,
// qdisc, master, state, mode, group and qlen.
func (d *Description) writeHeader(b *strings.Builder) {
	name := d.IfName
	switch {
	case d.Link != nil:
		name += "@" + *d.Link
	case d.LinkIndex != nil:
		name += "@if" + strconv.Itoa(int(*d.LinkIndex))
	}
	fmt.Fprintf(b, "%d: %s: <%s> mtu %d", d.IfIndex, name, strings.Join(d.Flags, ","), d.MTU)
	if d.Qdisc != "" {
		fmt.Fprintf(b, " qdisc %s", d.Qdisc)
	}
	if d.Master != "" {
		fmt.Fprintf(b, " master %s", d.Master)
	}
	if d.OperState != "" {
		fmt.Fprintf(b, " state %s", d.OperState)
	}
	if d.LinkMode != "" {
		fmt.Fprintf(b, " mode %s", d.LinkMode)
	}
	fmt.Fprintf(b, " group %s", d.Group)
	if d.TxQLen != nil {
		fmt.Fprintf(b, " qlen %d", *d.TxQLen)
	}
}

// writeLinkLayer writes the link/ line: type, addresses, the parent's
// namespace, promiscuity, allmulti and the MTU bounds.
func (d *Description) writeLinkLayer(b *strings.Builder) {
	fmt.Fprintf(b, "\n    link/%s", d.LinkType)
	if d.Address != "" {
		fmt.Fprintf(b, " %s", d.Address)
	}
	if d.Broadcast != "" {
		fmt.Fprintf(b, " brd %s", d.Broadcast)
	}
	switch {
	case d.LinkNetNS != "":
		fmt.Fprintf(b, " link-netns %s", d.LinkNetNS)
	case d.LinkNetNSID != nil:
		fmt.Fprintf(b, " link-netnsid %d", *d.LinkNetNSID)
	}
	if d.Promiscuity != nil {
		fmt.Fprintf(b, " promiscuity %d", *d.Promiscuity)
	}
	if d.Allmulti != nil {
		fmt.Fprintf(b, " allmulti %d", *d.Allmulti)
	}
	if d.MinMTU != nil {
		fmt.Fprintf(b, " minmtu %d", *d.MinMTU)
	}
	if d.MaxMTU != nil {
		fmt.Fprintf(b, " maxmtu %d", *d.MaxMTU)
	}
}

// writeText writes a VLAN's details after its kind: protocol, id, flags,
// and each QoS map on a line of its own.
func (v *VLANData) writeText(b *strings.Builder) {
	fmt.Fprintf(b, " protocol %s id %d", v.Protocol, v.ID)
	if v.Flags != nil {
		fmt.Fprintf(b, " <%s>", strings.Join(v.Flags, ","))
	}
	writeQoS(b, "ingress-qos-map", v.IngressQoS)
	writeQoS(b, "egress-qos-map", v.EgressQoS)
}

func writeQoS(b *strings.Builder, name string, m []QoSMapping) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(b, "\n      %s {", name)
	for _, q := range m {
		fmt.Fprintf(b, " %d:%d", q.From, q.To)
	}
	b.WriteString(" }")
}

// writeText writes a macvlan's details after its kind; note follows the
// mode in parentheses.
func (v *MacvlanData) writeText(b *strings.Builder, note string) {
	fmt.Fprintf(b, " mode %s", v.Mode)
	if note != "" {
		fmt.Fprintf(b, " (%s)", note)
	}
	if v.NoPromisc {
		b.WriteString(" nopromisc")
	}
	if v.NoDst {
		b.WriteString(" nodst")
	}
	if v.BCQueueLen != nil {
		fmt.Fprintf(b, " bcqueuelen %d", *v.BCQueueLen)
	}
	if v.UsedBCQueueLen != nil {
		fmt.Fprintf(b, " usedbcqueuelen %d", *v.UsedBCQueueLen)
	}
	if v.BCLim != nil {
		fmt.Fprintf(b, " bclim %d", *v.BCLim)
	}
	if v.MACAddrCount != nil {
		fmt.Fprintf(b, " remotes (%d)", *v.MACAddrCount)
		for _, a := range v.MACAddrData {
			fmt.Fprintf(b, " %s", a)
		}
	}
}

// writeText writes an ipvlan's details after its kind (two spaces before
// the mode, as ip prints them).
func (v *IPVlanData) writeText(b *strings.Builder) {
	if v.Mode != "" {
		fmt.Fprintf(b, "  mode %s", v.Mode)
	}
	switch {
	case v.Private:
		b.WriteString(" private")
	case v.VEPA:
		b.WriteString(" vepa")
	case v.Bridge:
		b.WriteString(" bridge")
	}
}

// writeDeviceAttrs writes what follows the kind's details: the IPv6
// address generation mode, the queue counts and the offload limits.
func (d *Description) writeDeviceAttrs(b *strings.Builder) {
	if d.AddrGenMode != "" {
		fmt.Fprintf(b, " addrgenmode %s", d.AddrGenMode)
	}
	if d.NumTxQueues != nil {
		fmt.Fprintf(b, " numtxqueues %d", *d.NumTxQueues)
	}
	if d.NumRxQueues != nil {
		fmt.Fprintf(b, " numrxqueues %d", *d.NumRxQueues)
	}
	for _, v := range []struct {
		key string
		val *uint32
	}{{"gso_max_size", d.GSOMaxSize}, {"gso_max_segs", d.GSOMaxSegs}, {"tso_max_size", d.TSOMaxSize}, {"tso_max_segs", d.TSOMaxSegs}, {"gro_max_size", d.GROMaxSize}} {
		if v.val != nil {
			fmt.Fprintf(b, " %s %d", v.key, *v.val)
		}
	}
}

// addrGenModeName is iproute2's name for an IPv6 address generation mode
// (IN6_ADDR_GEN_MODE_*); "" for none reported or one it has no name for.
func addrGenModeName(m *uint8) string {
	if m == nil {
		return ""
	}
	switch *m {
	case 0:
		return "eui64"
	case 1:
		return "none"
	case 2:
		return "stable_secret"
	case 3:
		return "random"
	}
	return ""
}
