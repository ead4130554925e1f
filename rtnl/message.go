package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nlenc"
	"golang.org/x/sys/unix"
)

// sizeofIfInfomsg is the size of struct ifinfomsg that starts every link
// message.
const sizeofIfInfomsg = 16

// LinkMessage is an RTM_{NEW,DEL,GET,SET}LINK body: struct ifinfomsg
// followed by attributes.
//
// We decode link messages ourselves instead of using jsimonetti's
// rtnetlink.LinkMessage: its decoder swallows the error of a link-kind
// driver and, because the error stops the attribute loop, drops every
// attribute that follows it. Here a driver error is returned and every
// decode loop ends with ad.Err().
type LinkMessage struct {
	Family uint8  // AF_UNSPEC, or AF_BRIDGE for bridge port messages
	Type   uint16 // ARPHRD_*
	Index  int32  // ifindex; 0 lets the kernel choose
	Flags  uint32 // IFF_*
	Change uint32 // mask of Flags to change
	Attrs  LinkAttrs
}

// LinkAttrs are the IFLA_* attributes vmlink reads or writes. Optional
// attributes are pointers so "absent" differs from zero.
type LinkAttrs struct {
	Name          string           // IFLA_IFNAME
	Link          *uint32          // IFLA_LINK: the parent's ifindex
	LinkNetNSID   *int32           // IFLA_LINK_NETNSID: the parent lives in this peer netns
	MTU           *uint32          // IFLA_MTU
	MinMTU        *uint32          // IFLA_MIN_MTU (output only)
	MaxMTU        *uint32          // IFLA_MAX_MTU (output only)
	Address       net.HardwareAddr // IFLA_ADDRESS
	Broadcast     net.HardwareAddr // IFLA_BROADCAST
	PermAddress   net.HardwareAddr // IFLA_PERM_ADDRESS (output only)
	Qdisc         string           // IFLA_QDISC: the root qdisc's kind, "noqueue" (output only)
	Group         *uint32          // IFLA_GROUP
	Alias         *string          // IFLA_IFALIAS
	TxQLen        *uint32          // IFLA_TXQLEN
	OperState     *uint8           // IFLA_OPERSTATE
	LinkMode      *uint8           // IFLA_LINKMODE
	Master        *uint32          // IFLA_MASTER
	Promiscuity   *uint32          // IFLA_PROMISCUITY (output only)
	AllMulti      *uint32          // IFLA_ALLMULTI (output only)
	NumTxQueues   *uint32          // IFLA_NUM_TX_QUEUES
	NumRxQueues   *uint32          // IFLA_NUM_RX_QUEUES
	GSOMaxSize    *uint32          // IFLA_GSO_MAX_SIZE (output only here)
	GSOMaxSegs    *uint32          // IFLA_GSO_MAX_SEGS (output only here)
	TSOMaxSize    *uint32          // IFLA_TSO_MAX_SIZE (output only)
	TSOMaxSegs    *uint32          // IFLA_TSO_MAX_SEGS (output only)
	GROMaxSize    *uint32          // IFLA_GRO_MAX_SIZE (output only here)
	NetNSFD       *uint32          // IFLA_NET_NS_FD: create in / move to this netns
	NetNSPID      *uint32          // IFLA_NET_NS_PID
	TargetNetNSID *int32           // IFLA_TARGET_NETNSID
	ExtMask       *uint32          // IFLA_EXT_MASK (requests only)
	Info          *LinkInfo        // IFLA_LINKINFO
	// ProtInfo is IFLA_PROTINFO kept raw: for AF_BRIDGE messages it holds
	// the bridge port attributes (IFLA_BRPORT_*).
	ProtInfo []byte
	// AFSpec is IFLA_AF_SPEC kept raw (bridge VLAN membership lives here).
	AFSpec []byte
}

// LinkInfo is IFLA_LINKINFO: the kind and its driver data, and the port
// ("slave") kind and data when the link is enslaved.
type LinkInfo struct {
	Kind      string               // IFLA_INFO_KIND
	Data      rtnetlink.LinkDriver // IFLA_INFO_DATA, decoded by the kind's driver
	SlaveKind string               // IFLA_INFO_SLAVE_KIND
	SlaveData rtnetlink.LinkDriver // IFLA_INFO_SLAVE_DATA
}

var (
	driversMu    sync.RWMutex
	drivers      = map[string]rtnetlink.LinkDriver{}
	slaveDrivers = map[string]rtnetlink.LinkDriver{}
)

// Register makes d the driver for its kind, for LinkMessage and for
// jsimonetti's rtnetlink package alike. Drivers implementing
// rtnetlink.LinkSlaveDriver (a Slave method) go to the port table.
func Register(d rtnetlink.LinkDriver) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if _, ok := d.(rtnetlink.LinkSlaveDriver); ok {
		slaveDrivers[d.Kind()] = d
	} else {
		drivers[d.Kind()] = d
	}
	// Registering with jsimonetti's table too lets users of its
	// LinkService decode our kinds; a duplicate is not our problem.
	_ = rtnetlink.RegisterDriver(d)
}

func lookupDriver(kind string, slave bool) (rtnetlink.LinkDriver, bool) {
	driversMu.RLock()
	defer driversMu.RUnlock()
	t := drivers
	if slave {
		t = slaveDrivers
	}
	d, ok := t[kind]
	if !ok {
		return nil, false
	}
	return d.New(), true
}

// RawData carries IFLA_INFO_DATA of a kind vmlink has no driver for, so a
// dump of any link decodes without error and re-encodes unchanged.
type RawData struct {
	KindName string
	Attrs    []netlink.Attribute
}

// New implements rtnetlink.LinkDriver.
func (r *RawData) New() rtnetlink.LinkDriver { return &RawData{KindName: r.KindName} }

// Kind implements rtnetlink.LinkDriver.
func (r *RawData) Kind() string { return r.KindName }

// Encode implements rtnetlink.LinkDriver.
func (r *RawData) Encode(ae *netlink.AttributeEncoder) error {
	for _, a := range r.Attrs {
		ae.Bytes(a.Type, a.Data)
	}
	return nil
}

// Decode implements rtnetlink.LinkDriver.
func (r *RawData) Decode(ad *netlink.AttributeDecoder) error {
	for ad.Next() {
		r.Attrs = append(r.Attrs, netlink.Attribute{Type: ad.Type(), Data: append([]byte(nil), ad.Bytes()...)})
	}
	return ad.Err()
}

// MarshalBinary encodes the message in the order iproute2 uses for
// `ip link add`: IFLA_LINK, IFLA_IFNAME, then the rest, IFLA_LINKINFO last.
func (m *LinkMessage) MarshalBinary() ([]byte, error) {
	b := make([]byte, sizeofIfInfomsg)
	b[0] = m.Family
	binary.NativeEndian.PutUint16(b[2:4], m.Type)
	binary.NativeEndian.PutUint32(b[4:8], uint32(m.Index))
	binary.NativeEndian.PutUint32(b[8:12], m.Flags)
	binary.NativeEndian.PutUint32(b[12:16], m.Change)

	ae := netlink.NewAttributeEncoder()
	if err := m.Attrs.encode(ae); err != nil {
		return nil, err
	}
	attrs, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode link %q: %w", m.Attrs.Name, err)
	}
	return append(b, attrs...), nil
}

func (a *LinkAttrs) encode(ae *netlink.AttributeEncoder) error {
	u32 := func(typ uint16, v *uint32) {
		if v != nil {
			ae.Uint32(typ, *v)
		}
	}
	i32 := func(typ uint16, v *int32) {
		if v != nil {
			ae.Int32(typ, *v)
		}
	}
	u32(unix.IFLA_LINK, a.Link)
	if a.Name != "" {
		ae.String(unix.IFLA_IFNAME, a.Name)
	}
	i32(unix.IFLA_LINK_NETNSID, a.LinkNetNSID)
	u32(unix.IFLA_NET_NS_PID, a.NetNSPID)
	u32(unix.IFLA_NET_NS_FD, a.NetNSFD)
	i32(unix.IFLA_TARGET_NETNSID, a.TargetNetNSID)
	u32(unix.IFLA_TXQLEN, a.TxQLen)
	if len(a.Address) > 0 {
		ae.Bytes(unix.IFLA_ADDRESS, a.Address)
	}
	if len(a.Broadcast) > 0 {
		ae.Bytes(unix.IFLA_BROADCAST, a.Broadcast)
	}
	u32(unix.IFLA_MTU, a.MTU)
	u32(unix.IFLA_GROUP, a.Group)
	if a.Alias != nil {
		ae.String(unix.IFLA_IFALIAS, *a.Alias)
	}
	u32(unix.IFLA_NUM_TX_QUEUES, a.NumTxQueues)
	u32(unix.IFLA_NUM_RX_QUEUES, a.NumRxQueues)
	if a.OperState != nil {
		ae.Uint8(unix.IFLA_OPERSTATE, *a.OperState)
	}
	if a.LinkMode != nil {
		ae.Uint8(unix.IFLA_LINKMODE, *a.LinkMode)
	}
	u32(unix.IFLA_MASTER, a.Master)
	u32(unix.IFLA_EXT_MASK, a.ExtMask)
	if a.ProtInfo != nil {
		ae.Bytes(unix.IFLA_PROTINFO|unix.NLA_F_NESTED, a.ProtInfo)
	}
	if a.AFSpec != nil {
		ae.Bytes(unix.IFLA_AF_SPEC|unix.NLA_F_NESTED, a.AFSpec)
	}
	if a.Info != nil {
		ae.Nested(unix.IFLA_LINKINFO, a.Info.encode)
	}
	return nil
}

func (i *LinkInfo) encode(ae *netlink.AttributeEncoder) error {
	if i.Kind != "" {
		// iproute2 sends the kind without its trailing NUL.
		ae.Bytes(unix.IFLA_INFO_KIND, []byte(i.Kind))
	}
	if i.Data != nil {
		if i.Data.Kind() != i.Kind {
			return fmt.Errorf("link info: driver kind %q does not match kind %q", i.Data.Kind(), i.Kind)
		}
		ae.Nested(unix.IFLA_INFO_DATA, i.Data.Encode)
	}
	if i.SlaveKind != "" {
		ae.Bytes(unix.IFLA_INFO_SLAVE_KIND, []byte(i.SlaveKind))
	}
	if i.SlaveData != nil {
		// A request changing a port names the port kind as iproute2 does:
		// IFLA_INFO_KIND "bridge_slave" and no IFLA_INFO_SLAVE_KIND.
		if i.SlaveData.Kind() != i.SlaveKind && !(i.SlaveKind == "" && i.Kind == i.SlaveData.Kind()+"_slave") {
			return fmt.Errorf("link info: port driver kind %q does not match port kind %q", i.SlaveData.Kind(), i.SlaveKind)
		}
		ae.Nested(unix.IFLA_INFO_SLAVE_DATA, i.SlaveData.Encode)
	}
	return nil
}

var errShortLinkMessage = errors.New("link message shorter than struct ifinfomsg")

// UnmarshalBinary decodes a link message. Unknown attributes are ignored;
// a malformed known attribute or a driver error is returned.
func (m *LinkMessage) UnmarshalBinary(b []byte) error {
	if len(b) < sizeofIfInfomsg {
		return errShortLinkMessage
	}
	m.Family = b[0]
	m.Type = binary.NativeEndian.Uint16(b[2:4])
	m.Index = int32(binary.NativeEndian.Uint32(b[4:8]))
	m.Flags = binary.NativeEndian.Uint32(b[8:12])
	m.Change = binary.NativeEndian.Uint32(b[12:16])
	m.Attrs = LinkAttrs{}
	if len(b) == sizeofIfInfomsg {
		return nil
	}
	ad, err := netlink.NewAttributeDecoder(b[sizeofIfInfomsg:])
	if err != nil {
		return fmt.Errorf("decode link message: %w", err)
	}
	if err := m.Attrs.decode(ad); err != nil {
		return fmt.Errorf("decode link %q: %w", m.Attrs.Name, err)
	}
	return nil
}

func (a *LinkAttrs) decode(ad *netlink.AttributeDecoder) error {
	u32 := func() *uint32 { v := ad.Uint32(); return &v }
	i32 := func() *int32 { v := ad.Int32(); return &v }
	u8 := func() *uint8 { v := ad.Uint8(); return &v }
	mac := func() net.HardwareAddr { return net.HardwareAddr(append([]byte(nil), ad.Bytes()...)) }
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			a.Name = ad.String()
		case unix.IFLA_LINK:
			a.Link = u32()
		case unix.IFLA_LINK_NETNSID:
			a.LinkNetNSID = i32()
		case unix.IFLA_MTU:
			a.MTU = u32()
		case unix.IFLA_MIN_MTU:
			a.MinMTU = u32()
		case unix.IFLA_MAX_MTU:
			a.MaxMTU = u32()
		case unix.IFLA_ADDRESS:
			a.Address = mac()
		case unix.IFLA_BROADCAST:
			a.Broadcast = mac()
		case unix.IFLA_PERM_ADDRESS:
			a.PermAddress = mac()
		case unix.IFLA_QDISC:
			a.Qdisc = ad.String()
		case unix.IFLA_GROUP:
			a.Group = u32()
		case unix.IFLA_IFALIAS:
			s := ad.String()
			a.Alias = &s
		case unix.IFLA_TXQLEN:
			a.TxQLen = u32()
		case unix.IFLA_OPERSTATE:
			a.OperState = u8()
		case unix.IFLA_LINKMODE:
			a.LinkMode = u8()
		case unix.IFLA_MASTER:
			a.Master = u32()
		case unix.IFLA_PROMISCUITY:
			a.Promiscuity = u32()
		case unix.IFLA_ALLMULTI:
			a.AllMulti = u32()
		case unix.IFLA_NUM_TX_QUEUES:
			a.NumTxQueues = u32()
		case unix.IFLA_NUM_RX_QUEUES:
			a.NumRxQueues = u32()
		case unix.IFLA_GSO_MAX_SIZE:
			a.GSOMaxSize = u32()
		case unix.IFLA_GSO_MAX_SEGS:
			a.GSOMaxSegs = u32()
		case unix.IFLA_TSO_MAX_SIZE:
			a.TSOMaxSize = u32()
		case unix.IFLA_TSO_MAX_SEGS:
			a.TSOMaxSegs = u32()
		case unix.IFLA_GRO_MAX_SIZE:
			a.GROMaxSize = u32()
		case unix.IFLA_NET_NS_FD:
			a.NetNSFD = u32()
		case unix.IFLA_NET_NS_PID:
			a.NetNSPID = u32()
		case unix.IFLA_TARGET_NETNSID:
			a.TargetNetNSID = i32()
		case unix.IFLA_PROTINFO:
			a.ProtInfo = append([]byte(nil), ad.Bytes()...)
		case unix.IFLA_AF_SPEC:
			a.AFSpec = append([]byte(nil), ad.Bytes()...)
		case unix.IFLA_LINKINFO:
			a.Info = &LinkInfo{}
			ad.Nested(a.Info.decode)
		}
	}
	return ad.Err()
}

func (i *LinkInfo) decode(ad *netlink.AttributeDecoder) error {
	// IFLA_INFO_KIND precedes IFLA_INFO_DATA in every kernel reply, but
	// collect both first so the order does not matter.
	var data, slaveData []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_INFO_KIND:
			i.Kind = nlenc.String(ad.Bytes())
		case unix.IFLA_INFO_SLAVE_KIND:
			i.SlaveKind = nlenc.String(ad.Bytes())
		case unix.IFLA_INFO_DATA:
			data = ad.Bytes()
		case unix.IFLA_INFO_SLAVE_DATA:
			slaveData = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return err
	}
	var err error
	if data != nil {
		if i.Data, err = decodeDriver(i.Kind, false, data); err != nil {
			return err
		}
	}
	if slaveData != nil {
		kind := i.SlaveKind
		if kind == "" && strings.HasSuffix(i.Kind, "_slave") {
			// A request: the port kind is IFLA_INFO_KIND minus "_slave".
			kind = strings.TrimSuffix(i.Kind, "_slave")
		}
		if i.SlaveData, err = decodeDriver(kind, true, slaveData); err != nil {
			return err
		}
	}
	return nil
}

func decodeDriver(kind string, slave bool, b []byte) (rtnetlink.LinkDriver, error) {
	d, ok := lookupDriver(kind, slave)
	if !ok {
		d = &RawData{KindName: kind}
	}
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, fmt.Errorf("decode %s data: %w", kind, err)
	}
	if err := d.Decode(ad); err != nil {
		return nil, fmt.Errorf("decode %s data: %w", kind, err)
	}
	if err := ad.Err(); err != nil {
		return nil, fmt.Errorf("decode %s data: %w", kind, err)
	}
	return d, nil
}
