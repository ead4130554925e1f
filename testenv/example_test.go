package testenv_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/netlink"

	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/testenv"
)

// A sandboxed test: a parent wired to a switch with hairpin on, and a
// macvlan on it, all in throwaway namespaces removed when the test ends.
// Outside root it skips saying why; without macvlan in the kernel it skips
// (or, in CI with macvlan expected, fails).
func ExampleNewParent() {
	var t *testing.T // the test's own t

	testenv.Require(t, testenv.FeatureMacvlan)
	p := testenv.NewParent(t, testenv.ParentOptions{Hairpin: true})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := p.Host.Dial(t) // an rtnl.Conn inside the host namespace
	mode := rtnl.MacvlanModeVEPA
	err := c.NewLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{
		Name: "mv0", Link: &p.Index,
		Info: &rtnl.LinkInfo{Kind: "macvlan", Data: &rtnl.Macvlan{Mode: &mode}},
	}}, netlink.Create|netlink.Excl)
	if err != nil {
		t.Fatal(err)
	}
	p.Host.SetUp(t, "mv0")
	p.Host.AddAddr(t, "mv0", netip.MustParsePrefix("10.0.0.2/24"))
}

// Code that must run inside a namespace (opening a socket, reading a
// per-namespace sysctl) goes through Do, on a locked OS thread that is
// checked to be back home afterwards.
func ExampleNetNS_Do() {
	var t *testing.T

	ns := testenv.NewNetNS(t)
	err := ns.Do(func() error {
		// Sockets opened here belong to ns for their whole life.
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.WriteSysctl("net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
}

// Tests for kernel features this machine lacks say so and point at the VM
// tier: "needs vlan: kernel 6.18.0 has no 8021q (…): … run `make test-vm
// KERNEL=6.1`".
func ExampleRequire() {
	var t *testing.T

	testenv.Require(t, testenv.FeatureVLAN, testenv.FeatureTcpdump)
	// … create VLAN links in a testenv.NewNetNS(t) …
}
