package main

// Differential tests against iproute2 (issue 2, item 3): every invocation
// of the corpus runs through `ip` in one throwaway namespace and through
// `vmlink` (in-process, the whole path: parser, link, rtnl) in another, both
// on the same veth parents; the two namespaces must then look the same to
// `ip -d -j link show`, and `vmlink -j link show` must print the values ip
// prints for every key both print.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv"
)

// diffCase is one entry of the corpus.
type diffCase struct {
	name string
	// kind gates the case on the kernel supporting that link kind ("vlan",
	// "ipvlan"); "" runs everywhere.
	kind string
	// steps are `ip` command lines (without "ip"); {T} is a second
	// namespace of the same side (for netns moves).
	steps []string
	// ipSteps, when set, is what ip runs instead: vmlink deliberately
	// differs from ip (why says how), and the result must equal ip's
	// result of these.
	ipSteps []string
	why     string
}

// diffCorpus: macvlan/macvtap cases run on this machine's kernel, vlan and
// ipvlan ones in the VM tier. Lines marked (golden) are also in rtnl's
// golden request corpus.
var diffCorpus = []diffCase{
	{name: "macvlan bridge", steps: []string{"link add mv1 link p0 type macvlan mode bridge"}},
	{name: "macvlan private", steps: []string{"link add mv1 link p0 type macvlan mode private"}},
	{name: "macvlan vepa", steps: []string{"link add mv1 link p0 type macvlan mode vepa"}},
	{name: "macvlan passthru", steps: []string{"link add mv1 link p0 type macvlan mode passthru"}},
	{name: "macvlan passthru nopromisc", steps: []string{"link add pt0 link p0 type macvlan mode passthru nopromisc"}},
	{name: "macvlan passthru flag nopromisc", steps: []string{"link add pt0 link p0 type macvlan mode passthru flag nopromisc"}},
	{name: "macvlan source", steps: []string{"link add src0 link p0 type macvlan mode source"}},
	{name: "macvlan source macaddr set", steps: []string{"link add src0 link p0 type macvlan mode source macaddr set 02:00:00:00:00:01 02:00:00:00:00:02"}},
	{name: "macvlan source nodst macaddr add", steps: []string{"link add src0 link p0 type macvlan mode source nodst macaddr add 02:00:00:00:00:03"}},
	{name: "macvlan bcqueuelen", steps: []string{"link add mv2 link p0 type macvlan mode private bcqueuelen 2000"}},
	{name: "macvlan flag null", steps: []string{"link add mv1 link p0 type macvlan mode bridge flag null"}},
	{name: "macvlan common options", steps: []string{"link add mv1 link p0 mtu 1400 address 02:00:00:00:00:10 txqueuelen 77 group 7 type macvlan mode bridge"}},
	{name: "macvlan up", steps: []string{"link set p0 up", "link add mv1 link p0 up type macvlan mode bridge"}},
	{name: "macvlan netns", steps: []string{"link add mv3 link p0 netns {T} type macvlan mode bridge"}},
	// A container's eth0 on the host's eth0 (docker's macvlan driver): the
	// same name is fine in another namespace.
	{name: "macvlan named like its parent in another netns", steps: []string{"link add p0 link p0 netns {T} type macvlan mode bridge"},
		ipSteps: []string{"link add mvtmp link p0 netns {T} type macvlan mode bridge", "-n {T} link set mvtmp name p0"},
		why:     nameClashWhy},
	{name: "macvlan abbreviations", steps: []string{"link a mv1 li p0 addr 02:00:00:00:00:11 ty macvlan mod private"}},
	{name: "macvlan name and dev keywords", steps: []string{"link add name mv1 link p0 type macvlan mode vepa", "link add dev mv2 link p0 type macvlan mode vepa"}},
	{name: "macvtap vepa", steps: []string{"link add tap0 link p0 type macvtap mode vepa"}},
	{name: "macvtap bridge", steps: []string{"link add tap0 link p0 type macvtap mode bridge"}},
	{name: "macvtap passthru", steps: []string{"link add tap0 link p0 type macvtap mode passthru"}},
	{name: "macvtap source", steps: []string{"link add tap0 link p0 type macvtap mode source macaddr set 02:00:00:00:00:01"}},
	{name: "macvtap private bcqueuelen up", steps: []string{"link add tap0 link p0 up type macvtap mode private bcqueuelen 100"}},
	{name: "several links on two parents", steps: []string{
		"link add mv1 link p0 type macvlan mode bridge",
		"link add mv2 link p0 type macvlan mode private",
		"link add tap0 link p0 type macvtap mode vepa",
		"link add pt0 link p2 type macvlan mode passthru nopromisc",
	}},
	{name: "source list edits", steps: []string{
		"link add src0 link p0 type macvlan mode source",
		"link set src0 type macvlan macaddr add 02:00:00:00:00:01",
		"link set src0 type macvlan macaddr add 02:00:00:00:00:02",
		"link set src0 type macvlan macaddr del 02:00:00:00:00:01",
		"link set src0 type macvlan macaddr set 02:00:00:00:00:05 02:00:00:00:00:06 02:00:00:00:00:07",
	}},
	{name: "source list flush", steps: []string{
		"link add src0 link p0 type macvtap mode source macaddr set 02:00:00:00:00:01 02:00:00:00:00:02",
		"link set src0 type macvtap macaddr flush",
	}},
	{name: "set common fields", steps: []string{
		"link add mv1 link p0 type macvlan mode bridge",
		"link set mv1 mtu 1300",
		"link set mv1 address 02:00:00:00:00:20",
		"link set mv1 alias hello",
		"link set mv1 group 9",
		"link set mv1 txqueuelen 5",
		"link set mv1 up",
		"link set dev mv1 down",
		"link set mv1 name mv9",
	}},
	{name: "set mode and flags", steps: []string{
		"link add mv1 link p0 type macvlan mode bridge",
		"link set mv1 type macvlan mode vepa",
		"link set mv1 type macvlan mode source nodst",
		"link set mv1 type macvlan bcqueuelen 300",
	}},
	{name: "set netns", steps: []string{"link add mv1 link p0 type macvlan mode bridge", "link set mv1 netns {T}"}},
	{name: "delete", steps: []string{"link add mv1 link p0 type macvlan mode bridge", "link add mv2 link p0 type macvlan mode bridge", "link del mv1", "link delete dev mv2"}},
	{name: "delete group", steps: []string{
		"link add mv1 link p0 group 7 type macvlan mode bridge",
		"link add mv2 link p0 group 7 type macvtap mode bridge",
		"link add mv3 link p0 group 8 type macvlan mode bridge",
		"link del group 7",
	}},
	{name: "default mode", steps: []string{"link add mv1 link p0 type macvlan"},
		ipSteps: []string{"link add mv1 link p0 type macvlan mode bridge"},
		why:     "without a mode vmlink creates bridge, where the kernel's default is vepa"},
	{name: "default mode macvtap", steps: []string{"link add tap0 link p0 type macvtap"},
		ipSteps: []string{"link add tap0 link p0 type macvtap mode bridge"},
		why:     "without a mode vmlink creates bridge, where the kernel's default is vepa"},
	{name: "alias on add", steps: []string{"link add mv1 link p0 alias hello type macvlan mode bridge"},
		ipSteps: []string{"link add mv1 link p0 type macvlan mode bridge", "link set mv1 alias hello"},
		why:     "the kernel ignores IFLA_IFALIAS at creation, so ip's alias is lost; vmlink sets it right after"},

	// VLAN: the VM tier (Debian 6.1 and 6.12 kernels with 8021q).
	{name: "vlan", kind: "vlan", steps: []string{"link add p0.10 link p0 type vlan id 10"}},
	{name: "vlan id 0", kind: "vlan", steps: []string{"link add v0 link p0 type vlan id 0"}},
	{name: "vlan id 4094", kind: "vlan", steps: []string{"link add v4094 link p0 type vlan id 4094"}},
	{name: "vlan 802.1ad with flags and maps", kind: "vlan", steps: []string{
		"link add q100 link p0 type vlan protocol 802.1ad id 100 reorder_hdr off loose_binding on ingress-qos-map 1:2 egress-qos-map 3:4"}},
	{name: "vlan gvrp mvrp bridge_binding", kind: "vlan", steps: []string{"link add v11 link p0 type vlan id 11 gvrp on mvrp on bridge_binding on"}},
	{name: "vlan several qos mappings", kind: "vlan", steps: []string{"link add v12 link p0 type vlan id 12 ingress-qos-map 0:1 1:2 7:7 egress-qos-map 1:0 2:5"}},
	{name: "vlan protocol 802.1Q explicit", kind: "vlan", steps: []string{"link add v13 link p0 type vlan protocol 802.1Q id 13"}},
	{name: "vlan common options", kind: "vlan", steps: []string{"link add v14 link p0 mtu 1400 address 02:00:00:00:00:14 group 3 type vlan id 14"}},
	{name: "vlan up", kind: "vlan", steps: []string{"link set p0 up", "link add v15 link p0 up type vlan id 15"}},
	{name: "vlan QinQ stack", kind: "vlan", steps: []string{
		"link add q100 link p0 type vlan protocol 802.1ad id 100",
		"link add q100.10 link q100 type vlan id 10"}},
	{name: "vlan set flags and maps", kind: "vlan", steps: []string{
		"link add v10 link p0 type vlan id 10",
		"link set v10 type vlan reorder_hdr off gvrp on egress-qos-map 2:3",
		"link set v10 type vlan ingress-qos-map 3:4"}},
	{name: "vlan netns", kind: "vlan", steps: []string{"link add v16 link p0 netns {T} type vlan id 16"}},
	{name: "vlan named like its parent in another netns", kind: "vlan", steps: []string{"link add p0 link p0 netns {T} type vlan id 16"},
		ipSteps: []string{"link add vtmp link p0 netns {T} type vlan id 16", "-n {T} link set vtmp name p0"},
		why:     nameClashWhy},

	// ipvlan: the VM tier.
	{name: "ipvlan l3 private", kind: "ipvlan", steps: []string{"link add ipv0 link p0 type ipvlan mode l3 private"}},
	{name: "ipvlan l2", kind: "ipvlan", steps: []string{"link add ipv0 link p0 type ipvlan mode l2"}},
	{name: "ipvlan l3s bridge", kind: "ipvlan", steps: []string{"link add ipv0 link p0 type ipvlan mode l3s bridge"}},
	{name: "ipvlan vepa", kind: "ipvlan", steps: []string{"link add ipv0 link p0 type ipvlan mode l2 vepa"}},
	{name: "ipvlan defaults", kind: "ipvlan", steps: []string{"link add ipv0 link p0 type ipvlan"}},
	{name: "ipvlan set mode", kind: "ipvlan", steps: []string{"link add ipv0 link p0 type ipvlan mode l3", "link set ipv0 type ipvlan mode l2"}},
	{name: "ipvlan flag only", kind: "ipvlan", steps: []string{"link add ipv0 link p0 type ipvlan private"}},
	{name: "ipvlan set flag", kind: "ipvlan", steps: []string{"link add ipv0 link p0 type ipvlan mode l2", "link set ipv0 type ipvlan vepa"}},
	{name: "ipvlan set mode keeps the flag", kind: "ipvlan", steps: []string{
		"link add ipv0 link p0 type ipvlan mode l3 private",
		"link set ipv0 type ipvlan mode l2"},
		ipSteps: []string{"link add ipv0 link p0 type ipvlan mode l3 private", "link set ipv0 type ipvlan mode l2 private"},
		why:     "ip's `set … mode` also sends flags 0 and so resets private/vepa to bridge; vmlink keeps the link's flag"},
	{name: "ipvlan siblings share the parent's mode", kind: "ipvlan", steps: []string{
		"link add ipv0 link p0 type ipvlan mode l3 private",
		"link add ipv1 link p0 type ipvlan mode l2",
		"link add ipv2 link p2 type ipvlan mode l3s vepa"}},
	{name: "ipvlan common options", kind: "ipvlan", steps: []string{"link add ipv0 link p0 mtu 1400 group 4 txqueuelen 9 type ipvlan mode l2"}},

	// More VLAN spellings ip accepts.
	{name: "vlan protocol and id as numbers", kind: "vlan", steps: []string{"link add q102 link p0 type vlan protocol 0x88a8 id 0x66"}},
	{name: "vlan abbreviations", kind: "vlan", steps: []string{"link a v17 li p0 ty vlan proto 802.1ad i 17 reorder off loose on ingress 1:2 egress 3:4"}},
	{name: "vlan set clears a mapping", kind: "vlan", steps: []string{
		"link add v18 link p0 type vlan id 18 ingress-qos-map 1:2 3:4 egress-qos-map 5:6",
		"link set v18 type vlan ingress-qos-map 1:0 egress-qos-map 5:0"}},
	{name: "vlan set all flags", kind: "vlan", steps: []string{
		"link add v19 link p0 type vlan id 19",
		"link set v19 type vlan reorder_hdr off gvrp on mvrp on loose_binding on bridge_binding on",
		"link set v19 type vlan gvrp off"}},
	{name: "vlan on a macvlan", kind: "vlan", steps: []string{
		"link add mv1 link p0 type macvlan mode bridge",
		"link add mv1.5 link mv1 type vlan id 5"}},
}

// nameClashWhy: Linux 6.1 looks a new link's name up in the requesting
// socket's namespace even when the link goes elsewhere, so ip gets EEXIST
// there (6.18 accepts); vmlink creates under a temporary name and renames
// in the target namespace, as docker's macvlan driver does.
const nameClashWhy = "ip on older kernels refuses a name its own namespace has; vmlink renames over there"

// failCorpus: command lines both ip and vmlink refuse; vmlink with exit
// code 2 (usage), 1 (kernel) or 3 (a link that does not exist: ip says 1
// or 2), and in both namespaces nothing changes.
var failCorpus = []struct {
	line string
	code int
}{
	{"link add mv1 link p0 type macvlan mode bridge nopromisc", exitUsage},
	{"link add mv1 link p0 type macvlan mode bogus", exitUsage},
	{"link add mv1 link nosuch type macvlan mode bridge", exitEnvError},
	{"link add averyveryverylongname link p0 type macvlan mode bridge", exitUsage},
	{"link add mv1 link p0 type macvlan mode bridge bogus", exitUsage},
	{"link add p1 link p0 type macvlan mode bridge", exitFailed},
	{"link add mv1 link p0 type macvlan mode bridge macaddr add 02:00:00:00:00:01", exitUsage},
	{"link del nosuch", exitEnvError},
	{"link add v1 link p0 type vlan id 4095", exitUsage},
	{"link add v1 link p0 type vlan protocol 802.1ad", exitUsage},
	{"link add v1 link p0 type vlan id 5 protocol 0x0800", exitUsage},
	{"link add v1 link p0 type vlan id 5 reorder_hdr maybe", exitUsage},
	{"link add ipv0 link p0 type ipvlan mode l4", exitUsage},
	{"link add v1 link nosuch type vlan id 5", exitEnvError},
	{"link set nosuch up", exitEnvError},
}

// strictCorpus: lines ip accepts (the kernel creates something odd or
// silently ignores part of it) that vmlink refuses with exit 2, creating
// nothing.
var strictCorpus = []string{
	"link add mv1 link p0 type macvlan mode bridge nodst",
	"link add mv1 link p0 mtu 1600 type macvlan mode bridge",
	"link add mv1 link p0 address 01:00:00:00:00:01 type macvlan mode bridge",
	"link add mv1 link lo type macvlan mode bridge",
	// The kernel masks an egress priority to 3 bits: 1:9 would map to 1.
	"link add v1 link p0 type vlan id 5 egress-qos-map 1:9",
	"link add v1 link p0 type vlan id 5 ingress-qos-map 8:1",
	"link add ipv0 link p0 address 02:00:00:00:00:01 type ipvlan mode l2",
	"link add v1 link lo type vlan id 5",
}

func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("privileged differential test: skipped with -short (unit tier); run `go test ./cmd/vmlink` as root")
	}
	if os.Geteuid() != 0 {
		msg := "needs root to create network namespaces: run `sudo go test ./cmd/vmlink`"
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but " + msg)
		}
		t.Skip(msg)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2's ip is the reference and must be installed: %v", err)
	}
}

// newNetNS makes a throwaway named namespace (testenv.NewNetNS) removed in
// t.Cleanup, even when the test fails.
func newNetNS(t *testing.T) string {
	t.Helper()
	return testenv.NewNetNS(t).Name()
}

func ipCmd(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	// stdout alone on success: ip also complains on stderr about names in
	// /run/netns it cannot resolve (a stale file left by someone else),
	// which is no part of what it shows.
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

func ipRun(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := ipCmd(ns, args...)
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
	return out
}

// side is one half of a differential run: its namespace, the extra
// namespace {T} stands for, and how it runs a command line.
type side struct {
	ns, t string
}

func newSide(t *testing.T) *side {
	s := &side{ns: newNetNS(t), t: newNetNS(t)}
	// The same parents on both sides: two veth pairs, down.
	ipRun(t, s.ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
	ipRun(t, s.ns, "link", "add", "p2", "type", "veth", "peer", "name", "p3")
	return s
}

func (s *side) expand(line string) []string {
	return strings.Fields(strings.ReplaceAll(line, "{T}", s.t))
}

// vmlink runs `vmlink -n NS ARGS…` in-process and returns exit code and output.
func vmlinkRun(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// requireKind skips a case the kernel cannot run, unless the environment
// says it should (CI=true and VMLINK_EXPECT_FEATURES lists the kind): the
// decision is testenv.Require's, from its own probe of the kind.
func requireKind(t *testing.T, kind string) {
	t.Helper()
	if kind == "" {
		return
	}
	f, err := testenv.ParseFeature(kind)
	if err != nil {
		t.Fatalf("requireKind: %v", err)
	}
	testenv.Require(t, f)
}

// ipLinks is `ip -d -j link show` of ns, decoded.
func ipLinks(t *testing.T, ns string) []map[string]any {
	t.Helper()
	var v []map[string]any
	out := ipRun(t, ns, "-d", "-j", "link", "show")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("decode ip -d -j link show: %v: %s", err, out)
	}
	return v
}

var macRE = regexp.MustCompile(`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`)

// normalize makes two namespaces' link lists comparable: ifindex and
// netns ids differ by construction; random MACs are replaced by the name
// of the link they came from ("=p0" for a passthru link that took its
// parent's), unless the corpus wrote them; lists are keyed by name.
func normalize(links []map[string]any, written []string) map[string]map[string]any {
	byMAC := map[string]string{}
	for _, l := range links {
		if a, ok := l["address"].(string); ok {
			if _, dup := byMAC[a]; !dup {
				byMAC[a] = fmt.Sprint(l["ifname"])
			}
		}
	}
	out := map[string]map[string]any{}
	for _, l := range links {
		l = cloneMap(l)
		for _, k := range []string{"ifindex", "link_netnsid", "link_index"} {
			delete(l, k)
		}
		if a, ok := l["address"].(string); ok && macRE.MatchString(a) && !slices.Contains(written, a) {
			l["address"] = "=" + byMAC[a]
		}
		if pa, ok := l["permaddr"].(string); ok && !slices.Contains(written, pa) {
			l["permaddr"] = "<random>"
		}
		out[fmt.Sprint(l["ifname"])] = l
	}
	return out
}

func cloneMap(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	return c
}

// writtenMACs are the MAC addresses a case spells out.
func writtenMACs(lines []string) []string {
	var macs []string
	for _, l := range lines {
		for _, f := range strings.Fields(l) {
			if macRE.MatchString(f) {
				macs = append(macs, f)
			}
		}
	}
	return macs
}

// stateDiff compares two namespaces' normalized states.
func stateDiff(a, b map[string]map[string]any) []string {
	var diffs []string
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		la, lb := a[n], b[n]
		switch {
		case la == nil:
			diffs = append(diffs, fmt.Sprintf("%s: only on the vmlink side", n))
		case lb == nil:
			diffs = append(diffs, fmt.Sprintf("%s: only on the ip side", n))
		case !reflect.DeepEqual(la, lb):
			ja, _ := json.Marshal(la)
			jb, _ := json.Marshal(lb)
			diffs = append(diffs, fmt.Sprintf("%s:\n    ip:     %s\n    vmlink: %s", n, jb, ja))
		}
	}
	return diffs
}

// ipOnlyKeys are keys ip prints that vmlink does not decode.
var ipOnlyKeys = map[string]bool{
	"gso_ipv4_max_size": true, "gro_ipv4_max_size": true, "parentbus": true, "parentdev": true, "xdp": true,
	"proto_down": true, "altnames": true, "operstate_index": true, "permaddr": true,
}

// showDiff compares `vmlink -j link show` with `ip -d -j link show` of the
// same namespace: the same links, the same value for every key both
// print, and every key ip prints except ipOnlyKeys.
func showDiff(ours, ip []map[string]any) []string {
	var diffs []string
	byName := map[any]map[string]any{}
	for _, l := range ip {
		byName[l["ifname"]] = l
	}
	if len(ours) != len(ip) {
		diffs = append(diffs, fmt.Sprintf("vmlink shows %d links, ip %d", len(ours), len(ip)))
	}
	var walk func(link, path string, o, r map[string]any)
	walk = func(link, path string, o, r map[string]any) {
		for k, rv := range r {
			ov, ok := o[k]
			if !ok {
				if !(path == "" && ipOnlyKeys[k]) {
					diffs = append(diffs, fmt.Sprintf("%s: %s%s: ip prints %v, vmlink nothing", link, path, k, rv))
				}
				continue
			}
			om, ok1 := ov.(map[string]any)
			rm, ok2 := rv.(map[string]any)
			if ok1 && ok2 {
				walk(link, path+k+".", om, rm)
				continue
			}
			if k == "macaddr_data" {
				ov, rv = sortedStrings(ov), sortedStrings(rv)
			}
			if !reflect.DeepEqual(ov, rv) {
				diffs = append(diffs, fmt.Sprintf("%s: %s%s: vmlink %v, ip %v", link, path, k, ov, rv))
			}
		}
		for k, ov := range o {
			// iproute2 6.1 predates bclim (6.4): it cannot print it.
			if _, ok := r[k]; !ok && k != "bclim" {
				diffs = append(diffs, fmt.Sprintf("%s: %s%s: vmlink prints %v, ip nothing", link, path, k, ov))
			}
		}
	}
	for _, o := range ours {
		r := byName[o["ifname"]]
		if r == nil {
			diffs = append(diffs, fmt.Sprintf("%v: vmlink shows it, ip does not", o["ifname"]))
			continue
		}
		walk(fmt.Sprint(o["ifname"]), "", o, r)
	}
	sort.Strings(diffs)
	return diffs
}

func sortedStrings(v any) any {
	l, ok := v.([]any)
	if !ok {
		return v
	}
	s := make([]string, len(l))
	for i, x := range l {
		s[i] = fmt.Sprint(x)
	}
	sort.Strings(s)
	return s
}

// vmlinkShow is `vmlink -n NS -j link show`, decoded.
func vmlinkShow(t *testing.T, ns string) []map[string]any {
	t.Helper()
	code, out, errs := vmlinkRun("-n", ns, "-j", "link", "show")
	if code != 0 {
		t.Fatalf("vmlink -n %s -j link show: exit %d: %s", ns, code, errs)
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("decode vmlink -j link show: %v: %s", err, out)
	}
	return v
}

func TestDifferential(t *testing.T) {
	requireRoot(t)
	for _, c := range diffCorpus {
		t.Run(c.name, func(t *testing.T) {
			ref, ours := newSide(t), newSide(t)
			requireKind(t, c.kind)
			ipSteps := c.steps
			if c.ipSteps != nil {
				ipSteps = c.ipSteps
			}
			for _, line := range ipSteps {
				ipRun(t, ref.ns, ref.expand(line)...)
			}
			for _, line := range c.steps {
				args := append([]string{"-n", ours.ns}, ours.expand(line)...)
				if code, _, errs := vmlinkRun(args...); code != 0 {
					t.Fatalf("vmlink %s: exit %d: %s", strings.Join(args, " "), code, errs)
				}
			}
			written := writtenMACs(append(slices.Clone(c.steps), ipSteps...))
			for _, pair := range [][2]string{{ref.ns, ours.ns}, {ref.t, ours.t}} {
				// Operational state (operstate, NO-CARRIER) is updated by
				// the kernel's linkwatch after the request returns, later on
				// a slow VM: let it settle on both sides, for a bounded
				// number of tries, before calling a difference one.
				var ipState, ourState []map[string]any
				var d []string
				for try := 0; try < 20; try++ {
					ipState, ourState = ipLinks(t, pair[0]), ipLinks(t, pair[1])
					if d = stateDiff(normalize(ourState, written), normalize(ipState, written)); len(d) == 0 {
						break
					}
					time.Sleep(250 * time.Millisecond)
				}
				if len(d) > 0 {
					t.Errorf("state after the corpus differs (%s):\n  %s", c.why, strings.Join(d, "\n  "))
				}
				// The same settling between vmlink's reading and ip's: a
				// difference must persist to count.
				for try := 0; try < 20; try++ {
					if d = showDiff(vmlinkShow(t, pair[1]), ourState); len(d) == 0 {
						break
					}
					time.Sleep(250 * time.Millisecond)
					ourState = ipLinks(t, pair[1])
				}
				if len(d) > 0 {
					t.Errorf("vmlink -j link show differs from ip -d -j link show:\n  %s", strings.Join(d, "\n  "))
				}
			}
		})
	}
}

func TestDifferentialFailures(t *testing.T) {
	requireRoot(t)
	ref, ours := newSide(t), newSide(t)
	before := normalize(ipLinks(t, ours.ns), nil)
	for _, c := range failCorpus {
		t.Run(c.line, func(t *testing.T) {
			if out, err := ipCmd(ref.ns, strings.Fields(c.line)...); err == nil {
				t.Fatalf("ip accepted %q: %s", c.line, out)
			}
			code, _, errs := vmlinkRun(append([]string{"-n", ours.ns}, strings.Fields(c.line)...)...)
			if code != c.code {
				t.Errorf("vmlink exit %d, want %d: %s", code, c.code, errs)
			}
			if strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.HasPrefix(errs, "vmlink: ") {
				t.Errorf("error is not one line: %q", errs)
			}
			if d := stateDiff(normalize(ipLinks(t, ours.ns), nil), before); len(d) > 0 {
				t.Errorf("a refused command changed the namespace:\n  %s", strings.Join(d, "\n  "))
			}
		})
	}
	for _, line := range strictCorpus {
		t.Run("strict/"+line, func(t *testing.T) {
			code, _, errs := vmlinkRun(append([]string{"-n", ours.ns}, strings.Fields(line)...)...)
			if code != exitUsage {
				t.Errorf("vmlink exit %d, want %d: %s", code, exitUsage, errs)
			}
			if d := stateDiff(normalize(ipLinks(t, ours.ns), nil), before); len(d) > 0 {
				t.Errorf("a refused command changed the namespace:\n  %s", strings.Join(d, "\n  "))
			}
		})
	}
}
