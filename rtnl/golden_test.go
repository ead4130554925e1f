package rtnl

// Golden tests (issue 2, item 2): every request in testdata/golden was sent
// by Debian's iproute2 (`ip link …`) and captured with strace by
// testdata/capture.sh. For each file the table below builds the same
// request with our encoder, and the two must match attribute for
// attribute. Only attribute order, NLA_F_NESTED and the trailing NUL of
// IFLA_INFO_KIND are normalised. Golden bytes never come from our encoder.

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// goldenFile is one capture: the command that made it and the message.
type goldenFile struct {
	name    string
	command string // the `ip …` command line
	result  string // what the kernel answered
	typ     netlink.HeaderType
	flags   netlink.HeaderFlags
	body    []byte
}

// readCapture reads a file in capture.sh's format (golden/ or dumps/).
func readCapture(t testing.TB, path string) goldenFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := goldenFile{name: strings.TrimSuffix(filepath.Base(path), ".txt")}
	var haveType, haveFlags, haveBody bool
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		key, val, _ := strings.Cut(line, " ")
		switch {
		case strings.HasPrefix(line, "# result: "):
			g.result = strings.TrimPrefix(line, "# result: ")
		case strings.HasPrefix(line, "# ") && g.command == "":
			g.command = strings.TrimPrefix(line, "# ")
		case key == "type":
			n, err := strconv.ParseUint(val, 0, 16)
			if err != nil {
				t.Fatalf("%s: type %q: %v", path, val, err)
			}
			g.typ, haveType = netlink.HeaderType(n), true
		case key == "flags":
			n, err := strconv.ParseUint(val, 0, 16)
			if err != nil {
				t.Fatalf("%s: flags %q: %v", path, val, err)
			}
			g.flags, haveFlags = netlink.HeaderFlags(n), true
		case key == "body":
			b, err := hex.DecodeString(val)
			if err != nil {
				t.Fatalf("%s: body: %v", path, err)
			}
			g.body, haveBody = b, true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !haveType || !haveFlags || !haveBody || g.command == "" {
		t.Fatalf("%s: not a capture (need a command line, type, flags and body)", path)
	}
	return g
}

// goldenReq is how we send one captured request: the message type, the
// header flags besides Request|Acknowledge (which Conn always adds), and
// the body our encoder marshals.
type goldenReq struct {
	typ   netlink.HeaderType
	flags netlink.HeaderFlags
	msg   *LinkMessage
}

// Interface indexes and the namespace fd that iproute2 used in the
// capture (capture.sh's namespace: lo 1, p1 2, p0 3, p3 4, p2 5, p5 6,
// p4 7, then the links in the order the script made them). A namespace
// named on the command line is opened by ip and sent as IFLA_NET_NS_FD;
// its first free descriptor was 4.
const (
	gP0      = 3
	gP2      = 5
	gP4      = 7
	gMvpriv  = 9
	gMvvepa  = 10
	gMvbr    = 11
	gMvnodst = 16
	gSrc0    = 20
	gMv2     = 21
	gNSFD    = 4
)

func goldenTable() map[string]goldenReq {
	u32 := func(v uint32) *uint32 { return &v }
	u16 := func(v uint16) *uint16 { return &v }
	i32 := func(v int32) *int32 { return &v }
	bl := func(v bool) *bool { return &v }
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			panic(err)
		}
		return m
	}
	add := func(m *LinkMessage) goldenReq {
		return goldenReq{typ: unix.RTM_NEWLINK, flags: netlink.Create | netlink.Excl, msg: m}
	}
	set := func(m *LinkMessage) goldenReq { return goldenReq{typ: unix.RTM_NEWLINK, msg: m} }
	del := func(m *LinkMessage) goldenReq { return goldenReq{typ: unix.RTM_DELLINK, msg: m} }
	on := func(name string, parent uint32, info *LinkInfo) *LinkMessage {
		return &LinkMessage{Attrs: LinkAttrs{Name: name, Link: u32(parent), Info: info}}
	}

	// vlan
	vlan := func(d *VLAN) *LinkInfo { return &LinkInfo{Kind: "vlan", Data: d} }
	proto := func(p VLANProtocol) *VLANProtocol { return &p }
	flags := func(f, m uint32) *VLANFlags { return &VLANFlags{Flags: f, Mask: m} }
	const allVLANFlags = VLANFlagReorderHdr | VLANFlagGVRP | VLANFlagMVRP | VLANFlagLooseBinding | VLANFlagBridgeBinding

	// macvlan / macvtap
	mode := func(m MacvlanMode) *MacvlanMode { return &m }
	mflags := func(f MacvlanFlags) *MacvlanFlags { return &f }
	maddr := func(m MacaddrMode) *MacaddrMode { return &m }
	macvlan := func(d *Macvlan) *LinkInfo { return &LinkInfo{Kind: "macvlan", Data: d} }
	macvtap := func(d *Macvlan) *LinkInfo { return &LinkInfo{Kind: "macvtap", Data: &Macvtap{Macvlan: *d}} }

	// ipvlan
	ipv := func(m *IPVlanMode, f IPVlanFlags) *LinkInfo {
		return &LinkInfo{Kind: "ipvlan", Data: &IPVlan{Mode: m, Flags: &f}}
	}
	ipmode := func(m IPVlanMode) *IPVlanMode { return &m }

	m1, m2, m3 := mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02"), mac("02:00:00:00:00:03")
	up := func(m *LinkMessage) *LinkMessage { m.Flags, m.Change = unix.IFF_UP, unix.IFF_UP; return m }

	return map[string]goldenReq{
		// --- vlan ---
		"vlan-id":     add(on("v10", gP0, vlan(&VLAN{ID: u16(10)}))),
		"vlan-8021q":  add(on("v20", gP0, vlan(&VLAN{ID: u16(20), Protocol: proto(VLANProtocol8021Q)}))),
		"vlan-8021ad": add(on("q100", gP0, vlan(&VLAN{ID: u16(100), Protocol: proto(VLANProtocol8021AD)}))),
		"vlan-flags-on": add(on("v30", gP0, vlan(&VLAN{ID: u16(30),
			Flags: flags(VLANFlagGVRP|VLANFlagMVRP|VLANFlagLooseBinding|VLANFlagBridgeBinding, allVLANFlags)}))),
		"vlan-flags-off": add(on("v31", gP0, vlan(&VLAN{ID: u16(31), Flags: flags(VLANFlagReorderHdr, allVLANFlags)}))),
		"vlan-qos": add(on("v40", gP0, vlan(&VLAN{ID: u16(40),
			IngressQoS: []VLANQoSMapping{{1, 2}, {3, 4}}, EgressQoS: []VLANQoSMapping{{5, 6}, {7, 7}}}))),
		"vlan-issue-example": add(on("q101", gP0, vlan(&VLAN{ID: u16(101), Protocol: proto(VLANProtocol8021AD),
			Flags:      flags(VLANFlagLooseBinding, VLANFlagReorderHdr|VLANFlagLooseBinding),
			IngressQoS: []VLANQoSMapping{{1, 2}}, EgressQoS: []VLANQoSMapping{{3, 4}}}))),
		"vlan-set-egress": set(&LinkMessage{Index: gP0, Attrs: LinkAttrs{Info: vlan(&VLAN{
			Flags: flags(VLANFlagGVRP, VLANFlagGVRP), EgressQoS: []VLANQoSMapping{{2, 5}}})}}),
		"vlan-set-flags": set(&LinkMessage{Index: gP0, Attrs: LinkAttrs{Info: vlan(&VLAN{
			Flags:      flags(VLANFlagMVRP|VLANFlagLooseBinding, VLANFlagReorderHdr|VLANFlagMVRP|VLANFlagLooseBinding|VLANFlagBridgeBinding),
			IngressQoS: []VLANQoSMapping{{1, 2}, {3, 4}}})}}),
		"vlan-set-qos": set(&LinkMessage{Index: gP0, Attrs: LinkAttrs{Info: vlan(&VLAN{
			IngressQoS: []VLANQoSMapping{{0, 1}, {7, 7}}, EgressQoS: []VLANQoSMapping{{1, 0}, {2, 5}, {6, 7}}})}}),
		"vlan-protocol-number": add(on("q102", gP0, vlan(&VLAN{ID: u16(0x66), Protocol: proto(VLANProtocol8021AD)}))),
		"vlan-id-max":          add(on("v4094", gP0, vlan(&VLAN{ID: u16(4094)}))),
		"vlan-id-zero":         add(on("v0", gP0, vlan(&VLAN{ID: u16(0)}))),
		"vlan-common": add(up(&LinkMessage{Attrs: LinkAttrs{Name: "v50", Link: u32(gP0), MTU: u32(1400),
			Address: mac("02:00:00:00:00:50"), TxQLen: u32(77), Group: u32(3), Info: vlan(&VLAN{ID: u16(50)})}})),
		"vlan-netns": add(&LinkMessage{Attrs: LinkAttrs{Name: "v51", Link: u32(gP0), NetNSFD: u32(gNSFD),
			Info: vlan(&VLAN{ID: u16(51)})}}),

		// --- macvlan ---
		"macvlan-nomode":             add(on("mvdef", gP0, &LinkInfo{Kind: "macvlan"})),
		"macvlan-private":            add(on("mvpriv", gP0, macvlan(&Macvlan{Mode: mode(MacvlanModePrivate)}))),
		"macvlan-vepa":               add(on("mvvepa", gP0, macvlan(&Macvlan{Mode: mode(MacvlanModeVEPA)}))),
		"macvlan-bridge":             add(on("mvbr", gP0, macvlan(&Macvlan{Mode: mode(MacvlanModeBridge)}))),
		"macvlan-passthru":           add(on("mvpt", gP2, macvlan(&Macvlan{Mode: mode(MacvlanModePassthru)}))),
		"macvlan-passthru-nopromisc": add(on("mvpt", gP2, macvlan(&Macvlan{Mode: mode(MacvlanModePassthru), Flags: mflags(MacvlanFlagNoPromisc)}))),
		"macvlan-passthru-flag":      add(on("mvpt", gP2, macvlan(&Macvlan{Mode: mode(MacvlanModePassthru), Flags: mflags(MacvlanFlagNoPromisc)}))),
		"macvlan-source":             add(on("mvsrc", gP0, macvlan(&Macvlan{Mode: mode(MacvlanModeSource)}))),
		"macvlan-source-nodst":       add(on("mvnodst", gP0, macvlan(&Macvlan{Mode: mode(MacvlanModeSource), Flags: mflags(MacvlanFlagNoDst)}))),
		"macvlan-source-nodst-add": add(on("src1", gP0, macvlan(&Macvlan{Mode: mode(MacvlanModeSource), Flags: mflags(MacvlanFlagNoDst),
			MacaddrMode: maddr(MacaddrAdd), Macaddr: m3}))),
		"macvlan-source-set": add(on("src0", gP0, macvlan(&Macvlan{Mode: mode(MacvlanModeSource),
			MacaddrMode: maddr(MacaddrSet), MacaddrData: []net.HardwareAddr{m1, m2}}))),
		"macvlan-flag-null": add(on("mvnull", gP0, macvlan(&Macvlan{Mode: mode(MacvlanModeBridge), Flags: mflags(0)}))),
		"macvlan-common": add(up(&LinkMessage{Attrs: LinkAttrs{Name: "mvc", Link: u32(gP0), MTU: u32(1400),
			Address: mac("02:00:00:00:00:10"), TxQLen: u32(77), Group: u32(5), Info: macvlan(&Macvlan{Mode: mode(MacvlanModeVEPA)})}})),
		"macvlan-macaddr-add": set(&LinkMessage{Index: gSrc0, Attrs: LinkAttrs{Info: macvlan(&Macvlan{MacaddrMode: maddr(MacaddrAdd), Macaddr: m3})}}),
		"macvlan-macaddr-del": set(&LinkMessage{Index: gSrc0, Attrs: LinkAttrs{Info: macvlan(&Macvlan{MacaddrMode: maddr(MacaddrDel), Macaddr: m1})}}),
		"macvlan-macaddr-set": set(&LinkMessage{Index: gSrc0, Attrs: LinkAttrs{Info: macvlan(&Macvlan{MacaddrMode: maddr(MacaddrSet),
			MacaddrData: []net.HardwareAddr{m1, m3}})}}),
		"macvlan-macaddr-flush":  set(&LinkMessage{Index: gSrc0, Attrs: LinkAttrs{Info: macvlan(&Macvlan{MacaddrMode: maddr(MacaddrFlush)})}}),
		"macvlan-bcqueuelen":     add(on("mv2", gP0, macvlan(&Macvlan{Mode: mode(MacvlanModePrivate), BcQueueLen: u32(2000)}))),
		"macvlan-set-bcqueuelen": set(&LinkMessage{Index: gMv2, Attrs: LinkAttrs{Info: macvlan(&Macvlan{BcQueueLen: u32(3000)})}}),
		// bclim: captured from an iproute2 7.1 built from source (Debian 12's
		// ip 6.1 does not know the option), see capture.sh's BCLIM_IP.
		"macvlan-bclim":     add(on("mv6", gP0, macvlan(&Macvlan{Mode: mode(MacvlanModeBridge), BcQueueLen: u32(500), BcCutoff: i32(8)}))),
		"macvlan-set-bclim": set(&LinkMessage{Index: gMv2, Attrs: LinkAttrs{Info: macvlan(&Macvlan{BcCutoff: i32(-1)})}}),
		"macvlan-set-mode":  set(&LinkMessage{Index: gMvpriv, Attrs: LinkAttrs{Info: macvlan(&Macvlan{Mode: mode(MacvlanModeBridge)})}}),
		"macvlan-set-nodst": set(&LinkMessage{Index: gMvnodst, Attrs: LinkAttrs{Info: macvlan(&Macvlan{Mode: mode(MacvlanModeSource),
			Flags: mflags(MacvlanFlagNoDst)})}}),

		// --- macvtap ---
		"macvtap-vepa":     add(on("tap0", gP0, macvtap(&Macvlan{Mode: mode(MacvlanModeVEPA)}))),
		"macvtap-bridge":   add(on("tap1", gP0, macvtap(&Macvlan{Mode: mode(MacvlanModeBridge)}))),
		"macvtap-passthru": add(on("tap2", gP2, macvtap(&Macvlan{Mode: mode(MacvlanModePassthru), Flags: mflags(MacvlanFlagNoPromisc)}))),
		"macvtap-source": add(on("tap3", gP0, macvtap(&Macvlan{Mode: mode(MacvlanModeSource),
			MacaddrMode: maddr(MacaddrSet), MacaddrData: []net.HardwareAddr{m1}}))),
		"macvtap-private-bcqueuelen": add(on("tap4", gP0, macvtap(&Macvlan{Mode: mode(MacvlanModePrivate), BcQueueLen: u32(100)}))),

		// --- ipvlan: iproute2 sends IFLA_IPVLAN_FLAGS whenever it sends
		// data, and no data at all without options ---
		"ipvlan-l2":         add(on("ipv0", gP0, ipv(ipmode(IPVlanModeL2), IPVlanFlagBridge))),
		"ipvlan-l3-private": add(on("ipv1", gP0, ipv(ipmode(IPVlanModeL3), IPVlanFlagPrivate))),
		"ipvlan-l3s-vepa":   add(on("ipv2", gP0, ipv(ipmode(IPVlanModeL3S), IPVlanFlagVEPA))),
		"ipvlan-bridge":     add(on("ipv3", gP0, ipv(ipmode(IPVlanModeL2), IPVlanFlagBridge))),
		"ipvlan-noopts":     add(on("ipv4", gP0, &LinkInfo{Kind: "ipvlan"})),
		"ipvlan-l3":         add(on("ipv5", gP0, ipv(ipmode(IPVlanModeL3), IPVlanFlagBridge))),
		"ipvlan-l2-private": add(on("ipv6", gP0, ipv(ipmode(IPVlanModeL2), IPVlanFlagPrivate))),
		"ipvlan-l3s-bridge": add(on("ipv7", gP0, ipv(ipmode(IPVlanModeL3S), IPVlanFlagBridge))),
		"ipvlan-set-mode":   set(&LinkMessage{Index: gP0, Attrs: LinkAttrs{Info: ipv(ipmode(IPVlanModeL2), IPVlanFlagBridge)}}),
		"ipvlan-set-vepa":   set(&LinkMessage{Index: gP0, Attrs: LinkAttrs{Info: ipv(ipmode(IPVlanModeL3), IPVlanFlagVEPA)}}),

		// --- dummy: the kind alone ---
		"dummy": add(&LinkMessage{Attrs: LinkAttrs{Name: "d0", Info: &LinkInfo{Kind: "dummy"}}}),

		// --- link set / del ---
		"set-up":   set(&LinkMessage{Index: gMvbr, Flags: unix.IFF_UP, Change: unix.IFF_UP}),
		"set-down": set(&LinkMessage{Index: gMvbr, Change: unix.IFF_UP}),
		"set-mtu":  set(&LinkMessage{Index: gMvbr, Attrs: LinkAttrs{MTU: u32(1400)}}),
		"set-address": set(&LinkMessage{Index: gMvbr, Attrs: LinkAttrs{
			Address: mac("02:00:00:00:00:99")}}),
		"set-group": set(&LinkMessage{Index: gMvbr, Attrs: LinkAttrs{Group: u32(7)}}),
		"set-netns": set(&LinkMessage{Index: gMvpriv, Attrs: LinkAttrs{NetNSFD: u32(gNSFD)}}),
		"set-several": set(&LinkMessage{Index: gMvvepa, Flags: unix.IFF_UP, Change: unix.IFF_UP, Attrs: LinkAttrs{
			MTU: u32(1300), Address: mac("02:00:00:00:00:98")}}),
		"add-in-netns": add(&LinkMessage{Attrs: LinkAttrs{Name: "mvn", Link: u32(gP0), NetNSFD: u32(gNSFD),
			Info: macvlan(&Macvlan{Mode: mode(MacvlanModeBridge)})}}),
		"del-name":  del(&LinkMessage{Index: gMvvepa}),
		"del-group": del(&LinkMessage{Attrs: LinkAttrs{Group: u32(7)}}),

		// --- veth ---
		"veth": add(&LinkMessage{Attrs: LinkAttrs{Name: "va", Info: &LinkInfo{Kind: "veth",
			Data: &Veth{Peer: &LinkMessage{Attrs: LinkAttrs{Name: "vb"}}}}}}),
		"veth-peer-netns": add(&LinkMessage{Attrs: LinkAttrs{Name: "vc", Info: &LinkInfo{Kind: "veth",
			Data: &Veth{Peer: &LinkMessage{Attrs: LinkAttrs{Name: "vd", NetNSFD: u32(gNSFD)}}}}}}),

		// --- bridge and port ---
		"bridge": add(&LinkMessage{Attrs: LinkAttrs{Name: "br0", Info: &LinkInfo{Kind: "bridge",
			Data: &Bridge{VLANFiltering: bl(true), VLANDefaultPVID: u16(10)}}}}),
		"bridge-plain": add(&LinkMessage{Attrs: LinkAttrs{Name: "br1", Info: &LinkInfo{Kind: "bridge"}}}),
		"set-master":   set(&LinkMessage{Index: gP4, Attrs: LinkAttrs{Master: u32(31)}}),
		"bridge-slave-hairpin": set(&LinkMessage{Index: gP4, Attrs: LinkAttrs{Info: &LinkInfo{Kind: "bridge_slave",
			SlaveData: &BridgePort{Hairpin: bl(true)}}}}),
		"bridge-slave-hairpin-off": set(&LinkMessage{Index: gP4, Attrs: LinkAttrs{Info: &LinkInfo{Kind: "bridge_slave",
			SlaveData: &BridgePort{Hairpin: bl(false)}}}}),
	}
}

func goldenFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 24 {
		t.Fatalf("only %d golden captures: run testdata/capture.sh as root", len(files))
	}
	return files
}

func TestGoldenRequests(t *testing.T) {
	table := goldenTable()
	seen := map[string]bool{}
	for _, path := range goldenFiles(t) {
		g := readCapture(t, path)
		seen[g.name] = true
		t.Run(g.name, func(t *testing.T) {
			want, ok := table[g.name]
			if !ok {
				t.Fatalf("no table entry for %s (%s): add the request our encoder builds for it", path, g.command)
			}
			if g.typ != want.typ {
				t.Errorf("message type: ip sent %s, we send %s", MessageTypeString(g.typ), MessageTypeString(want.typ))
			}
			if ours := netlink.Request | netlink.Acknowledge | want.flags; g.flags != ours {
				t.Errorf("header flags: ip sent %#x, we send %#x", uint16(g.flags), uint16(ours))
			}
			b, err := want.msg.MarshalBinary()
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			ip, err := canonLink(g.body)
			if err != nil {
				t.Fatalf("golden body: %v", err)
			}
			ours, err := canonLink(b)
			if err != nil {
				t.Fatalf("our body: %v", err)
			}
			if d := lineDiff(ip, ours); d != "" {
				t.Errorf("%s\nrequest differs from iproute2's (- ip, + ours):\n%s", g.command, d)
			}
		})
	}
	for name := range table {
		if !seen[name] {
			t.Errorf("table entry %s has no golden file: run testdata/capture.sh", name)
		}
	}
}

// TestGoldenDecode decodes every captured request with our LinkMessage and
// re-encodes it: the result must be the same request. This runs each
// driver's decoder over bytes iproute2 produced.
func TestGoldenDecode(t *testing.T) {
	for _, path := range goldenFiles(t) {
		g := readCapture(t, path)
		t.Run(g.name, func(t *testing.T) {
			var m LinkMessage
			if err := m.UnmarshalBinary(g.body); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if m.Attrs.Info != nil {
				if d := m.Attrs.Info.Data; d != nil {
					if _, raw := d.(*RawData); raw {
						t.Errorf("kind %q decoded as raw data: no driver registered", m.Attrs.Info.Kind)
					}
				}
			}
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			ip, err := canonLink(g.body)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := canonLink(b)
			if err != nil {
				t.Fatal(err)
			}
			if d := lineDiff(ip, ours); d != "" {
				t.Errorf("%s\ndecode+encode changed the request (- ip, + ours):\n%s", g.command, d)
			}
		})
	}
}

// TestGoldenCanonCatchesDifferences makes sure the comparison can fail:
// a little-endian VLAN protocol, a dropped attribute and a wrong QoS
// mapping are all reported.
func TestGoldenCanonCatchesDifferences(t *testing.T) {
	g := readCapture(t, filepath.Join("testdata", "golden", "vlan-issue-example.txt"))
	ip, err := canonLink(g.body)
	if err != nil {
		t.Fatal(err)
	}
	want := goldenTable()["vlan-issue-example"].msg
	for name, mutate := range map[string]func(v *VLAN){
		"little-endian protocol": func(v *VLAN) { p := VLANProtocol(0xa888); v.Protocol = &p },
		"no flags":               func(v *VLAN) { v.Flags = nil },
		"wrong egress mapping":   func(v *VLAN) { v.EgressQoS = []VLANQoSMapping{{3, 5}} },
		"extra ingress mapping":  func(v *VLAN) { v.IngressQoS = append(v.IngressQoS, VLANQoSMapping{0, 0}) },
	} {
		v := *want.Attrs.Info.Data.(*VLAN)
		mutate(&v)
		m := *want
		m.Attrs.Info = &LinkInfo{Kind: "vlan", Data: &v}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		ours, err := canonLink(b)
		if err != nil {
			t.Fatal(err)
		}
		if lineDiff(ip, ours) == "" {
			t.Errorf("%s: not detected", name)
		}
	}
}

// canonLink renders an ifinfomsg and its attributes as sorted lines, one
// per leaf attribute, named by its path: the form two requests are
// compared in. Nests are recursed into where the kind says an attribute is
// a nest; NLA_F_NESTED and NLA_F_NET_BYTEORDER are dropped from types.
func canonLink(b []byte) ([]string, error) {
	return canonLinkAt("", b)
}

func canonLinkAt(prefix string, b []byte) ([]string, error) {
	if len(b) < sizeofIfInfomsg {
		return nil, fmt.Errorf("%sbody of %d bytes is shorter than ifinfomsg", prefix, len(b))
	}
	h := b[:sizeofIfInfomsg]
	lines := []string{fmt.Sprintf("%sifinfomsg %x", prefix, h)}
	attrs, err := netlink.UnmarshalAttributes(b[sizeofIfInfomsg:])
	if err != nil {
		return nil, fmt.Errorf("%sattributes: %w", prefix, err)
	}
	for _, a := range attrs {
		typ := a.Type & attrTypeMask
		name := iflaName(typ)
		if typ == unix.IFLA_LINKINFO {
			sub, err := canonLinkInfo(prefix+name+"/", a.Data)
			if err != nil {
				return nil, err
			}
			lines = append(lines, sub...)
			continue
		}
		lines = append(lines, fmt.Sprintf("%s%s %x", prefix, name, a.Data))
	}
	slices.Sort(lines)
	return lines, nil
}

const attrTypeMask = 0x3fff // clears NLA_F_NESTED and NLA_F_NET_BYTEORDER

func canonLinkInfo(prefix string, b []byte) ([]string, error) {
	attrs, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	var kind string
	for _, a := range attrs {
		if a.Type&attrTypeMask == unix.IFLA_INFO_KIND {
			kind = strings.TrimRight(string(a.Data), "\x00")
		}
	}
	var lines []string
	for _, a := range attrs {
		switch a.Type & attrTypeMask {
		case unix.IFLA_INFO_KIND:
			lines = append(lines, prefix+"KIND "+kind)
		case unix.IFLA_INFO_SLAVE_KIND:
			lines = append(lines, prefix+"SLAVE_KIND "+strings.TrimRight(string(a.Data), "\x00"))
		case unix.IFLA_INFO_DATA:
			sub, err := canonData(prefix+"DATA/", kind, a.Data)
			if err != nil {
				return nil, err
			}
			if len(sub) == 0 {
				sub = []string{prefix + "DATA (empty)"}
			}
			lines = append(lines, sub...)
		case unix.IFLA_INFO_SLAVE_DATA:
			sub, err := canonData(prefix+"SLAVE_DATA/", "", a.Data)
			if err != nil {
				return nil, err
			}
			lines = append(lines, sub...)
		default:
			lines = append(lines, fmt.Sprintf("%sattr%d %x", prefix, a.Type&attrTypeMask, a.Data))
		}
	}
	return lines, nil
}

// canonData renders IFLA_INFO_DATA; which attributes are nests depends on
// the kind.
func canonData(prefix, kind string, b []byte) ([]string, error) {
	attrs, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	var lines []string
	for _, a := range attrs {
		typ := a.Type & attrTypeMask
		name := fmt.Sprintf("%d", typ)
		switch {
		case kind == "veth" && typ == iflaVethInfoPeer:
			sub, err := canonLinkAt(prefix+"PEER/", a.Data)
			if err != nil {
				return nil, err
			}
			lines = append(lines, sub...)
			continue
		case kind == "vlan" && (typ == iflaVLANIngressQoS || typ == iflaVLANEgressQoS),
			(kind == "macvlan" || kind == "macvtap") && typ == iflaMacvlanMacaddrData:
			sub, err := netlink.UnmarshalAttributes(a.Data)
			if err != nil {
				return nil, fmt.Errorf("%s%s: %w", prefix, name, err)
			}
			if len(sub) == 0 {
				lines = append(lines, prefix+name+" (empty nest)")
			}
			for _, s := range sub {
				lines = append(lines, fmt.Sprintf("%s%s/%d %x", prefix, name, s.Type&attrTypeMask, s.Data))
			}
			continue
		}
		lines = append(lines, fmt.Sprintf("%s%s %x", prefix, name, a.Data))
	}
	return lines, nil
}

func iflaName(typ uint16) string {
	names := map[uint16]string{
		unix.IFLA_ADDRESS: "ADDRESS", unix.IFLA_BROADCAST: "BROADCAST", unix.IFLA_IFNAME: "IFNAME",
		unix.IFLA_MTU: "MTU", unix.IFLA_LINK: "LINK", unix.IFLA_MASTER: "MASTER", unix.IFLA_TXQLEN: "TXQLEN",
		unix.IFLA_LINKINFO: "LINKINFO", unix.IFLA_NET_NS_PID: "NET_NS_PID", unix.IFLA_IFALIAS: "IFALIAS",
		unix.IFLA_NET_NS_FD: "NET_NS_FD", unix.IFLA_GROUP: "GROUP", unix.IFLA_EXT_MASK: "EXT_MASK",
	}
	if n, ok := names[typ]; ok {
		return n
	}
	return fmt.Sprintf("IFLA(%d)", typ)
}

// lineDiff lists the lines only in a (-) and only in b (+), as multisets;
// "" when equal.
func lineDiff(a, b []string) string {
	count := map[string]int{}
	for _, l := range a {
		count[l]++
	}
	for _, l := range b {
		count[l]--
	}
	var out []string
	for _, l := range a {
		if count[l] > 0 {
			out = append(out, "- "+l)
			count[l]--
		}
	}
	for _, l := range b {
		if count[l] < 0 {
			out = append(out, "+ "+l)
			count[l]++
		}
	}
	return strings.Join(out, "\n")
}
