package dataplane_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/vmlink/vmlink/dataplane"
)

// Up applies a topology atomically; Down removes exactly what it created.
// (Not run as a test: it needs root.)
func ExampleUp() {
	topo, err := dataplane.Parse(strings.NewReader(`
name: demo
host: demo-host
parents:
  - name: eth0
    sandbox: {switch: demo-switch, hairpin: true}
networks:
  - {name: macnet, parent: eth0, mode: vepa, subnets: [10.0.10.0/24], gateways: [10.0.10.1]}
endpoints:
  - {name: container1, interfaces: [{network: macnet}]}
  - {name: container2, interfaces: [{network: macnet}]}
`))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	built, err := dataplane.Up(ctx, topo, nil)
	if err != nil {
		log.Fatal(err) // everything created so far was removed again
	}
	defer dataplane.Down(ctx, topo, nil)
	for _, it := range built.Interfaces {
		fmt.Println(it.NetNS, it.Name, it.Addrs)
	}
	// built.VerifyTopologies() is what verify.Run judges.
}

// Labs ship in the binary; a prefix keeps their namespaces unique.
func ExampleLookupLab() {
	lab, err := dataplane.LookupLab("host-shim")
	if err != nil {
		log.Fatal(err)
	}
	lab = lab.WithPrefix("vmlab-42-")
	for _, ph := range lab.Phases {
		fmt.Println(ph.Name, ph.Topology.Host, len(ph.Topology.HostShims))
	}
	// Output:
	// isolation vmlab-42-host 0
	// shim vmlab-42-host 1
}
