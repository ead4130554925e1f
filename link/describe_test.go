package link

import (
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// ipCapture reads a testdata file of `ip -d -j link show` output (after
// its # comment lines), keyed by ifname.
func ipCapture(t *testing.T, file string) map[string]map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(strings.Join(lines, "\n")), &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, l := range v {
		out[l["ifname"].(string)] = l
	}
	return out
}

func u8p(v uint8) *uint8 { return &v }

// The links of testdata/ip-d-j-macvlan.txt as the kernel reported them,
// field by field, with what rtnl decodes.
func capturedLinks(t *testing.T) map[string]*Link {
	eth := func(l *Link) *Link {
		l.Type = unix.ARPHRD_ETHER
		l.Broadcast = mustMAC(t, "ff:ff:ff:ff:ff:ff")
		l.Promiscuity = ptr(uint32(0))
		l.Allmulti = ptr(uint32(0))
		l.MinMTU, l.MaxMTU = ptr(uint32(68)), ptr(uint32(65535))
		l.LinkMode = u8p(0)
		l.NumTxQueues, l.NumRxQueues = ptr(uint32(1)), ptr(uint32(1))
		l.GSOMaxSize, l.GSOMaxSegs, l.GROMaxSize = ptr(uint32(65536)), ptr(uint32(65535)), ptr(uint32(65536))
		l.TSOMaxSize, l.TSOMaxSegs = ptr(uint32(524280)), ptr(uint32(65535))
		l.AddrGenMode = u8p(0)
		if l.TxQLen == nil {
			l.TxQLen = ptr(uint32(1000))
		}
		return l
	}
	return map[string]*Link{
		"src0": eth(&Link{Index: 4, Name: "src0", Kind: "macvlan", Flags: unix.IFF_BROADCAST | unix.IFF_MULTICAST,
			ParentIndex: 3, Parent: "p0", MTU: 1500, Qdisc: "noop", OperState: u8p(2), Address: mustMAC(t, "f2:d5:59:a6:c6:84"),
			Macvlan: &MacvlanInfo{Mode: MacvlanModeSource, Flags: MacvlanFlagNoDst, MACAddrCount: ptr(uint32(2)),
				MACAddrs:   []net.HardwareAddr{mustMAC(t, "02:00:00:00:00:02"), mustMAC(t, "02:00:00:00:00:01")},
				BCQueueLen: ptr(uint32(1000)), BCQueueLenUsed: ptr(uint32(2000))}}),
		"pt0": eth(&Link{Index: 5, Name: "pt0", Kind: "macvlan", Flags: unix.IFF_BROADCAST | unix.IFF_MULTICAST,
			ParentIndex: 2, Parent: "p1", ParentDown: true, MTU: 1500, Qdisc: "noop", OperState: u8p(2), Address: mustMAC(t, "b2:f4:d5:a0:46:7b"),
			Macvlan: &MacvlanInfo{Mode: MacvlanModePassthru, Flags: MacvlanFlagNoPromisc,
				BCQueueLen: ptr(uint32(1000)), BCQueueLenUsed: ptr(uint32(1000))}}),
		"tap0": eth(&Link{Index: 6, Name: "tap0", Kind: "macvtap", Flags: unix.IFF_BROADCAST | unix.IFF_MULTICAST | unix.IFF_UP,
			ParentIndex: 3, Parent: "p0", MTU: 1400, Qdisc: "pfifo_fast", OperState: u8p(3), Address: mustMAC(t, "16:77:5c:4e:f1:68"),
			Group: 5, Alias: "hello", TxQLen: ptr(uint32(77)),
			Macvlan: &MacvlanInfo{Mode: MacvlanModeBridge, BCQueueLen: ptr(uint32(2000)), BCQueueLenUsed: ptr(uint32(2000))}}),
	}
}

func TestDescribeMatchesIPCapture(t *testing.T) {
	ip := ipCapture(t, "testdata/ip-d-j-macvlan.txt")
	for name, l := range capturedLinks(t) {
		if d := compareWithIP(jsonOf(t, l.Describe()), ip[name]); len(d) > 0 {
			t.Errorf("%s:\n  %s", name, strings.Join(d, "\n  "))
		}
	}
}

// TestDescribeKeyOrder checks the JSON keys come in iproute2's order, so
// `vmlink -j` output reads like ip's.
func TestDescribeKeyOrder(t *testing.T) {
	l := capturedLinks(t)["tap0"]
	b, err := json.Marshal(l.Describe())
	if err != nil {
		t.Fatal(err)
	}
	order := []string{`"ifindex"`, `"link"`, `"ifname"`, `"flags"`, `"mtu"`, `"operstate"`, `"linkmode"`, `"group"`, `"txqlen"`,
		`"link_type"`, `"address"`, `"broadcast"`, `"promiscuity"`, `"allmulti"`, `"min_mtu"`, `"max_mtu"`, `"linkinfo"`,
		`"info_kind"`, `"info_data"`, `"mode"`, `"bcqueuelen"`, `"usedbcqueuelen"`, `"num_tx_queues"`, `"num_rx_queues"`, `"ifalias"`}
	last := -1
	for _, k := range order {
		i := strings.Index(string(b), k)
		if i <= last {
			t.Fatalf("key %s out of iproute2's order in %s", k, b)
		}
		last = i
	}
}

// TestDescribeVLANAndIPVlan checks the info_data shapes iproute2 6.1 prints
// for vlan (ip/iplink_vlan.c vlan_print_opt: protocol, id, flags as an
// array of names, ingress_qos/egress_qos as arrays of {from,to}) and for
// ipvlan (ip/iplink_ipvlan.c: mode, then one of private/vepa/bridge as
// true). The live comparison with ip runs in the VM tier.
func TestDescribeVLANAndIPVlan(t *testing.T) {
	vl := &Link{Index: 7, Name: "q100", Kind: "vlan", Type: unix.ARPHRD_ETHER, ParentIndex: 3, Parent: "p0",
		VLAN: &VLANInfo{ID: 100, Protocol: VLAN8021AD, Flags: VLANFlagLooseBinding | VLANFlagGVRP, HasFlags: true,
			IngressQoS: []QoSMapping{{From: 1, To: 2}}, EgressQoS: []QoSMapping{{From: 3, To: 4}}}}
	got, _ := json.Marshal(vl.Describe().LinkInfo)
	want := `{"info_kind":"vlan","info_data":{"protocol":"802.1ad","id":100,"flags":["GVRP","LOOSE_BINDING"],"ingress_qos":[{"from":1,"to":2}],"egress_qos":[{"from":3,"to":4}]}}`
	if string(got) != want {
		t.Errorf("vlan linkinfo\n got %s\nwant %s", got, want)
	}
	vl.VLAN = &VLANInfo{ID: 10, Protocol: VLAN8021Q, HasFlags: true}
	got, _ = json.Marshal(vl.Describe().LinkInfo)
	if want := `{"info_kind":"vlan","info_data":{"protocol":"802.1Q","id":10,"flags":[]}}`; string(got) != want {
		t.Errorf("vlan without flags\n got %s\nwant %s", got, want)
	}
	if txt := vl.Describe().Text(); !strings.Contains(txt, "\n    vlan protocol 802.1Q id 10 <>") {
		t.Errorf("vlan text:\n%s", txt)
	}
	flag := IPVlanFlagPrivate
	ipl := &Link{Index: 8, Name: "ipv0", Kind: "ipvlan", Type: unix.ARPHRD_ETHER, IPVlan: &IPVlanInfo{Mode: IPVlanModeL3, Flag: &flag}}
	got, _ = json.Marshal(ipl.Describe().LinkInfo)
	if want := `{"info_kind":"ipvlan","info_data":{"mode":"l3","private":true}}`; string(got) != want {
		t.Errorf("ipvlan linkinfo\n got %s\nwant %s", got, want)
	}
	bridge := IPVlanFlagBridge
	ipl.IPVlan = &IPVlanInfo{Mode: IPVlanModeL2, Flag: &bridge}
	got, _ = json.Marshal(ipl.Describe().LinkInfo)
	if want := `{"info_kind":"ipvlan","info_data":{"mode":"l2","bridge":true}}`; string(got) != want {
		t.Errorf("ipvlan bridge\n got %s\nwant %s", got, want)
	}
}

func TestDescribeParentElsewhere(t *testing.T) {
	nsid := int32(0)
	l := &Link{Index: 2, Name: "mv3", Kind: "macvlan", Type: unix.ARPHRD_ETHER, ParentIndex: 3, ParentNetNSID: &nsid,
		Macvlan: &MacvlanInfo{Mode: MacvlanModeBridge}}
	b, _ := json.Marshal(l.Describe())
	s := string(b)
	if strings.Contains(s, `"link":`) || !strings.Contains(s, `"link_index":3`) || !strings.Contains(s, `"link_netnsid":0`) {
		t.Errorf("parent in another namespace: %s", s)
	}
	if txt := l.Describe().Text(); !strings.HasPrefix(txt, "2: mv3@if3: ") || !strings.Contains(txt, "link-netnsid 0") {
		t.Errorf("text: %s", txt)
	}
}

// TestDecodeParentWithTheSameIndex: a container's eth0 with ifindex 2 on
// a parent that is ifindex 2 in the host: the kernel sends
// IFLA_LINK_NETNSID but no IFLA_LINK. The parent's index is 2, and ip
// prints no link_index.
func TestDecodeParentWithTheSameIndex(t *testing.T) {
	nsid := int32(0)
	m := &rtnl.LinkMessage{Index: 2, Type: unix.ARPHRD_ETHER, Attrs: rtnl.LinkAttrs{Name: "eth0", LinkNetNSID: &nsid}}
	l, err := decodeLink(m)
	if err != nil {
		t.Fatal(err)
	}
	if l.ParentIndex != 2 || l.ParentNetNSID == nil {
		t.Errorf("parent index %d, netnsid %v; want 2 in netnsid 0", l.ParentIndex, l.ParentNetNSID)
	}
	b, _ := json.Marshal(l.Describe())
	if strings.Contains(string(b), "link_index") || !strings.Contains(string(b), `"link_netnsid":0`) {
		t.Errorf("described as %s", b)
	}
}

func TestFlagNames(t *testing.T) {
	tests := []struct {
		flags      uint32
		parentDown bool
		want       string
	}{
		{unix.IFF_BROADCAST | unix.IFF_MULTICAST | unix.IFF_UP | unix.IFF_LOWER_UP | unix.IFF_RUNNING, false, "BROADCAST,MULTICAST,UP,LOWER_UP"},
		{unix.IFF_BROADCAST | unix.IFF_MULTICAST | unix.IFF_UP, true, "NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN"},
		{unix.IFF_LOOPBACK, false, "LOOPBACK"},
		{0, false, ""},
		{unix.IFF_NOARP | 0x80000000, false, "NOARP,80000000"},
	}
	for _, tt := range tests {
		if got := strings.Join(flagNames(tt.flags, tt.parentDown), ","); got != tt.want {
			t.Errorf("flagNames(%#x, %v) = %q, want %q", tt.flags, tt.parentDown, got, tt.want)
		}
	}
	if got := strings.Join(vlanFlagNamesOf(VLANFlagReorderHdr|VLANFlagMVRP|VLANFlagBridgeBinding|0x100), ","); got != "REORDER_HDR,MVRP,BRIDGE_BINDING,100" {
		t.Errorf("vlanFlagNamesOf = %q", got)
	}
}

// TestDescribeText compares the text with `ip -d link show` of the same
// capture, for the parts vmlink prints.
func TestDescribeText(t *testing.T) {
	l := capturedLinks(t)
	txt := l["src0"].Describe().Text()
	for _, want := range []string{
		"4: src0@p0: <BROADCAST,MULTICAST> mtu 1500",
		" state DOWN mode DEFAULT group default qlen 1000\n",
		"    link/ether f2:d5:59:a6:c6:84 brd ff:ff:ff:ff:ff:ff promiscuity 0",
		"minmtu 68 maxmtu 65535",
		"\n    macvlan mode source nodst bcqueuelen 1000 usedbcqueuelen 2000 remotes (2) 02:00:00:00:00:02 02:00:00:00:00:01",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("text lacks %q:\n%s", want, txt)
		}
	}
	txt = l["tap0"].Describe().Text()
	for _, want := range []string{"6: tap0@p0: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1400", "group 5 qlen 77", "macvtap mode bridge", "\n    alias hello\n"} {
		if !strings.Contains(txt, want) {
			t.Errorf("text lacks %q:\n%s", want, txt)
		}
	}
	if txt := l["pt0"].Describe().Text(); !strings.Contains(txt, "pt0@p1: <BROADCAST,MULTICAST,M-DOWN>") || !strings.Contains(txt, "mode passthru nopromisc") {
		t.Errorf("pt0 text:\n%s", txt)
	}
}

// TestAddrGenModeFromKernelDumps decodes the kernel's own RTM_NEWLINK
// replies (rtnl/testdata/dumps, with the ip -d -j output captured beside
// each) and checks inet6_addr_gen_mode, which lives nested in
// IFLA_AF_SPEC, against what ip printed.
func TestAddrGenModeFromKernelDumps(t *testing.T) {
	if k := os.Getenv("VMLINK_VM_KERNEL"); k != "" {
		t.Skipf("inside the VM runner's guest (kernel %s), which copies only this package's testdata; the host tiers decode rtnl's dumps", k)
	}
	files, err := filepath.Glob("../rtnl/testdata/dumps/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kernel dumps: %v", err)
	}
	seen := 0
	for _, path := range files {
		var body []byte
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if hexBody, ok := strings.CutPrefix(line, "body "); ok {
				if body, err = hex.DecodeString(hexBody); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
			}
		}
		js, err := os.ReadFile(strings.TrimSuffix(path, ".txt") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var ref []map[string]any
		if err := json.Unmarshal(js, &ref); err != nil || len(ref) != 1 {
			t.Fatalf("%s: %v", path, err)
		}
		var m rtnl.LinkMessage
		if err := m.UnmarshalBinary(body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		l, err := decodeLink(&m)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		want, _ := ref[0]["inet6_addr_gen_mode"].(string)
		if got := addrGenModeName(l.AddrGenMode); got != want {
			t.Errorf("%s: inet6_addr_gen_mode %q, ip prints %q", filepath.Base(path), got, want)
		}
		if want != "" {
			seen++
		}
	}
	if seen == 0 {
		t.Error("no dump has an inet6_addr_gen_mode: the test compared nothing")
	}
}

// FuzzDecodeLink feeds link messages to decodeLink and Describe: whatever
// rtnl accepts must decode or fail with an error, never panic. Seeded with
// the kernel's own dumps.
func FuzzDecodeLink(f *testing.F) {
	files, _ := filepath.Glob("../rtnl/testdata/dumps/*.txt")
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if hexBody, ok := strings.CutPrefix(line, "body "); ok {
				if body, err := hex.DecodeString(hexBody); err == nil {
					f.Add(body)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m rtnl.LinkMessage
		if m.UnmarshalBinary(b) != nil {
			return
		}
		if l, err := decodeLink(&m); err == nil {
			_ = l.Describe().Text()
		}
	})
}
