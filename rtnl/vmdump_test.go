//go:build vm

package rtnl

// TestVMCaptureDumps is the VM tier's half of the decode tests: this
// machine's kernel has no 8021q, ipvlan or dummy, and the VM guest has no
// strace or python for testdata/capture.sh. So here iproute2 creates the
// links in a throwaway namespace, the kernel's RTM_NEWLINK reply is read
// raw (no decoding of ours in between), decoded with LinkMessage and
// checked against `ip -d -j link show`, the same reference the host-side
// TestDecodeDumps uses. With -v it also prints each reply in capture.sh's
// format between "--- capture NAME" lines, which is how
// testdata/dumps/{vlan,ipvlan,dummy}-*.txt were made:
//
//	go test -c -tags vm -o /tmp/rtnl.test ./rtnl
//	bin/vm/vmtest --kernel 6.1 -- /tmp/rtnl.test -test.run TestVMCaptureDumps -test.v

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// vmDumpCases are the links made with ip; p0 is a veth.
var vmDumpCases = []struct {
	name, dev string
	add       string
}{
	{"vlan-id", "v10", "link add v10 link p0 type vlan id 10"},
	{"vlan-issue-example", "q101", "link add q101 link p0 type vlan protocol 802.1ad id 101 reorder_hdr off loose_binding on ingress-qos-map 1:2 egress-qos-map 3:4"},
	{"vlan-flags-on", "v30", "link add v30 link p0 type vlan id 30 reorder_hdr off gvrp on mvrp on loose_binding on bridge_binding on"},
	{"vlan-qos", "v40", "link add v40 link p0 type vlan id 40 ingress-qos-map 0:1 1:2 7:7 egress-qos-map 1:0 2:5 6:7"},
	{"vlan-id-max", "v4094", "link add v4094 link p0 type vlan protocol 802.1Q id 4094"},
	{"ipvlan-l3-private", "ipv1", "link add ipv1 link p2 type ipvlan mode l3 private"},
	{"ipvlan-l2", "ipv2", "link add ipv2 link p4 type ipvlan mode l2"},
	{"ipvlan-l3s-vepa", "ipv3", "link add ipv3 link p6 type ipvlan mode l3s vepa"},
	{"ipvlan-noopts", "ipv4", "link add ipv4 link p8 type ipvlan"},
	{"dummy", "d0", "link add d0 type dummy"},
}

func TestVMCaptureDumps(t *testing.T) {
	ns := newTestNS(t)
	c := ns.dial(t)
	ctx := testCtx(t)
	// ipvlan mode and flags belong to the parent (all ipvlan links of one
	// parent share them), so each ipvlan case gets a parent of its own.
	for _, p := range []string{"p0", "p2", "p4", "p6", "p8"} {
		ns.ip(t, nil, "link", "add", p, "type", "veth", "peer", "name", p+"x")
	}
	kernel := kernelRelease(t)
	for _, tc := range vmDumpCases {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := ns.ipErr(nil, strings.Fields(tc.add)...); err != nil {
				kind := "vlan"
				switch {
				case strings.Contains(tc.add, "ipvlan"):
					kind = "ipvlan"
				case strings.Contains(tc.add, "dummy"):
					kind = "dummy"
				}
				requireFeature(t, kind, false)
				t.Fatalf("ip %s: %v: %s", tc.add, err, out)
			}
			// The request `ip -d link show dev X` makes, minus its
			// IFLA_EXT_MASK (which only adds VF and stats data).
			msgs, err := c.Execute(ctx, unix.RTM_GETLINK, 0, &LinkMessage{Attrs: LinkAttrs{Name: tc.dev}})
			if err != nil {
				t.Fatalf("RTM_GETLINK %s: %v", tc.dev, err)
			}
			var raw *netlink.Message
			for i := range msgs {
				if msgs[i].Header.Type == unix.RTM_NEWLINK {
					raw = &msgs[i]
				}
			}
			if raw == nil {
				t.Fatalf("no RTM_NEWLINK for %s in %d messages", tc.dev, len(msgs))
			}
			js := ns.ip(t, nil, "-d", "-j", "-p", "link", "show", "dev", tc.dev)
			var ref []map[string]any
			if err := json.Unmarshal([]byte(js), &ref); err != nil || len(ref) != 1 {
				t.Fatalf("ip -d -j link show dev %s: %v\n%s", tc.dev, err, js)
			}
			var m LinkMessage
			if err := m.UnmarshalBinary(raw.Data); err != nil {
				t.Fatalf("decode the kernel's reply: %v", err)
			}
			for _, d := range compareDump(&m, ref[0]) {
				t.Error(d)
			}
			t.Logf("--- capture %s\n# ip -d link show dev %s\n# kernel reply (RTM_NEWLINK) for %s\n"+
				"# captured by TestVMCaptureDumps (rtnl/vmdump_test.go) from %s on Linux %s\n"+
				"type %d\nflags 0x%x\nbody %x\n--- json %s\n%s--- end %s",
				tc.name, tc.dev, tc.dev, strings.TrimSpace(ns.ip(t, nil, "-V")), kernel,
				raw.Header.Type, uint16(raw.Header.Flags), raw.Data, tc.name, js, tc.name)
		})
	}
}

func kernelRelease(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
