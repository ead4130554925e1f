package verify

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestDoctorReportJSON(t *testing.T) {
	rep := &DoctorReport{Parents: []string{"eth0"}}
	rep.add(Finding{ID: FindHostIsolation, Severity: SeverityWarning, Subject: "eth0", What: "w", Why: "y", Fix: []string{"a && b"}})
	rep.add(Finding{ID: FindDuplicateMAC, Severity: SeverityError, Subject: "02:00:00:00:00:01", What: "w2", Why: "y2"})
	rep.sort()
	var b bytes.Buffer
	if err := rep.WriteJSON(&b, false); err != nil {
		t.Fatal(err)
	}
	// The schema scripts rely on: these keys, arrays never null, errors
	// first, commands unescaped.
	want := `{"parents":["eth0"],"findings":[` +
		`{"id":"duplicate-mac","severity":"error","subject":"02:00:00:00:00:01","what":"w2","why":"y2","fix":[]},` +
		`{"id":"host-isolation","severity":"warning","subject":"eth0","what":"w","why":"y","fix":["a && b"]}],"skipped":[]}` + "\n"
	if b.String() != want {
		t.Errorf("JSON\n got %s\nwant %s", b.String(), want)
	}

	b.Reset()
	if err := (&DoctorReport{}).WriteJSON(&b, true); err != nil {
		t.Fatal(err)
	}
	var empty map[string]any
	if err := json.Unmarshal(b.Bytes(), &empty); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"parents", "findings", "skipped"} {
		if v, ok := empty[k].([]any); !ok || len(v) != 0 {
			t.Errorf("empty report: %s is %#v, want []", k, empty[k])
		}
	}
}

func TestDoctorReportTable(t *testing.T) {
	rep := &DoctorReport{Parents: []string{"ns1/h0"}}
	rep.add(Finding{ID: FindVEPANoReflect, Severity: SeverityError, Subject: "ns1/h0", What: "vepa children", Why: "because", Fix: []string{"fix one", "fix two"}})
	rep.skip("wireless parent", "ns1/h0", "sysfs shows %s", "another namespace")
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"#  SEVERITY  ID                  SUBJECT  WHAT\n1  error     vepa-no-reflection  ns1/h0   vepa children\n",
		"1. vepa-no-reflection (ns1/h0)\n   why: because\n   fix: fix one\n        fix two\n",
		"doctor: 1 finding on ns1/h0\n",
		"not checked: wireless parent on ns1/h0: sysfs shows another namespace\n",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
	b.Reset()
	if err := (&DoctorReport{Parents: []string{"h0"}}).WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != "doctor: nothing found on h0\n" {
		t.Errorf("clean table %q", b.String())
	}
}

func TestOverlaps(t *testing.T) {
	p := netip.MustParsePrefix
	u := func(who, ns, seg, prefix, network string) addrUse {
		return addrUse{Who: who, NetNS: ns, Segment: seg, Prefix: p(prefix).Masked(), Network: network}
	}
	tests := []struct {
		name string
		uses []addrUse
		want [][2]string // Who pairs
	}{
		{"one plan", []addrUse{u("a", "n1", "", "10.0.0.0/24", ""), u("b", "n2", "", "10.0.0.0/24", "")}, nil},
		{"nested plans", []addrUse{u("a", "n1", "", "10.0.0.0/24", ""), u("b", "n2", "", "10.0.0.0/16", "")}, [][2]string{{"a", "b"}}},
		{"other VLAN", []addrUse{u("a", "n1", "", "10.0.0.0/24", ""), u("b", "n2", "10", "10.0.0.0/16", "")}, nil},
		{"one namespace", []addrUse{u("a", "n1", "", "10.0.0.0/24", ""), u("b", "n1", "", "10.0.0.0/16", "")}, nil},
		{"disjoint", []addrUse{u("a", "n1", "", "10.0.0.0/24", ""), u("b", "n2", "", "10.0.1.0/24", "")}, nil},
		{"host routes", []addrUse{u("a", "n1", "", "10.0.0.1/32", ""), u("b", "n2", "", "10.0.0.0/24", "")}, nil},
		{"two networks, one subnet", []addrUse{u("network x", "network:x", "", "10.0.0.0/24", "x"), u("network y", "network:y", "", "10.0.0.0/24", "y")}, [][2]string{{"network x", "network y"}}},
		{"a network's own container", []addrUse{u("network x", "network:x", "", "10.0.0.0/24", "x"), u("c", "n1", "", "10.0.0.0/24", "x")}, nil},
		{"same pair of subnets once", []addrUse{u("a", "n1", "", "10.0.0.0/24", ""), u("b", "n2", "", "10.0.0.0/16", ""), u("c", "n3", "", "10.0.0.0/24", "")}, [][2]string{{"a", "b"}}},
	}
	for _, tc := range tests {
		var got [][2]string
		for _, pr := range overlaps(tc.uses) {
			got = append(got, [2]string{pr[0].Who, pr[1].Who})
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestOverlapFix(t *testing.T) {
	p := netip.MustParsePrefix
	a := addrUse{Who: "n1/c1", NetNS: "n1", Prefix: p("10.0.0.0/24"), Iface: "c1", Addr: p("10.0.0.5/24")}
	b := addrUse{Who: "n2/c2", NetNS: "n2", Prefix: p("10.0.0.0/16"), Iface: "c2", Addr: p("10.0.1.5/16")}
	want := []string{"ip -n n1 addr del 10.0.0.5/24 dev c1 && ip -n n1 addr add 10.0.0.5/16 dev c1"}
	for _, got := range [][]string{overlapFix(a, b, "h0", ""), overlapFix(b, a, "h0", "")} {
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	n := addrUse{Who: "network x", NetNS: "network:x", Prefix: p("10.0.0.0/25"), Network: "x"}
	if got := overlapFix(b, n, "h0", "hostns"); len(got) != 1 || !strings.Contains(got[0], "vmlink -n hostns net rm x") {
		t.Errorf("network fix %q", got)
	}
}

func TestParseProcARP(t *testing.T) {
	// /proc/net/arp as the kernel prints it (arp_seq_show).
	in := `IP address       HW type     Flags       HW address            Mask     Device
10.77.0.99       0x1         0x2         0a:e9:58:2b:ea:6f     *        c1
10.77.0.98       0x1         0x0         00:00:00:00:00:00     *        c1
10.77.0.97       0x1         0x6         02:00:00:00:00:97     *        c1
10.77.0.96       0x1         0x2         02:00:00:00:00:96     *        eth0
`
	got := parseProcARP(in, "c1")
	if len(got) != 2 || got[0].addr.String() != "10.77.0.99" || got[0].mac.String() != "0a:e9:58:2b:ea:6f" || got[1].addr.String() != "10.77.0.97" {
		t.Errorf("got %+v", got)
	}
}

func TestTool(t *testing.T) {
	if got := tool("vmlink", ""); got != "vmlink" {
		t.Errorf("%q", got)
	}
	if got := tool("ip", "ns1"); got != "ip -n ns1" {
		t.Errorf("%q", got)
	}
}

func TestShimFix(t *testing.T) {
	p := netip.MustParsePrefix
	kids := []Endpoint{{NetNS: "c1", Interface: "eth0", Addrs: []netip.Prefix{p("10.0.10.5/24")}}}
	d := &doctor{}
	want := []string{
		"vmlink -n host link add vmshim0 link eth0 type macvlan mode bridge",
		"vmlink -n host link set vmshim0 up",
		"ip -n host addr add 10.0.10.2/32 dev vmshim0",
		"ip -n host route add 10.0.10.5/32 dev vmshim0",
	}
	if got := d.shimFix("host", "eth0", []netip.Prefix{p("10.0.10.2/24")}, kids); !reflect.DeepEqual(got, want) {
		t.Errorf("shim commands\n got %q\nwant %q", got, want)
	}
	// The children's network: its own --host-shim, recreated with the same
	// definition.
	d.o.Networks = []DoctorNetwork{{Name: "macvlan10", Host: "host", Parent: "eth0", Driver: "macvlan", Mode: "bridge",
		Subnets: []netip.Prefix{p("10.0.10.0/24")}, Gateways: []netip.Addr{netip.MustParseAddr("10.0.10.1")}, IPRanges: []netip.Prefix{p("10.0.10.128/25")},
		Endpoints: []DoctorEndpoint{{NetNS: "c1", Interface: "eth0"}}}}
	got := d.shimFix("host", "eth0", []netip.Prefix{p("10.0.10.2/24")}, kids)
	if len(got) != 3 || got[1] != "vmlink -n host net create -d macvlan --subnet 10.0.10.0/24 --gateway 10.0.10.1 --ip-range 10.0.10.128/25 -o parent=eth0 -o macvlan_mode=bridge --host-shim macvlan10" ||
		!strings.HasPrefix(got[0], "vmlink -n host net rm macvlan10") || !strings.HasPrefix(got[2], "vmlink -n host net connect macvlan10") {
		t.Errorf("network fix %q", got)
	}
}
