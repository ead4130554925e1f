package rtnl

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIntegrationStrictMode checks that Dial turns on what Strict means
// (NETLINK_GET_STRICT_CHK and NETLINK_EXT_ACK) and that the kernel acts on
// it: a link dump request with junk in its header is refused with EINVAL
// and the kernel's extended-ACK text, where a lax socket gets a full dump.
func TestIntegrationStrictMode(t *testing.T) {
	ns := newTestNS(t)
	c := ns.dial(t)
	ctx := testCtx(t)
	rc, err := c.sock.(*nlSocket).nc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []struct {
		name string
		opt  int
	}{{"NETLINK_GET_STRICT_CHK", unix.NETLINK_GET_STRICT_CHK}, {"NETLINK_EXT_ACK", unix.NETLINK_EXT_ACK}} {
		var v int
		var gerr error
		if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_NETLINK, opt.opt) }); err != nil {
			t.Fatal(err)
		}
		if gerr != nil || v != 1 {
			t.Errorf("%s = %d (%v), want 1", opt.name, v, gerr)
		}
	}
	// struct ifinfomsg with ifi_change set: strict checking refuses it in a
	// dump request (rtnl_valid_dump_ifinfo_req).
	body := make([]byte, unix.SizeofIfInfomsg)
	body[12] = 1
	_, err = c.Dump(ctx, unix.RTM_GETLINK, rawBody(body))
	var oe *OpError
	if !errors.Is(err, unix.EINVAL) || !errors.As(err, &oe) || !strings.Contains(oe.Message, "dump request") {
		t.Errorf("dump with junk in the header: %v; want EINVAL with the kernel's message about the dump request", err)
	}
	// The refusal ended the dump cleanly: the socket still works.
	if _, err := c.Links(ctx); err != nil {
		t.Errorf("dump after the refusal: %v", err)
	}
}
