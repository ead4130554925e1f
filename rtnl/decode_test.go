package rtnl

// Decode tests from real kernels: testdata/dumps/NAME.txt is the kernel's
// RTM_NEWLINK reply for one link (captured by testdata/capture.sh on this
// machine's kernel, or by TestVMCaptureDumps in the VM for the kinds this
// kernel lacks) and NAME.json is `ip -d -j link show` of the same link.
// Our decode must agree with iproute2's on every value both read.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestDecodeDumps(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "dumps", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, path := range files {
		g := readCapture(t, path)
		t.Run(g.name, func(t *testing.T) {
			js, err := os.ReadFile(strings.TrimSuffix(path, ".txt") + ".json")
			if err != nil {
				t.Fatalf("every dump needs the matching ip -d -j link show: %v", err)
			}
			var ref []map[string]any
			if err := json.Unmarshal(js, &ref); err != nil || len(ref) != 1 {
				t.Fatalf("%s.json: want one link: %v", g.name, err)
			}
			var m LinkMessage
			if err := m.UnmarshalBinary(g.body); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if m.Attrs.Info != nil {
				kinds[m.Attrs.Info.Kind] = true
			}
			for _, d := range compareDump(&m, ref[0]) {
				t.Error(d)
			}
		})
	}
	// The dumps cover every kind we encode; vlan, ipvlan and dummy come
	// from the VM (see vmdump_test.go).
	for _, k := range []string{"vlan", "ipvlan", "dummy", "macvlan", "macvtap", "veth", "bridge"} {
		if !kinds[k] {
			t.Errorf("no kernel dump of a %s link in testdata/dumps", k)
		}
	}
}

// TestCompareDumpCatchesDifferences makes sure compareDump can fail.
func TestCompareDumpCatchesDifferences(t *testing.T) {
	id := uint16(10)
	p := VLANProtocol8021AD
	m := &LinkMessage{Index: 5, Attrs: LinkAttrs{Name: "v10", Info: &LinkInfo{Kind: "vlan", Data: &VLAN{
		ID: &id, Protocol: &p, Flags: &VLANFlags{Flags: VLANFlagReorderHdr, Mask: ^uint32(0)}}}}}
	ref := map[string]any{"ifindex": 5.0, "ifname": "v10", "linkinfo": map[string]any{"info_kind": "vlan",
		"info_data": map[string]any{"protocol": "802.1Q", "id": 10.0, "flags": []any{"REORDER_HDR"}}}}
	if d := compareDump(m, ref); len(d) != 1 || !strings.Contains(d[0], "protocol") {
		t.Errorf("compareDump = %q, want one protocol difference", d)
	}
}

// compareDump lists where our decode of a link differs from iproute2's
// JSON for it.
func compareDump(m *LinkMessage, ref map[string]any) []string {
	var diffs []string
	check := func(what string, ours, ip any) {
		if !reflect.DeepEqual(norm(ours), norm(ip)) {
			diffs = append(diffs, fmt.Sprintf("%s: we decode %v, ip prints %v", what, ours, ip))
		}
	}
	check("ifindex", m.Index, ref["ifindex"])
	check("ifname", m.Attrs.Name, ref["ifname"])
	if m.Attrs.MTU != nil {
		check("mtu", *m.Attrs.MTU, ref["mtu"])
	}
	if len(m.Attrs.Address) > 0 {
		check("address", m.Attrs.Address.String(), ref["address"])
	}
	for _, o := range []struct {
		key string
		val *uint32
	}{{"gso_max_size", m.Attrs.GSOMaxSize}, {"gso_max_segs", m.Attrs.GSOMaxSegs}, {"tso_max_size", m.Attrs.TSOMaxSize},
		{"tso_max_segs", m.Attrs.TSOMaxSegs}, {"gro_max_size", m.Attrs.GROMaxSize}} {
		ipv, printed := ref[o.key]
		switch {
		case printed && o.val == nil:
			diffs = append(diffs, fmt.Sprintf("%s: we decode none, ip prints %v", o.key, ipv))
		case printed:
			check(o.key, *o.val, ipv)
		}
	}
	li, _ := ref["linkinfo"].(map[string]any)
	if m.Attrs.Info == nil {
		if li != nil {
			diffs = append(diffs, "linkinfo: we decode none, ip prints "+fmt.Sprint(li))
		}
		return diffs
	}
	if li == nil {
		return append(diffs, "linkinfo: ip prints none")
	}
	info := m.Attrs.Info
	check("info_kind", info.Kind, li["info_kind"])
	data, _ := li["info_data"].(map[string]any)
	if data == nil {
		data = map[string]any{}
	}
	switch d := info.Data.(type) {
	case nil:
		if len(data) > 0 {
			diffs = append(diffs, fmt.Sprintf("info_data: we decode none, ip prints %v", data))
		}
	case *VLAN:
		diffs = append(diffs, compareVLAN(d, data)...)
	case *Macvlan:
		diffs = append(diffs, compareMacvlan(d, data)...)
	case *Macvtap:
		diffs = append(diffs, compareMacvlan(&d.Macvlan, data)...)
	case *IPVlan:
		if d.Mode == nil {
			diffs = append(diffs, "ipvlan: the kernel always reports the mode")
		} else {
			check("ipvlan mode", d.Mode.String(), data["mode"])
		}
		if d.Flags != nil {
			check("ipvlan flags", d.Flags.String(), ipvlanFlagsJSON(data))
		}
	case *Bridge:
		if d.VLANFiltering != nil {
			check("bridge vlan_filtering", boolU8(*d.VLANFiltering), data["vlan_filtering"])
		}
		if d.STPState != nil {
			check("bridge stp_state", *d.STPState, data["stp_state"])
		}
		if d.VLANDefaultPVID != nil {
			check("bridge vlan_default_pvid", *d.VLANDefaultPVID, data["vlan_default_pvid"])
		}
		if d.VLANProtocol != nil {
			check("bridge vlan_protocol", d.VLANProtocol.String(), data["vlan_protocol"])
		}
	case *Dummy, *Veth:
	case *RawData:
		diffs = append(diffs, fmt.Sprintf("kind %q decoded as raw data: no driver", info.Kind))
	default:
		diffs = append(diffs, fmt.Sprintf("kind %q: no comparison for %T", info.Kind, d))
	}
	if info.SlaveKind != "" {
		check("info_slave_kind", info.SlaveKind, li["info_slave_kind"])
		sd, _ := li["info_slave_data"].(map[string]any)
		if p, ok := info.SlaveData.(*BridgePort); ok && sd != nil {
			if p.Hairpin != nil {
				check("port hairpin", *p.Hairpin, sd["hairpin"])
			}
			if p.Learning != nil {
				check("port learning", *p.Learning, sd["learning"])
			}
			if p.UnicastFlood != nil {
				check("port flood", *p.UnicastFlood, sd["flood"])
			}
			if p.Isolated != nil {
				check("port isolated", *p.Isolated, sd["isolated"])
			}
			if p.State != nil {
				states := []string{"disabled", "listening", "learning", "forwarding", "blocking"}
				if int(*p.State) < len(states) {
					check("port state", states[*p.State], sd["state"])
				}
			}
		}
	}
	return diffs
}

func compareVLAN(d *VLAN, data map[string]any) []string {
	var diffs []string
	check := func(what string, ours, ip any) {
		if !reflect.DeepEqual(norm(ours), norm(ip)) {
			diffs = append(diffs, fmt.Sprintf("vlan %s: we decode %v, ip prints %v", what, ours, ip))
		}
	}
	if d.ID == nil || d.Protocol == nil || d.Flags == nil {
		return []string{"vlan: the kernel always reports id, protocol and flags"}
	}
	check("id", *d.ID, data["id"])
	check("protocol", d.Protocol.String(), data["protocol"])
	var names []string
	for _, f := range []struct {
		bit  uint32
		name string
	}{{VLANFlagReorderHdr, "REORDER_HDR"}, {VLANFlagGVRP, "GVRP"}, {VLANFlagMVRP, "MVRP"},
		{VLANFlagLooseBinding, "LOOSE_BINDING"}, {VLANFlagBridgeBinding, "BRIDGE_BINDING"}} {
		if d.Flags.Flags&f.bit != 0 {
			names = append(names, f.name)
		}
	}
	ipFlags, _ := data["flags"].([]any)
	check("flags", names, ipFlags)
	qos := func(m []VLANQoSMapping) []any {
		var out []any
		for _, q := range m {
			out = append(out, map[string]any{"from": q.From, "to": q.To})
		}
		return out
	}
	ing, _ := data["ingress_qos"].([]any)
	eg, _ := data["egress_qos"].([]any)
	check("ingress_qos", qos(d.IngressQoS), ing)
	check("egress_qos", qos(d.EgressQoS), eg)
	return diffs
}

func compareMacvlan(d *Macvlan, data map[string]any) []string {
	var diffs []string
	check := func(what string, ours, ip any) {
		if !reflect.DeepEqual(norm(ours), norm(ip)) {
			diffs = append(diffs, fmt.Sprintf("macvlan %s: we decode %v, ip prints %v", what, ours, ip))
		}
	}
	if d.Mode == nil {
		return []string{"macvlan: the kernel always reports the mode"}
	}
	check("mode", d.Mode.String(), data["mode"])
	var flags MacvlanFlags
	if d.Flags != nil {
		flags = *d.Flags
	}
	check("nopromisc", flags&MacvlanFlagNoPromisc != 0, data["nopromisc"] == true)
	check("nodst", flags&MacvlanFlagNoDst != 0, data["nodst"] == true)
	opt := func(what string, p *uint32) {
		if p != nil {
			check(what, *p, data[what])
		} else if _, ok := data[what]; ok {
			diffs = append(diffs, fmt.Sprintf("macvlan %s: we decode none, ip prints %v", what, data[what]))
		}
	}
	opt("bcqueuelen", d.BcQueueLen)
	opt("usedbcqueuelen", d.BcQueueLenUsed)
	if *d.Mode == MacvlanModeSource {
		// ip prints the source list only for source-mode links.
		opt("macaddr_count", d.MacaddrCount)
	}
	if d.BcCutoff != nil {
		if v, ok := data["bclim"]; ok {
			check("bclim", *d.BcCutoff, v)
		}
	}
	var ours, ip []string
	for _, a := range d.MacaddrData {
		ours = append(ours, a.String())
	}
	if l, ok := data["macaddr_data"].([]any); ok {
		for _, a := range l {
			ip = append(ip, fmt.Sprint(a))
		}
	}
	slices.Sort(ours)
	slices.Sort(ip)
	check("macaddr_data", ours, ip)
	return diffs
}

// ipvlanFlagsJSON returns the flag ip prints for an ipvlan link, in
// whichever shape this iproute2 prints it: a "flags" string, or a
// boolean key per flag.
func ipvlanFlagsJSON(data map[string]any) any {
	if f, ok := data["flags"]; ok {
		return f
	}
	for _, k := range []string{"private", "vepa", "bridge"} {
		if data[k] == true {
			return k
		}
	}
	return "bridge"
}

// norm makes numbers comparable with JSON's float64 and nil slices with
// empty ones.
func norm(v any) any {
	switch x := v.(type) {
	case uint8:
		return float64(x)
	case uint16:
		return float64(x)
	case uint32:
		return float64(x)
	case int32:
		return float64(x)
	case int:
		return float64(x)
	case []string:
		if len(x) == 0 {
			return nil
		}
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []any:
		if len(x) == 0 {
			return nil
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = norm(e)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = norm(e)
		}
		return out
	}
	return v
}
