package main

// End-to-end tests of `vmlink link` through run(), in throwaway
// namespaces: every validation issue 2 lists is refused with exit 2 and one
// line naming the field, every well-known kernel refusal fails with exit 1
// and keeps errno, the kernel's text and the hint, and neither leaves
// anything behind; `link show` filters and says what it shows.

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/testenv"
)

// cliSide is a namespace with the parents the tests use: veth pairs p0/p1
// and p2/p3 (down), and mv1, a bridge-mode macvlan on p0 made by ip.
func cliSide(t *testing.T) *side {
	t.Helper()
	s := newSide(t)
	ipRun(t, s.ns, "link", "add", "mv1", "link", "p0", "type", "macvlan", "mode", "bridge")
	return s
}

// checkOneLine checks that stderr is one line "vmlink: …" containing every
// want.
func checkOneLine(t *testing.T, errs string, want ...string) {
	t.Helper()
	if !strings.HasPrefix(errs, "vmlink: ") || strings.Count(strings.TrimSuffix(errs, "\n"), "\n") != 0 {
		t.Errorf("error output is not one line starting with \"vmlink: \": %q", errs)
	}
	for _, w := range want {
		if !strings.Contains(errs, w) {
			t.Errorf("error %q lacks %q", strings.TrimSpace(errs), w)
		}
	}
}

// unchanged fails the test when the namespace's links differ from before.
func unchanged(t *testing.T, ns string, before map[string]map[string]any) {
	t.Helper()
	if d := stateDiff(normalize(ipLinks(t, ns), nil), before); len(d) > 0 {
		t.Errorf("the refused command changed the namespace:\n  %s", strings.Join(d, "\n  "))
	}
}

// TestLinkCLIValidation: each check issue 2 (item 5) lists is made before
// any request, names the field (as `field "value"` or `field:`), exits 2
// and creates or changes nothing.
func TestLinkCLIValidation(t *testing.T) {
	requireRoot(t)
	s := cliSide(t)
	before := normalize(ipLinks(t, s.ns), nil)
	tests := []struct {
		args []string
		want string // how the message names the field
	}{
		// Interface names: too long, '/', ':', whitespace.
		{[]string{"add", "averyveryverylongname", "link", "p0", "type", "macvlan"}, `name "averyveryverylongname" is 21 bytes long`},
		{[]string{"add", "name", "sixteen-bytes-xx", "link", "p0", "type", "macvlan"}, `name "sixteen-bytes-xx"`},
		{[]string{"add", "a/b", "link", "p0", "type", "macvlan"}, `name "a/b" contains '/'`},
		{[]string{"add", "a:b", "link", "p0", "type", "macvlan"}, `name "a:b" contains ':'`},
		{[]string{"add", "a b", "link", "p0", "type", "macvlan"}, `name "a b" contains ' '`},
		{[]string{"add", "a\tb", "link", "p0", "type", "macvlan"}, `name "a\tb" contains '\t'`},
		{[]string{"set", "mv1", "name", "x/y"}, `name "x/y"`},
		// VLAN id.
		{[]string{"add", "v1", "link", "p0", "type", "vlan", "id", "4095"}, `id "4095": VLAN ids run from 0 to 4094`},
		{[]string{"add", "v1", "link", "p0", "type", "vlan", "id", "-1"}, `id "-1"`},
		// Unknown protocol, mode, flag.
		{[]string{"add", "v1", "link", "p0", "type", "vlan", "id", "5", "protocol", "802.1x"}, `protocol "802.1x"`},
		{[]string{"add", "mv2", "link", "p0", "type", "macvlan", "mode", "bogus"}, `mode "bogus"`},
		{[]string{"add", "tap0", "link", "p0", "type", "macvtap", "mode", "l2"}, `mode "l2"`},
		{[]string{"add", "ipv0", "link", "p0", "type", "ipvlan", "mode", "l4"}, `mode "l4"`},
		{[]string{"set", "mv1", "type", "macvlan", "mode", "bogus"}, `link set mv1: macvlan: mode "bogus"`},
		{[]string{"add", "mv2", "link", "p0", "type", "macvlan", "flag", "lazy"}, `flag "lazy"`},
		{[]string{"add", "v1", "link", "p0", "type", "vlan", "id", "5", "gvrp", "maybe"}, `gvrp "maybe"`},
		{[]string{"add", "v1", "link", "p0", "type", "vlan", "id", "5", "reorder_hdr", "yes"}, `reorder_hdr "yes"`},
		// nopromisc outside passthru.
		{[]string{"add", "mv2", "link", "p0", "type", "macvlan", "mode", "bridge", "nopromisc"}, "nopromisc: only valid in passthru mode, not bridge: drop nopromisc or use mode passthru"},
		{[]string{"add", "mv2", "link", "p0", "type", "macvlan", "nopromisc"}, "nopromisc: only valid in passthru mode, not bridge: drop nopromisc or use mode passthru"},
		{[]string{"set", "mv1", "type", "macvlan", "nopromisc"}, "nopromisc: only valid in passthru mode"},
		// nodst and macaddr outside source.
		{[]string{"add", "mv2", "link", "p0", "type", "macvlan", "mode", "bridge", "nodst"}, "nodst: only valid in source mode"},
		{[]string{"add", "mv2", "link", "p0", "type", "macvlan", "mode", "vepa", "macaddr", "add", "02:00:00:00:00:01"}, "macaddr: a list of source MACs is only valid in source mode, not vepa"},
		{[]string{"set", "mv1", "type", "macvlan", "nodst"}, "nodst: only valid in source mode"},
		{[]string{"set", "mv1", "type", "macvlan", "macaddr", "add", "02:00:00:00:00:01"}, "macaddr: a list of source MACs is only valid in source mode"},
		{[]string{"set", "mv1", "type", "macvlan", "macaddr", "flush"}, "macaddr: a list of source MACs is only valid in source mode"},
		// Multicast or zero MAC, as the address or in a source list.
		{[]string{"add", "mv2", "link", "p0", "address", "01:00:5e:00:00:01", "type", "macvlan"}, `address "01:00:5e:00:00:01": is a multicast address`},
		{[]string{"add", "mv2", "link", "p0", "address", "00:00:00:00:00:00", "type", "macvlan"}, `address "00:00:00:00:00:00": is all zeros`},
		{[]string{"add", "src0", "link", "p0", "type", "macvlan", "mode", "source", "macaddr", "set", "ff:ff:ff:ff:ff:ff"}, `macaddr "ff:ff:ff:ff:ff:ff": is a multicast address`},
		{[]string{"add", "src0", "link", "p0", "type", "macvlan", "mode", "source", "macaddr", "add", "00:00:00:00:00:00"}, `macaddr "00:00:00:00:00:00": is all zeros`},
		{[]string{"set", "mv1", "address", "03:00:00:00:00:01"}, `address "03:00:00:00:00:01": is a multicast address`},
		// MTU above the parent's (1500).
		{[]string{"add", "mv2", "link", "p0", "mtu", "1600", "type", "macvlan"}, `mtu "1600": above the parent p0's MTU 1500`},
		{[]string{"add", "v1", "link", "p0", "mtu", "1501", "type", "vlan", "id", "5"}, `mtu "1501": above the parent p0's MTU 1500`},
		{[]string{"set", "mv1", "mtu", "9000"}, `mtu "9000": above the parent p0's MTU 1500`},
		// Missing or loopback parent.
		{[]string{"add", "mv2", "type", "macvlan"}, "link: a macvlan link needs a parent"},
		{[]string{"add", "mv2", "link", "nosuch", "type", "macvlan"}, `link "nosuch": no such parent link`},
		{[]string{"add", "v1", "link", "nosuch", "type", "vlan", "id", "5"}, `link "nosuch": no such parent link`},
		{[]string{"add", "mv2", "link", "lo", "type", "macvlan"}, `link "lo": a loopback device cannot be a parent`},
		{[]string{"add", "ipv0", "link", "lo", "type", "ipvlan"}, `link "lo": a loopback device cannot be a parent`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := vmlinkRun(append([]string{"-n", s.ns, "link"}, tt.args...)...)
			want := exitUsage
			if strings.Contains(tt.want, "no such parent") {
				want = exitEnvError // a parent that does not exist is the environment
			}
			if code != want {
				t.Errorf("exit %d, want %d", code, want)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			checkOneLine(t, errs, tt.want)
			unchanged(t, s.ns, before)
		})
	}
}

// TestLinkCLIKernelRefusals: what only the kernel can refuse fails with
// exit 1, one line with the errno, the kernel's own message when it sends
// one, and the hint; nothing is left half-created.
func TestLinkCLIKernelRefusals(t *testing.T) {
	requireRoot(t)
	s := cliSide(t)
	ipRun(t, s.ns, "link", "set", "p0", "up")
	ipRun(t, s.ns, "link", "add", "pt0", "link", "p2", "type", "macvlan", "mode", "passthru")
	ipRun(t, s.ns, "link", "add", "mvA", "link", "p0", "address", "02:00:00:00:00:aa", "up", "type", "macvlan", "mode", "bridge")
	before := normalize(ipLinks(t, s.ns), nil)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"duplicate name", []string{"add", "p1", "link", "p0", "type", "macvlan", "mode", "bridge"},
			[]string{"file exists", `a link named "p1" already exists`}},
		{"second passthru", []string{"add", "pt1", "link", "p2", "type", "macvlan", "mode", "passthru"},
			[]string{"invalid argument", "passthru needs the parent to itself"}},
		{"bridge on a passthru parent", []string{"add", "mv2", "link", "p2", "type", "macvlan", "mode", "bridge"},
			[]string{"invalid argument", "the parent already has a passthru macvlan/macvtap"}},
		{"macvtap on a passthru parent", []string{"add", "tap0", "link", "p2", "type", "macvtap"},
			[]string{"invalid argument", "the parent already has a passthru macvlan/macvtap"}},
		{"passthru on a used parent", []string{"add", "pt1", "link", "p0", "type", "macvlan", "mode", "passthru"},
			[]string{"invalid argument", "passthru needs the parent to itself"}},
		{"MAC used by a sibling", []string{"add", "mvB", "link", "p0", "address", "02:00:00:00:00:aa", "up", "type", "macvlan", "mode", "bridge"},
			[]string{"address already in use", "the MAC address is already used on this parent"}},
		{"delete a missing link", []string{"del", "nosuch"}, []string{"no such device", "no such link"}},
	}
	if testenv.Probe(testenv.FeatureVLAN) != nil {
		tests = append(tests, struct {
			name string
			args []string
			want []string
		}{"no 8021q", []string{"add", "v1", "link", "p0", "type", "vlan", "id", "5"},
			[]string{"operation not supported", "Unknown device type", "kernel has no 802.1Q VLAN support (load module 8021q)"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := vmlinkRun(append([]string{"-n", s.ns, "link"}, tt.args...)...)
			want := exitFailed
			if tt.name == "delete a missing link" || tt.name == "no 8021q" {
				want = exitEnvError // the environment lacks the link or the kernel module
			}
			if code != want {
				t.Errorf("exit %d, want %d", code, want)
			}
			checkOneLine(t, errs, tt.want...)
			unchanged(t, s.ns, before)
		})
	}
}

// TestLinkCLIDuplicateVLAN needs 8021q (the VM tier): a second VLAN link
// with the same parent, id and protocol is refused with the kernel's text
// and the hint; another protocol with the same id is a different VLAN.
func TestLinkCLIDuplicateVLAN(t *testing.T) {
	requireRoot(t)
	testenv.Require(t, testenv.FeatureVLAN)
	s := cliSide(t)
	if code, _, errs := vmlinkRun("-n", s.ns, "link", "add", "v10", "link", "p0", "type", "vlan", "id", "10"); code != 0 {
		t.Fatalf("add v10: exit %d: %s", code, errs)
	}
	before := normalize(ipLinks(t, s.ns), nil)
	code, _, errs := vmlinkRun("-n", s.ns, "link", "add", "v10b", "link", "p0", "type", "vlan", "id", "10")
	if code != exitFailed {
		t.Errorf("exit %d, want %d", code, exitFailed)
	}
	checkOneLine(t, errs, "file exists", "VLAN device already exists", "the parent already has a VLAN link with this id and protocol")
	unchanged(t, s.ns, before)
	if code, _, errs := vmlinkRun("-n", s.ns, "link", "add", "q10", "link", "p0", "type", "vlan", "protocol", "802.1ad", "id", "10"); code != 0 {
		t.Errorf("802.1ad with the same id: exit %d: %s", code, errs)
	}
}

// TestLinkCLIShow: `link show` with a name, a type, a group and up, in
// text and JSON; a macvlan created without a mode shows as bridge.
func TestLinkCLIShow(t *testing.T) {
	requireRoot(t)
	s := newSide(t)
	for _, line := range []string{
		"link add mvd link p0 type macvlan",
		"link add tap0 link p0 group 7 type macvtap mode vepa",
		"link add mv2 link p2 group 7 type macvlan mode private",
		"link set p2 up",
		"link set mv2 up",
	} {
		if code, _, errs := vmlinkRun(append([]string{"-n", s.ns}, strings.Fields(line)...)...); code != 0 {
			t.Fatalf("%s: exit %d: %s", line, code, errs)
		}
	}
	names := func(args ...string) []string {
		t.Helper()
		code, out, errs := vmlinkRun(append([]string{"-n", s.ns, "-j", "link", "show"}, args...)...)
		if code != 0 {
			t.Fatalf("-j link show %v: exit %d: %s", args, code, errs)
		}
		var v []struct {
			IfName   string `json:"ifname"`
			LinkInfo *struct {
				InfoKind string         `json:"info_kind"`
				InfoData map[string]any `json:"info_data"`
			} `json:"linkinfo"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("-j link show %v: %v: %s", args, err, out)
		}
		var n []string
		for _, l := range v {
			n = append(n, l.IfName)
		}
		slices.Sort(n)
		return n
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"lo", "mv2", "mvd", "p0", "p1", "p2", "p3", "tap0"}},
		{[]string{"type", "macvlan"}, []string{"mv2", "mvd"}},
		{[]string{"type", "macvtap"}, []string{"tap0"}},
		{[]string{"type", "veth"}, []string{"p0", "p1", "p2", "p3"}},
		{[]string{"type", "vlan"}, nil},
		{[]string{"group", "7"}, []string{"mv2", "tap0"}},
		{[]string{"group", "7", "type", "macvlan"}, []string{"mv2"}},
		{[]string{"up"}, []string{"mv2", "p2"}},
		{[]string{"mvd"}, []string{"mvd"}},
		{[]string{"dev", "tap0", "type", "macvtap"}, []string{"tap0"}},
		{[]string{"tap0", "type", "macvlan"}, nil},
	} {
		if got := names(tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("-j link show %v: %v, want %v", tc.args, got, tc.want)
		}
	}
	// Text, like `ip -d link show`: the defaulted mode is visible.
	code, out, errs := vmlinkRun("-n", s.ns, "link", "show", "mvd")
	if code != 0 {
		t.Fatalf("link show mvd: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "mvd@p0: <") || !strings.Contains(out, "\n    macvlan mode bridge ") {
		t.Errorf("link show mvd does not show a bridge-mode macvlan on p0:\n%s", out)
	}
	ipText := ipRun(t, s.ns, "-d", "link", "show", "mvd")
	if !strings.Contains(ipText, "macvlan mode bridge ") {
		t.Errorf("ip -d link show mvd:\n%s", ipText)
	}
	code, out, _ = vmlinkRun("-n", s.ns, "link", "show", "type", "macvtap")
	if code != 0 || !strings.Contains(out, "tap0@p0") || strings.Contains(out, "mvd") || !strings.Contains(out, "macvtap mode vepa") {
		t.Errorf("link show type macvtap: exit %d:\n%s", code, out)
	}
	// A missing link is the environment (exit 3), as everywhere in vmlink.
	code, _, errs = vmlinkRun("-n", s.ns, "link", "show", "nosuch")
	if code != exitEnvError {
		t.Errorf("link show nosuch: exit %d, want %d", code, exitEnvError)
	}
	checkOneLine(t, errs, "nosuch")
}

// TestLinkCLIBclim: iproute2 6.1 predates bclim, so the differential
// corpus cannot cover it; check against the kernel's own report instead.
// A kernel before 6.4 would create the link and silently drop bclim (ip
// says nothing): vmlink refuses, names the field, and leaves nothing.
func TestLinkCLIBclim(t *testing.T) {
	requireRoot(t)
	s := newSide(t)
	var u unix.Utsname
	_ = unix.Uname(&u)
	rel := unix.ByteSliceToString(u.Release[:])
	code, _, errs := vmlinkRun("-n", s.ns, "link", "add", "mv2", "link", "p0", "type", "macvlan", "mode", "private", "bcqueuelen", "2000", "bclim", "8")
	if kernelBefore(rel, 6, 4) {
		if code != exitUsage {
			t.Fatalf("add with bclim on %s: exit %d, want %d: %s", rel, code, exitUsage, errs)
		}
		checkOneLine(t, errs, "bclim")
		if !strings.Contains(errs, "6.4") || !strings.Contains(errs, "the link was deleted") {
			t.Errorf("add with bclim on %s: %q; want the kernel version it needs and that nothing was left", rel, errs)
		}
		for _, l := range ipLinks(t, s.ns) {
			if l["ifname"] == "mv2" {
				t.Errorf("mv2 left behind on %s after the refusal", rel)
			}
		}
		return
	}
	if code != 0 {
		t.Fatalf("add: exit %d: %s", code, errs)
	}
	ip := ipLinks(t, s.ns)
	var data map[string]any
	for _, l := range ip {
		if l["ifname"] == "mv2" {
			data, _ = l["linkinfo"].(map[string]any)["info_data"].(map[string]any)
		}
	}
	if data["mode"] != "private" || data["bcqueuelen"] != 2000.0 {
		t.Errorf("ip: info_data %v, want mode private, bcqueuelen 2000", data)
	}
	var ours []map[string]any
	code, out, errs := vmlinkRun("-n", s.ns, "-j", "link", "show", "mv2")
	if code != 0 || json.Unmarshal([]byte(out), &ours) != nil || len(ours) != 1 {
		t.Fatalf("-j link show mv2: exit %d: %s%s", code, out, errs)
	}
	od := ours[0]["linkinfo"].(map[string]any)["info_data"].(map[string]any)
	if bclim, ok := od["bclim"]; !ok || bclim != 8.0 {
		t.Errorf("kernel %s: bclim %v (reported: %v), want 8", rel, bclim, ok)
	}
}

// kernelBefore reports whether a kernel release string ("6.1.0-28-amd64")
// is older than major.minor.
func kernelBefore(release string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(release, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma < major || (ma == major && mi < minor)
}

// TestLinkCLIBatchAllOrNothing: a batch whose add lines sit on both sides
// of a set line, the last add group refused (a parent that does not
// exist): the batch fails and every link it added is gone again.
func TestLinkCLIBatchAllOrNothing(t *testing.T) {
	requireRoot(t)
	s := cliSide(t)
	before := normalize(ipLinks(t, s.ns), nil)
	file := t.TempDir() + "/batch"
	batch := "link add mvX link p0 address 02:00:00:00:00:b1 type macvlan mode bridge\n" +
		"link set mvX alias batch-test\n" +
		"link add mvY link p0 type macvlan mode bridge\n" +
		"link add mvZ link nosuch0 type macvlan mode bridge\n"
	if err := os.WriteFile(file, []byte(batch), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := vmlinkRun("-n", s.ns, "link", "batch", file)
	if code == exitOK || !strings.Contains(errOut, "removed the 1 links the batch had added") {
		t.Fatalf("batch: exit %d %q, want a failure that says what it removed", code, errOut)
	}
	if after := normalize(ipLinks(t, s.ns), nil); len(after) != len(before) || after["mvX"] != nil || after["mvY"] != nil || after["mvZ"] != nil {
		t.Fatalf("links after the failed batch:\n%v\nwant\n%v", after, before)
	}
}
