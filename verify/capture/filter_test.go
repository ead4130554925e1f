package capture

import (
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

func u16p(v uint16) *uint16      { return &v }
func macp(m MAC) *MAC            { return &m }
func etp(e EtherType) *EtherType { return &e }
func pick(fs []testFrame, idx ...int) []string {
	var n []string
	for _, i := range idx {
		n = append(n, fs[i].name)
	}
	return n
}

func TestParseEtherType(t *testing.T) {
	for in, want := range map[string]EtherType{"arp": 0x0806, "IPv4": 0x0800, "ip": 0x0800, "ipv6": 0x86dd, "ip6": 0x86dd, "lldp": 0x88cc, "0x88b5": 0x88b5, "2054": 0x0806} {
		got, err := ParseEtherType(in)
		if err != nil || got != want {
			t.Errorf("ParseEtherType(%q) = %#04x, %v; want %#04x", in, uint16(got), err, uint16(want))
		}
	}
	for _, in := range []string{"", "tcp", "0x10000", "100", "-1"} {
		if _, err := ParseEtherType(in); err == nil || !strings.Contains(err.Error(), "use arp, ipv4, ipv6") {
			t.Errorf("ParseEtherType(%q): err %v, want one naming the fix", in, err)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{VLAN: u16p(4096)}, "use 0-4095"},
		{Filter{TPID: EtherTypeIPv4}, "not a VLAN tag type"},
		{Filter{EtherType: etp(EtherType8021Q)}, "select tagged frames with a VLAN filter"},
	} {
		if err := tc.f.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.f, err, tc.want)
		}
		if _, err := tc.f.compile(bpfLive); err == nil {
			t.Errorf("%+v compiled", tc.f)
		}
	}
	if prog, err := (Filter{}).compile(bpfLive); err != nil || prog != nil {
		t.Errorf("zero filter: %v %v, want no program", prog, err)
	}
	if _, err := (Filter{VLAN: u16p(1)}).compile(0); err == nil {
		t.Error("invalid BPF mode compiled")
	}
	if got, want := (Filter{VLAN: u16p(10), TPID: 0x88a8, MAC: macp(macA), EtherType: etp(EtherTypeARP)}).String(),
		"vlan 10 tpid 0x88a8 and ether host 02:00:00:00:00:01 and ether proto 0x0806"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// The inline BPF program and Match must keep exactly the expected frames.
func TestFilterMatchAndBPF(t *testing.T) {
	fs := testFrames()
	// Indexes into testFrames: 0 Q10 ARP, 1 AD100/Q10 ARP, 2 AD200 ARP,
	// 3 Q0p6 ARP, 4 ARP req, 5 ARP reply, 6 Q20 IPv4, 7 IPv4, 8 IPv6,
	// 9 Q30 IPv6, 10 IPv6 NS, 11 UDP, 12 9100:300/Q10 ARP, 13 Q0 ARP.
	for _, tc := range []struct {
		name string
		f    Filter
		keep []int
	}{
		{"vlan 10 (outer or inner)", Filter{VLAN: u16p(10)}, []int{0, 1, 12}},
		{"vlan 100", Filter{VLAN: u16p(100)}, []int{1}},
		{"vlan 0 priority tags", Filter{VLAN: u16p(0)}, []int{3, 13}},
		{"vlan 10 as 802.1ad", Filter{VLAN: u16p(10), TPID: EtherType8021AD}, nil},
		{"vlan 200 as 802.1ad", Filter{VLAN: u16p(200), TPID: EtherType8021AD}, []int{2}},
		{"any 802.1ad tag", Filter{TPID: EtherType8021AD}, []int{1, 2}},
		{"any 802.1Q tag", Filter{TPID: EtherType8021Q}, []int{0, 1, 3, 6, 9, 12, 13}},
		{"mac B", Filter{MAC: macp(macB)}, []int{5, 6, 7, 11}},
		{"mac broadcast", Filter{MAC: macp(bcast)}, []int{0, 1, 2, 3, 4, 12, 13}},
		{"arp", Filter{EtherType: etp(EtherTypeARP)}, []int{0, 1, 2, 3, 4, 5, 12, 13}},
		{"ipv4", Filter{EtherType: etp(EtherTypeIPv4)}, []int{6, 7, 11}},
		{"ipv6", Filter{EtherType: etp(EtherTypeIPv6)}, []int{8, 9, 10}},
		{"vlan 30 and ipv6", Filter{VLAN: u16p(30), EtherType: etp(EtherTypeIPv6)}, []int{9}},
		{"vlan 10 and arp and mac A", Filter{VLAN: u16p(10), EtherType: etp(EtherTypeARP), MAC: macp(macA)}, []int{0, 1, 12}},
		{"vlan 10 and ipv4", Filter{VLAN: u16p(10), EtherType: etp(EtherTypeIPv4)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := tc.f.compile(bpfInline)
			if err != nil {
				t.Fatal(err)
			}
			prog, ok := bpf.Disassemble(raw)
			if !ok {
				t.Fatal("program does not disassemble")
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatalf("NewVM: %v", err)
			}
			d := NewDecoder()
			var gotMatch, gotBPF []string
			for _, tf := range fs {
				var f Frame
				_ = d.Decode(tf.data, &f)
				if tc.f.Match(&f) {
					gotMatch = append(gotMatch, tf.name)
				}
				n, err := vm.Run(tf.data)
				if err != nil {
					t.Fatalf("%s: %v", tf.name, err)
				}
				if n > 0 {
					gotBPF = append(gotBPF, tf.name)
				}
			}
			want := pick(fs, tc.keep...)
			if strings.Join(gotMatch, "|") != strings.Join(want, "|") {
				t.Errorf("Match kept %q, want %q", gotMatch, want)
			}
			if strings.Join(gotBPF, "|") != strings.Join(want, "|") {
				t.Errorf("BPF kept %q, want %q", gotBPF, want)
			}
		})
	}
}

// The live program asks the kernel for the tag it took out of the frame;
// the VM cannot run it, the privileged test does.
func TestFilterLiveUsesVLANExtensions(t *testing.T) {
	raw, err := Filter{VLAN: u16p(10), TPID: EtherType8021AD}.compile(bpfLive)
	if err != nil {
		t.Fatal(err)
	}
	prog, _ := bpf.Disassemble(raw)
	seen := map[bpf.Extension]bool{}
	for _, ins := range prog {
		if le, ok := ins.(bpf.LoadExtension); ok {
			seen[le.Num] = true
		}
	}
	for _, e := range []bpf.Extension{bpf.ExtVLANTagPresent, bpf.ExtVLANTag, bpf.ExtVLANProto} {
		if !seen[e] {
			t.Errorf("live program does not load extension %v", e)
		}
	}
	// Without a VLAN term no extension is needed: the same program runs.
	raw, _ = Filter{MAC: macp(macA)}.compile(bpfLive)
	prog, _ = bpf.Disassemble(raw)
	if _, err := bpf.NewVM(prog); err != nil {
		t.Errorf("MAC-only live program: %v", err)
	}
}
