package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
)

// net rm reconciles first: an endpoint whose container namespace is gone
// does not block the removal; one that still exists does, with exit 1 as
// docker's "has active endpoints".
func TestNetRemoveReconciles(t *testing.T) {
	requireLabRoot(t)
	prefix := fmt.Sprintf("vmlt-rm%d-", os.Getpid())
	host, network := prefix+"host", fmt.Sprintf("rmnet%d", os.Getpid())
	cleanupPrefix(t, prefix)
	h, err := netns.Create(host)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() { runLabCLI("-n", host, "net", "rm", network) })
	c, err := rtnl.DialNetNS(host, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.NewLink(context.Background(), &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "p0", Info: &rtnl.LinkInfo{Kind: "veth",
		Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "p0peer"}}}}}}, 0x400|0x200)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		code, _, errOut := runLabCLI(append([]string{"-n", host}, args...)...)
		return code, errOut
	}
	if code, e := run("net", "create", "--subnet", "10.48.0.0/24", "-o", "parent=p0", network); code != exitOK {
		t.Fatalf("create: %s", e)
	}
	for _, ctr := range []string{prefix + "c1", prefix + "c2"} {
		if code, e := run("net", "connect", network, ctr); code != exitOK {
			t.Fatalf("connect %s: %s", ctr, e)
		}
	}
	// c1 still runs: the removal is refused as docker refuses it.
	if code, e := run("net", "rm", network); code != exitFailed || !strings.Contains(e, "active endpoints") {
		t.Fatalf("rm with live endpoints: exit %d %q, want %d", code, e, exitFailed)
	}
	// Both containers gone by hand: nothing is active any more.
	for _, ctr := range []string{prefix + "c1", prefix + "c2"} {
		if err := netns.Delete(ctr); err != nil {
			t.Fatal(err)
		}
	}
	if code, e := run("net", "rm", network); code != exitOK {
		t.Fatalf("rm after the containers vanished: exit %d %q", code, e)
	}
	if code, _ := run("net", "inspect", network); code != exitFailed {
		t.Errorf("the network survived its rm")
	}
}

// A host shim deleted by hand is noticed by net ls (said on stderr) and
// no longer shown by inspect.
func TestNetShimDeletedByHand(t *testing.T) {
	requireLabRoot(t)
	prefix := fmt.Sprintf("vmlt-sh%d-", os.Getpid())
	host, network := prefix+"host", fmt.Sprintf("shnet%d", os.Getpid())
	cleanupPrefix(t, prefix)
	h, err := netns.Create(host)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(func() { runLabCLI("-n", host, "net", "rm", network) })
	ipRun(t, host, "link", "add", "p0", "type", "veth", "peer", "name", "p0peer")
	if code, _, e := runLabCLI("-n", host, "net", "create", "--subnet", "10.49.0.0/24", "--ip-range", "10.49.0.128/25",
		"-o", "parent=p0", "--host-shim", network); code != exitOK {
		t.Fatalf("create: %s", e)
	}
	code, out, e := runLabCLI("-n", host, "net", "inspect", network)
	var shim string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `"Interface":`) {
			shim = strings.Trim(strings.TrimSpace(strings.SplitN(l, ":", 2)[1]), `",`)
		}
	}
	if code != exitOK || shim == "" {
		t.Fatalf("inspect: exit %d, no host shim interface: %s %s", code, out, e)
	}
	ipRun(t, host, "link", "del", shim)
	code, _, e = runLabCLI("-n", host, "net", "ls")
	if code != exitOK || !strings.Contains(e, "host shim "+shim+" is gone") {
		t.Errorf("net ls after the shim was deleted: exit %d, stderr %q", code, e)
	}
	if _, out, _ := runLabCLI("-n", host, "net", "inspect", network); strings.Contains(out, "HostShim") {
		t.Errorf("inspect still shows the deleted shim:\n%s", out)
	}
}
