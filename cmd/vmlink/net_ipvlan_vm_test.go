//go:build vm

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/vmlink/vmlink/internal/netns"
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
	addVethParent(t, host)
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

// TestNetIPVlanFlagCLI: `-o ipvlan_flag=F` on `net create -d ipvlan`
// takes effect: the container's interface has the flag, as `vmlink -j link
// show` (iproute2's keys) reports it from the kernel. Needs ipvlan: the VM
// tier.
func TestNetIPVlanFlagCLI(t *testing.T) {
	host, ctr, network := ipvlanNetLab(t, "if", "ipf")
	// A subnet per flag keeps this test about the flag: taking the same
	// address back at once is TestNetIPVlanReconnectCLI's.
	for i, flag := range []string{"private", "vepa", "bridge"} {
		if code, _, e := runLabCLI("-n", host, "net", "create", "-d", "ipvlan", "-o", "parent=p0", "-o", "ipvlan_flag="+flag, "--subnet", fmt.Sprintf("10.48.%d.0/24", i), network); code != exitOK {
			t.Fatalf("create with ipvlan_flag=%s: exit %d %s", flag, code, e)
		}
		if code, _, e := runLabCLI("-n", host, "net", "connect", network, ctr); code != exitOK {
			t.Fatalf("connect: exit %d %s", code, e)
		}
		code, out, e := runLabCLI("-n", ctr, "-j", "link", "show", "eth0")
		if code != exitOK {
			t.Fatalf("link show: exit %d %s", code, e)
		}
		var links []struct {
			LinkInfo struct {
				Kind string                     `json:"info_kind"`
				Data map[string]json.RawMessage `json:"info_data"`
			} `json:"linkinfo"`
		}
		if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
			t.Fatalf("link show printed %s: %v", out, err)
		}
		d := links[0].LinkInfo
		if d.Kind != "ipvlan" || string(d.Data[flag]) != "true" || string(d.Data["mode"]) != `"l2"` {
			t.Errorf("ipvlan_flag=%s: the kernel has %s", flag, out)
		}
		for _, cmd := range [][]string{{"net", "disconnect", network, ctr}, {"net", "rm", network}} {
			if code, _, e := runLabCLI(append([]string{"-n", host}, cmd...)...); code != exitOK {
				t.Fatalf("%v: exit %d %s", cmd, code, e)
			}
		}
	}
}

// TestNetIPVlanReconnectCLI: a network removed and made again at once, on
// the same parent with the same subnet, takes the same container and
// address back (10.48.0.2). An ipvlan's addresses stay on its parent's
// port as long as the link is registered, and a namespace deleted with the
// link still in it is torn down later, by the kernel's cleanup work, or
// never while a process is still in it: disconnect must delete the link
// itself, or the next connect meets "Address already assigned to an ipvlan
// device". First with the old namespace held open (as a process left in
// the container would), then round after round racing the kernel's
// cleanup. Needs ipvlan: the VM tier.
func TestNetIPVlanReconnectCLI(t *testing.T) {
	host, ctr, network := ipvlanNetLab(t, "ir", "ipr")
	run := func(when string, cmd ...string) {
		t.Helper()
		if code, _, e := runLabCLI(append([]string{"-n", host}, cmd...)...); code != exitOK {
			t.Fatalf("%s: %v: exit %d %s", when, cmd, code, e)
		}
	}
	up := func(when string) {
		t.Helper()
		run(when, "net", "create", "-d", "ipvlan", "-o", "parent=p0", "--subnet", "10.48.0.0/24", network)
		run(when, "net", "connect", "--ip", "10.48.0.2", network, ctr)
	}
	down := func(when string) {
		t.Helper()
		run(when, "net", "disconnect", network, ctr)
		run(when, "net", "rm", network)
	}
	up("first")
	held, err := netns.Open(ctr)
	if err != nil {
		t.Fatal(err)
	}
	down("first")
	up("with the old namespace held open")
	held.Close()
	down("with the old namespace held open")
	const rounds = 100
	for i := range rounds {
		when := fmt.Sprintf("round %d of %d", i+1, rounds)
		up(when)
		down(when)
	}
}

// ipvlanNetLab is a sandbox host namespace HOST with a veth parent p0, the
// name of a container namespace CTR and of a network, all removed (with
// whatever the test connected) when the test ends. Needs ipvlan.
func ipvlanNetLab(t *testing.T, tag, net string) (host, ctr, network string) {
	t.Helper()
	testenv.Require(t, testenv.FeaturePrivileged, testenv.FeatureVeth, testenv.FeatureIPVlan)
	prefix := fmt.Sprintf("vmlt-%s%d-", tag, os.Getpid())
	host, ctr = prefix+"host", prefix+"c1"
	network = fmt.Sprintf("%s%d", net, os.Getpid())
	h, err := netns.Create(host)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() {
		runLabCLI("-n", host, "net", "disconnect", network, ctr)
		runLabCLI("-n", host, "net", "rm", network)
		netns.Delete(ctr)
		netns.Delete(host)
	})
	addVethParent(t, host)
	return host, ctr, network
}
