package dataplane

import (
	"context"
	"testing"
	"time"

	"github.com/mdlayher/netlink"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/testenv"
)

// TestHairpinAndPortState sets a bridge port's hairpin mode on and off and
// reads it back from the kernel, and checks that portForwarding follows the
// port state the kernel reports (disabled while down, forwarding once up
// with STP off).
func TestHairpinAndPortState(t *testing.T) {
	testenv.Require(t, testenv.FeaturePrivileged, testenv.FeatureVeth, testenv.FeatureBridge)
	ns := testenv.NewNetNS(t)
	c := ns.Dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mk := func(m *rtnl.LinkMessage) {
		t.Helper()
		if err := c.NewLink(ctx, m, netlink.Create|netlink.Excl); err != nil {
			t.Fatal(err)
		}
	}
	mk(&rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "br0", Info: &rtnl.LinkInfo{Kind: "bridge"}}})
	mk(&rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "p0", Info: &rtnl.LinkInfo{Kind: "veth",
		Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "p1"}}}}}})
	h := link.New(c)
	br := "br0"
	if err := h.Set(ctx, "p0", link.Change{Master: &br}); err != nil {
		t.Fatal(err)
	}
	if p0 := ns.Link(t, "p0"); p0.Attrs.Master == nil || int32(*p0.Attrs.Master) != ns.Link(t, "br0").Index {
		t.Fatalf("p0's master is %v, want br0", p0.Attrs.Master)
	}
	port := func() *rtnl.LinkMessage {
		t.Helper()
		m := ns.Link(t, "p0")
		if m.Attrs.Info == nil {
			t.Fatal("p0: no IFLA_LINKINFO")
		}
		return m
	}
	for _, on := range []bool{true, false} {
		if err := h.Set(ctx, "p0", link.Change{BridgePort: &link.BridgePortChange{Hairpin: &on}}); err != nil {
			t.Fatalf("hairpin %v: %v", on, err)
		}
		bp, ok := port().Attrs.Info.SlaveData.(*rtnl.BridgePort)
		if !ok || bp.Hairpin == nil || *bp.Hairpin != on {
			t.Fatalf("after hairpin %v the kernel reports %+v", on, port().Attrs.Info.SlaveData)
		}
	}
	forwarding := func() bool {
		t.Helper()
		l, err := h.Get(ctx, "p0")
		if err != nil {
			t.Fatal(err)
		}
		return portForwarding(l)
	}
	if forwarding() {
		t.Error("a port that is down is reported forwarding")
	}
	up := true
	for _, name := range []string{"br0", "p1", "p0"} {
		if err := h.Set(ctx, name, link.Change{Up: &up}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !forwarding() {
		if time.Now().After(deadline) {
			t.Fatalf("port state %+v: not forwarding 10 s after up with STP off", port().Attrs.Info.SlaveData)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
