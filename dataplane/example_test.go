package dataplane_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"strings"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/link"
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

// BuildEndpointLink is how a CNI plugin's ADD builds the container's
// interface: a macvlan on the host's eth0, created as eth0 inside the
// namespace the runtime names by path. (Not run as a test: it needs root.)
func ExampleBuildEndpointLink() {
	ctx := context.Background()
	ep, err := dataplane.BuildEndpointLink(ctx, dataplane.EndpointLinkSpec{
		Link:   &link.Macvlan{Common: link.Common{Name: "eth0", Parent: "eth0", MTU: 1500}, Mode: link.MacvlanModeBridge},
		NetNS:  dataplane.Namespace{Path: "/var/run/netns/cni-1234"},
		Mark:   dataplane.Mark{Topology: "cni"},
		Object: "ep/c0ffee/eth0",
		Addrs:  []netip.Prefix{netip.MustParsePrefix("10.0.10.5/24")},
		Routes: []dataplane.Route{{Gateway: netip.MustParseAddr("10.0.10.1")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = ep.Announce()
	fmt.Println(ep.Name, ep.Index, ep.MAC)
	// DEL: idempotent, and only ever removes a link carrying the mark.
	if err := dataplane.RemoveEndpointLink(ctx, ep.NetNS, "eth0", dataplane.Mark{Topology: "cni"}); err != nil {
		log.Fatal(err)
	}
}
