//go:build vm

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/testenv"
)

// TestNetIPVlanCLI is the issue's command line as typed: `net create -d
// ipvlan -o parent=p0 -o ipvlan_mode=l2`, two connects, inspect, and the
// teardown leaving no namespace behind. (Reachability between the two is
// TestNetworkIPVlan's, in package dataplane.) It needs ipvlan: the VM tier.
func TestNetIPVlanCLI(t *testing.T) {
	testenv.Require(t, testenv.FeaturePrivileged, testenv.FeatureVeth, testenv.FeatureIPVlan)
	prefix := fmt.Sprintf("vmlt-iv%d-", os.Getpid())
	host := prefix + "host"
	network := fmt.Sprintf("ipv%d", os.Getpid())
	h, err := netns.Create(host)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() {
		for _, c := range []string{"c1", "c2"} {
			runLabCLI("-n", host, "net", "disconnect", network, prefix+c)
			netns.Delete(prefix + c)
		}
		runLabCLI("-n", host, "net", "rm", network)
		netns.Delete(host)
	})
	c, err := rtnl.DialNetNS(host, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.NewLink(context.Background(), &rtnl.LinkMessage{Flags: 1, Change: 1, Attrs: rtnl.LinkAttrs{Name: "p0", Info: &rtnl.LinkInfo{Kind: "veth",
		Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "p0peer"}}}}}}, 0x400|0x200); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if code, _, e := runLabCLI("-n", host, "net", "create", "-d", "ipvlan", "-o", "parent=p0", "-o", "ipvlan_mode=l2", "--subnet", "10.49.0.0/24", network); code != exitOK {
		t.Fatalf("create: exit %d %s", code, e)
	}
	for _, ctr := range []string{"c1", "c2"} {
		if code, _, e := runLabCLI("-n", host, "net", "connect", network, prefix+ctr); code != exitOK {
			t.Fatalf("connect %s: exit %d %s", ctr, code, e)
		}
	}
	code, out, e := runLabCLI("-n", host, "net", "inspect", network)
	if code != exitOK {
		t.Fatalf("inspect: %s", e)
	}
	var insp []struct {
		Driver     string
		Options    map[string]string
		Containers map[string]struct{ IPv4Address string }
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		t.Fatal(err)
	}
	got := insp[0]
	if got.Driver != "ipvlan" || got.Options["ipvlan_mode"] != "l2" || got.Containers[prefix+"c1"].IPv4Address != "10.49.0.2/24" || got.Containers[prefix+"c2"].IPv4Address != "10.49.0.3/24" {
		t.Fatalf("inspect:\n%s", out)
	}
	for _, ctr := range []string{"c1", "c2"} {
		if code, _, e := runLabCLI("-n", host, "net", "disconnect", network, prefix+ctr); code != exitOK {
			t.Fatalf("disconnect %s: exit %d %s", ctr, code, e)
		}
		if netns.Exists(prefix + ctr) {
			t.Errorf("namespace %s kept after its last network", prefix+ctr)
		}
	}
	if code, _, e := runLabCLI("-n", host, "net", "rm", network); code != exitOK {
		t.Fatalf("rm: exit %d %s", code, e)
	}
}
