package verify_test

import (
	"fmt"
	"net/netip"

	"github.com/vmlink/vmlink/verify"
)

// Model says, without touching the system, what a topology should do: here
// two bridge-mode macvlans and a VEPA one on eth0, whose switch does not
// reflect frames. Run probes the same topology live and compares.
func ExampleModel() {
	no := false
	addr := netip.MustParsePrefix
	topo := verify.Topology{
		Parent: verify.Parent{Name: "eth0", NetNS: "host", Addrs: []netip.Prefix{addr("192.0.2.1/24")}},
		Switch: verify.Switch{Reflects: &no},
		Endpoints: []verify.Endpoint{
			{Name: "web", NetNS: "web", Interface: "eth0", Kind: "macvlan", Mode: "bridge", Addrs: []netip.Prefix{addr("192.0.2.10/24")}},
			{Name: "db", NetNS: "db", Interface: "eth0", Kind: "macvlan", Mode: "bridge", Addrs: []netip.Prefix{addr("192.0.2.11/24")}},
			{Name: "vm", NetNS: "vm", Interface: "eth0", Kind: "macvlan", Mode: "vepa", Addrs: []netip.Prefix{addr("192.0.2.12/24")}},
		},
	}
	exp := verify.Model(topo)
	for _, p := range exp.Pairs {
		if p.From > p.To {
			continue
		}
		fmt.Printf("%s → %s: %s: %s\n", exp.Endpoints[p.From].Name, exp.Endpoints[p.To].Name, p.Reach, p.Why)
	}
	// Output:
	// web → db: reachable: bridge-mode siblings reach each other directly inside the kernel
	// web → vm: blocked: bridge and vepa modes never talk inside the kernel; the switch would have to reflect, and it does not
	// web → host: blocked: a macvlan cannot reach its parent's own stack: the kernel never hands its frames to the parent (host-to-macvlan isolation), and the switch does not reflect them
	// db → vm: blocked: bridge and vepa modes never talk inside the kernel; the switch would have to reflect, and it does not
	// db → host: blocked: a macvlan cannot reach its parent's own stack: the kernel never hands its frames to the parent (host-to-macvlan isolation), and the switch does not reflect them
	// vm → host: blocked: a macvlan cannot reach its parent's own stack: the kernel never hands its frames to the parent (host-to-macvlan isolation), and the switch does not reflect them
}
