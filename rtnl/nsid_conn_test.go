package rtnl

import (
	"context"
	"encoding/hex"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// goldenNewNSID7 is the kernel's RTM_NEWNSID answer for a namespace with id
// 7 (strace of `ip netns list` after `ip netns set … 7`, Linux 6.18).
var goldenNewNSID7, _ = hex.DecodeString("000000000800010007000000")

func TestNSIDOfOverFakeKernel(t *testing.T) {
	c, k := newFake(t, func(reqs []netlink.Message) ([]netlink.Message, error) {
		return []netlink.Message{
			{Header: netlink.Header{Type: unix.RTM_NEWNSID, Sequence: reqs[0].Header.Sequence}, Data: goldenNewNSID7},
			ackFor(reqs[0], 0, ""),
		}, nil
	})
	id, err := c.NSIDOf(context.Background(), 6)
	if err != nil || id != 7 {
		t.Fatalf("NSIDOf = %d, %v; want 7", id, err)
	}
	// ip sends it without NLM_F_ACK; Conn asks for the ACK on every
	// request so that the exchange has a definite end.
	if h := k.sends[0][0].Header; h.Type != unix.RTM_GETNSID || h.Flags != netlink.Request|netlink.Acknowledge {
		t.Errorf("request header %+v, want RTM_GETNSID Request|Ack", h)
	}
	if string(k.sends[0][0].Data) != string(goldenGetNSIDFD6) {
		t.Errorf("request body %x, want ip's %x", k.sends[0][0].Data, goldenGetNSIDFD6)
	}
	if _, err := c.NSIDOf(context.Background(), -1); err == nil {
		t.Error("negative fd accepted")
	}
}

// TestIntegrationNSIDOf asks for the id of one namespace in another before
// and after `ip netns set` gives it one.
func TestIntegrationNSIDOf(t *testing.T) {
	requirePrivileged(t)
	a, b := newTestNS(t), newTestNS(t)
	c := a.dial(t)
	ctx := testCtx(t)
	if id, err := c.NSIDOf(ctx, b.fd()); err != nil || id != NSIDNotAssigned {
		t.Fatalf("NSIDOf before any was set = %d, %v; want %d", id, err, NSIDNotAssigned)
	}
	a.ip(t, nil, "netns", "set", b.Name(), "7")
	if id, err := c.NSIDOf(ctx, b.fd()); err != nil || id != 7 {
		t.Fatalf("NSIDOf after ip netns set %s 7 = %d, %v", b.Name(), id, err)
	}
}
