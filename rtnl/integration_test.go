package rtnl

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/internal/sandbox"
)

// requirePrivileged skips a test that needs root to create network
// namespaces, with the reason and what to run instead (and fails instead
// under CI=true when VMLINK_EXPECT_FEATURES lists privileged, and skips
// with -short). It is testenv.Require from internal/sandbox: testenv itself
// builds on rtnl, so rtnl's in-package tests cannot import it.
func requirePrivileged(tb testing.TB) {
	tb.Helper()
	sandbox.Require(tb, sandbox.FeaturePrivileged)
}

// testNS is a throwaway named network namespace (sandbox.NewNetNS, the
// same as testenv.NewNetNS), removed with every link in it in t.Cleanup,
// even when the test fails. Sockets dialled into it are closed first.
type testNS struct {
	*sandbox.NetNS
}

var nsCount atomic.Int32

func newTestNS(tb testing.TB) *testNS {
	tb.Helper()
	nsCount.Add(1)
	return &testNS{sandbox.NewNetNS(tb)}
}

func (ns *testNS) fd() int { return ns.FD() }

// dial opens a Conn in the namespace, closed in t.Cleanup.
func (ns *testNS) dial(tb testing.TB) *Conn {
	tb.Helper()
	c, err := Dial(&DialOptions{NetNS: ns.fd()})
	if err != nil {
		tb.Fatalf("Dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// ip runs iproute2 (the reference) inside the namespace; stdin may be nil.
func (ns *testNS) ip(tb testing.TB, stdin []byte, args ...string) string {
	tb.Helper()
	out, err := ns.ipErr(stdin, args...)
	if err != nil {
		tb.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (ns *testNS) ipErr(stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"-n", ns.Name()}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// testLink is a test-only RTM_NEWLINK/RTM_DELLINK body, independent of the
// LinkMessage codec so these tests exercise the socket layer alone.
type testLink struct {
	index  int32
	flags  uint32 // ifi_flags, with ifi_change = flags
	name   string
	parent uint32
	group  uint32
	mac    net.HardwareAddr
	kind   string
	mode   uint32 // IFLA_MACVLAN_MODE when kind is macvlan/macvtap
	peer   string // veth peer name
	vlanID uint16 // IFLA_VLAN_ID when kind is vlan
}

func (l testLink) MarshalBinary() ([]byte, error) {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:], uint32(l.index))
	binary.NativeEndian.PutUint32(b[8:], l.flags)
	binary.NativeEndian.PutUint32(b[12:], l.flags)
	ae := netlink.NewAttributeEncoder()
	if l.parent != 0 {
		ae.Uint32(unix.IFLA_LINK, l.parent)
	}
	if l.name != "" {
		ae.String(unix.IFLA_IFNAME, l.name)
	}
	if l.group != 0 {
		ae.Uint32(unix.IFLA_GROUP, l.group)
	}
	if l.mac != nil {
		ae.Bytes(unix.IFLA_ADDRESS, l.mac)
	}
	if l.kind != "" {
		ae.Nested(unix.IFLA_LINKINFO, func(nae *netlink.AttributeEncoder) error {
			nae.Bytes(unix.IFLA_INFO_KIND, []byte(l.kind))
			switch {
			case l.kind == "vlan":
				nae.Nested(unix.IFLA_INFO_DATA, func(d *netlink.AttributeEncoder) error {
					d.Uint16(unix.IFLA_VLAN_ID, l.vlanID)
					return nil
				})
			case l.mode != 0:
				nae.Nested(unix.IFLA_INFO_DATA, func(d *netlink.AttributeEncoder) error {
					d.Uint32(unix.IFLA_MACVLAN_MODE, l.mode)
					return nil
				})
			case l.peer != "":
				nae.Nested(unix.IFLA_INFO_DATA, func(d *netlink.AttributeEncoder) error {
					d.Do(1 /* VETH_INFO_PEER */, func() ([]byte, error) {
						pe := netlink.NewAttributeEncoder()
						pe.String(unix.IFLA_IFNAME, l.peer)
						a, err := pe.Encode()
						return append(make([]byte, unix.SizeofIfInfomsg), a...), err
					})
					return nil
				})
			}
			return nil
		})
	}
	a, err := ae.Encode()
	return append(b, a...), err
}

// linkNames decodes the names (and groups) of a link dump, test-side.
func linkNames(tb testing.TB, msgs []netlink.Message) map[string]uint32 {
	tb.Helper()
	out := make(map[string]uint32)
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK {
			tb.Fatalf("dump message type %d", m.Header.Type)
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfInfomsg:])
		if err != nil {
			tb.Fatal(err)
		}
		var name string
		var group uint32
		for ad.Next() {
			switch ad.Type() {
			case unix.IFLA_IFNAME:
				name = ad.String()
			case unix.IFLA_GROUP:
				group = ad.Uint32()
			}
		}
		if err := ad.Err(); err != nil {
			tb.Fatal(err)
		}
		out[name] = group
	}
	return out
}

// vethParent creates veth pair p0/p1 (both up) and returns p0's index.
func vethParent(tb testing.TB, ctx context.Context, c *Conn) uint32 {
	tb.Helper()
	if _, err := c.Execute(ctx, unix.RTM_NEWLINK, netlink.Create|netlink.Excl,
		testLink{name: "p0", kind: "veth", peer: "p1", flags: unix.IFF_UP}); err != nil {
		tb.Fatalf("create veth: %v", err)
	}
	if _, err := c.Execute(ctx, unix.RTM_NEWLINK, 0, testLink{name: "p1", flags: unix.IFF_UP}); err != nil {
		tb.Fatalf("set p1 up: %v", err)
	}
	return linkIndex(tb, ctx, c, "p0")
}

func linkIndex(tb testing.TB, ctx context.Context, c *Conn, name string) uint32 {
	tb.Helper()
	msgs, err := c.Execute(ctx, unix.RTM_GETLINK, 0, testLink{name: name})
	if err != nil || len(msgs) != 1 {
		tb.Fatalf("get %s: %v (%d answers)", name, err, len(msgs))
	}
	return binary.NativeEndian.Uint32(msgs[0].Data[4:8])
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

func macvlanReqs(parent uint32, n int, group uint32, mode uint32) []Request {
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = Request{
			Type:  unix.RTM_NEWLINK,
			Flags: netlink.Create | netlink.Excl,
			Body:  testLink{name: fmt.Sprintf("mv%d", i), parent: parent, group: group, kind: "macvlan", mode: mode},
		}
	}
	return reqs
}

func TestIntegrationDialReadBuffer(t *testing.T) {
	ns := newTestNS(t)
	c := ns.dial(t)
	nl := c.sock.(*nlSocket).nc
	got, err := nl.ReadBuffer()
	if err != nil {
		t.Fatal(err)
	}
	// As root SO_RCVBUFFORCE applies: the kernel reports twice the request.
	if got < DefaultReadBuffer {
		t.Errorf("receive buffer %d bytes, want at least %d", got, DefaultReadBuffer)
	}
	if c.chunk != MaxBatchChunk {
		t.Errorf("batch chunk %d, want %d with a %d-byte buffer", c.chunk, MaxBatchChunk, got)
	}
}

// TestIntegrationKernelErrors records what the kernel answers to each
// well-known mistake (errno, extack text) and that the hint matches.
func TestIntegrationKernelErrors(t *testing.T) {
	ns := newTestNS(t)
	c := ns.dial(t)
	ctx := testCtx(t)
	p0 := vethParent(t, ctx, c)
	p1 := linkIndex(t, ctx, c, "p1")

	newlink := func(l testLink, hc HintContext) error {
		_, err := c.execute(ctx, unix.RTM_NEWLINK, netlink.Create|netlink.Excl, l, &hc)
		return err
	}
	check := func(t *testing.T, err error, errno unix.Errno, hint string) *OpError {
		t.Helper()
		var oe *OpError
		if !errors.As(err, &oe) {
			t.Fatalf("err = %v (%T), want *OpError", err, err)
		}
		if !errors.Is(err, errno) {
			t.Fatalf("err = %v, want %v", err, errno)
		}
		if !strings.Contains(oe.Hint, hint) {
			t.Errorf("hint %q, want it to contain %q", oe.Hint, hint)
		}
		t.Logf("kernel: errno %d (%v), extack %q → %v", int(oe.Errno), oe.Errno, oe.Message, err)
		return oe
	}

	t.Run("duplicate name", func(t *testing.T) {
		err := newlink(testLink{name: "p0", parent: p1, kind: "macvlan", mode: uint32(MacvlanModeBridge)},
			HintContext{Name: "p0", Kind: "macvlan", Mode: "bridge"})
		check(t, err, unix.EEXIST, `a link named "p0" already exists`)
	})
	for _, tt := range []struct {
		l    testLink
		hint string
	}{
		{testLink{name: "v10", parent: p0, kind: "vlan", vlanID: 10}, "kernel has no 802.1Q VLAN support (load module 8021q)"},
		{testLink{name: "ipv0", parent: p0, kind: "ipvlan"}, "kernel has no ipvlan support (load module ipvlan)"},
		{testLink{name: "d0", kind: "dummy"}, "kernel has no dummy support (load module dummy)"},
		// A kind no kernel has: the same refusal on every kernel, VM included.
		{testLink{name: "n0", kind: "vmlinknokind"}, "kernel has no vmlinknokind support (load module vmlinknokind)"},
	} {
		t.Run("unknown kind "+tt.l.kind, func(t *testing.T) {
			err := newlink(tt.l, HintContext{Name: tt.l.name, Kind: tt.l.kind})
			if err == nil {
				_, _ = c.Execute(ctx, unix.RTM_DELLINK, 0, testLink{name: tt.l.name})
				t.Skipf("this kernel has %s: the missing-module refusal cannot be provoked here", tt.l.kind)
			}
			oe := check(t, err, unix.EOPNOTSUPP, tt.hint)
			if !strings.Contains(oe.Message, "Unknown device type") {
				t.Errorf("extack %q, want the kernel's \"Unknown device type\"", oe.Message)
			}
		})
	}
	t.Run("passthru conflicts", func(t *testing.T) {
		if err := newlink(testLink{name: "pt0", parent: p0, kind: "macvlan", mode: uint32(MacvlanModePassthru)}, HintContext{}); err != nil {
			t.Fatalf("first passthru: %v", err)
		}
		t.Cleanup(func() { _, _ = c.Execute(ctx, unix.RTM_DELLINK, 0, testLink{name: "pt0"}) })
		err := newlink(testLink{name: "pt1", parent: p0, kind: "macvlan", mode: uint32(MacvlanModePassthru)},
			HintContext{Name: "pt1", Kind: "macvlan", Mode: "passthru"})
		check(t, err, unix.EINVAL, "passthru needs the parent to itself")
		err = newlink(testLink{name: "br1", parent: p0, kind: "macvlan", mode: uint32(MacvlanModeBridge)},
			HintContext{Name: "br1", Kind: "macvlan", Mode: "bridge"})
		check(t, err, unix.EINVAL, "already has a passthru")
		err = newlink(testLink{name: "tap1", parent: p0, kind: "macvtap", mode: uint32(MacvlanModeVEPA)},
			HintContext{Name: "tap1", Kind: "macvtap", Mode: "vepa"})
		check(t, err, unix.EINVAL, "already has a passthru")
		// And the other way round: passthru on a parent with a bridge one.
		if err := newlink(testLink{name: "br2", parent: p1, kind: "macvlan", mode: uint32(MacvlanModeBridge)}, HintContext{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = c.Execute(ctx, unix.RTM_DELLINK, 0, testLink{name: "br2"}) })
		err = newlink(testLink{name: "pt2", parent: p1, kind: "macvlan", mode: uint32(MacvlanModePassthru)},
			HintContext{Name: "pt2", Kind: "macvlan", Mode: "passthru"})
		check(t, err, unix.EINVAL, "passthru needs the parent to itself")
	})
	t.Run("MAC used by a sibling", func(t *testing.T) {
		mac := net.HardwareAddr{0x02, 0, 0, 0, 0xaa, 1}
		if err := newlink(testLink{name: "m1", parent: p1, mac: mac, flags: unix.IFF_UP, kind: "macvlan", mode: uint32(MacvlanModeBridge)}, HintContext{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = c.Execute(ctx, unix.RTM_DELLINK, 0, testLink{name: "m1"}) })
		// Created up: refused at once, and nothing is left behind.
		err := newlink(testLink{name: "m2", parent: p1, mac: mac, flags: unix.IFF_UP, kind: "macvlan", mode: uint32(MacvlanModePrivate)},
			HintContext{Name: "m2", Kind: "macvlan", Mode: "private", SetsAddress: true, SetsUp: true})
		check(t, err, unix.EADDRINUSE, "MAC address is already used on this parent")
		if _, err := c.Execute(ctx, unix.RTM_GETLINK, 0, testLink{name: "m2"}); !errors.Is(err, unix.ENODEV) {
			t.Errorf("m2 after the refused create: %v, want ENODEV (not created)", err)
		}
		// Created down it is accepted; bringing it up is refused.
		if err := newlink(testLink{name: "m3", parent: p1, mac: mac, kind: "macvlan", mode: uint32(MacvlanModeBridge)}, HintContext{}); err != nil {
			t.Fatalf("create down with a busy MAC: %v", err)
		}
		t.Cleanup(func() { _, _ = c.Execute(ctx, unix.RTM_DELLINK, 0, testLink{name: "m3"}) })
		_, err = c.execute(ctx, unix.RTM_NEWLINK, 0, testLink{name: "m3", flags: unix.IFF_UP}, &HintContext{Type: unix.RTM_SETLINK, Name: "m3", SetsUp: true})
		check(t, err, unix.EADDRINUSE, "sibling macvlan/macvtap")
	})
	t.Run("delete group 0", func(t *testing.T) {
		_, err := c.execute(ctx, unix.RTM_DELLINK, 0, testLink{group: 0xffffffff}, &HintContext{ByGroup: true})
		check(t, err, unix.ENODEV, "no link is in that group")
		// group 0 cannot be encoded by testLink (0 = absent): build it.
		body := append(make([]byte, unix.SizeofIfInfomsg), 8, 0, byte(unix.IFLA_GROUP), 0, 0, 0, 0, 0)
		_, err = c.execute(ctx, unix.RTM_DELLINK, 0, rawBody(body), &HintContext{ByGroup: true})
		check(t, err, unix.EPERM, "group 0 is every link's default group")
	})
	t.Run("no such link", func(t *testing.T) {
		_, err := c.Execute(ctx, unix.RTM_DELLINK, 0, testLink{name: "nope"})
		check(t, err, unix.ENODEV, "no such link")
	})
}

func TestIntegrationDumpAndGroupDelete(t *testing.T) {
	ns := newTestNS(t)
	c := ns.dial(t)
	ctx := testCtx(t)
	p0 := vethParent(t, ctx, c)
	const n = 300
	errs, err := c.Batch(ctx, macvlanReqs(p0, n, 42, uint32(MacvlanModeBridge)))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("create mv%d: %v", i, e)
		}
	}
	msgs, err := c.Dump(ctx, unix.RTM_GETLINK, testLink{})
	if err != nil {
		t.Fatal(err)
	}
	names := linkNames(t, msgs)
	if len(names) != n+3 { // lo, p0, p1
		t.Fatalf("dump has %d links, want %d", len(names), n+3)
	}
	for i := range n {
		if g, ok := names[fmt.Sprintf("mv%d", i)]; !ok || g != 42 {
			t.Fatalf("mv%d: present %v, group %d", i, ok, g)
		}
	}
	// Compare with the reference.
	if out := ns.ip(t, nil, "-o", "link", "show", "group", "42"); strings.Count(out, "\n") != n {
		t.Errorf("ip sees %d links in group 42, want %d", strings.Count(out, "\n"), n)
	}

	// One RTM_DELLINK with ifindex 0 and IFLA_GROUP: rtnl_group_dellink.
	if _, err := c.Execute(ctx, unix.RTM_DELLINK, 0, testLink{group: 42}); err != nil {
		t.Fatalf("delete group 42: %v", err)
	}
	msgs, err = c.Dump(ctx, unix.RTM_GETLINK, testLink{})
	if err != nil {
		t.Fatal(err)
	}
	if names := linkNames(t, msgs); len(names) != 3 {
		t.Fatalf("after the group delete %d links remain, want lo, p0, p1: %v", len(names), names)
	}
}

func TestIntegrationBatchErrorsMatchRequests(t *testing.T) {
	ns := newTestNS(t)
	c := ns.dial(t)
	ctx := testCtx(t)
	p0 := vethParent(t, ctx, c)
	reqs := macvlanReqs(p0, 600, 0, uint32(MacvlanModeBridge))
	// Every 7th request duplicates the name of the one before it.
	for i := 7; i < len(reqs); i += 7 {
		prev := reqs[i-1].Body.(testLink)
		reqs[i].Body = testLink{name: prev.name, parent: p0, kind: "macvlan", mode: uint32(MacvlanModeBridge)}
		reqs[i].Hint = &HintContext{Name: prev.name, Kind: "macvlan", Mode: "bridge"}
	}
	errs, err := c.Batch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if i >= 7 && i%7 == 0 {
			if !errors.Is(e, unix.EEXIST) || !strings.Contains(e.Error(), "already exists") {
				t.Errorf("request %d: %v, want EEXIST with its hint", i, e)
			}
		} else if e != nil {
			t.Errorf("request %d: %v", i, e)
		}
	}
}

func TestIntegrationDumpIntr(t *testing.T) {
	// Provoke NLM_F_DUMP_INTR for real: link dumps while another socket
	// keeps creating and deleting a link. The kernel flags a reply that
	// raced a change; Dump must return a consistent table or
	// ErrDumpInterrupted, never a silently torn one.
	const links = 1000
	ns := newTestNS(t)
	c := ns.dial(t)
	w := ns.dial(t)
	ctx := testCtx(t)
	p0 := vethParent(t, ctx, c)
	if errs, err := c.Batch(ctx, macvlanReqs(p0, links, 0, uint32(MacvlanModeBridge))); err != nil || errs[0] != nil {
		t.Fatalf("create: %v %v", err, errs[0])
	}
	stop := make(chan struct{})
	churned := make(chan int)
	go func() {
		n := 0
		defer func() { churned <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = w.Execute(ctx, unix.RTM_NEWLINK, netlink.Create|netlink.Excl, testLink{name: "churn", parent: p0, kind: "macvlan", mode: uint32(MacvlanModeBridge)})
			_, _ = w.Execute(ctx, unix.RTM_DELLINK, 0, testLink{name: "churn"})
			n++
		}
	}()
	// Stop as soon as both outcomes were seen (a restart and a clean
	// dump), at the latest after 10 dumps: the VM is slow.
	var ok, gaveUp, dumps int
	for dumps = 0; dumps < 10 && (ok == 0 || c.dumpRetries == 0); dumps++ {
		msgs, err := c.Dump(ctx, unix.RTM_GETLINK, testLink{})
		switch {
		case errors.Is(err, ErrDumpInterrupted):
			gaveUp++
		case err != nil:
			t.Fatal(err)
		default:
			ok++
			names := linkNames(t, msgs)
			for i := range links {
				if _, found := names[fmt.Sprintf("mv%d", i)]; !found {
					t.Fatalf("a clean dump misses mv%d", i)
				}
			}
			if n := len(names); n != links+3 && n != links+4 {
				t.Fatalf("a clean dump has %d links, want %d (+1 churn)", n, links+3)
			}
		}
	}
	close(stop)
	t.Logf("%d dumps during %d create/delete pairs: %d consistent, %d gave up after %d attempts; %d restarts for NLM_F_DUMP_INTR",
		dumps, <-churned, ok, gaveUp, MaxDumpAttempts, c.dumpRetries)
}

func TestIntegrationAddrRouteNeigh(t *testing.T) {
	ns := newTestNS(t)
	c := ns.dial(t)
	ctx := testCtx(t)
	p0 := vethParent(t, ctx, c)

	v4 := netip.MustParsePrefix("10.1.2.3/24")
	v6 := netip.MustParsePrefix("2001:db8::3/64")
	for _, p := range []netip.Prefix{v4, v6} {
		if err := c.AddAddr(ctx, p0, p); err != nil {
			t.Fatalf("AddAddr %s: %v", p, err)
		}
	}
	if err := c.AddAddr(ctx, p0, v4); !errors.Is(err, unix.EEXIST) {
		t.Errorf("adding %s twice: %v, want EEXIST", v4, err)
	}
	addrs, err := c.Addrs(ctx, 0, p0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[netip.Prefix]AddrMessage{}
	for _, a := range addrs {
		got[a.Prefix()] = a
	}
	if _, ok := got[v4]; !ok {
		t.Errorf("Addrs misses %s: %v", v4, got)
	}
	a6, ok := got[v6]
	if !ok {
		t.Fatalf("Addrs misses %s: %v", v6, got)
	}
	if a6.Attrs.Flags == nil || *a6.Attrs.Flags&unix.IFA_F_NODAD == 0 || *a6.Attrs.Flags&unix.IFA_F_TENTATIVE != 0 {
		t.Errorf("%s flags %v, want nodad and not tentative", v6, a6.Attrs.Flags)
	}
	if a6.Attrs.CacheInfo == nil {
		t.Error("the kernel's IFA_CACHEINFO was not decoded")
	}
	// The reference agrees.
	ipOut := ns.ip(t, nil, "-o", "addr", "show", "dev", "p0")
	for _, p := range []netip.Prefix{v4, v6} {
		if !strings.Contains(ipOut, p.String()) {
			t.Errorf("ip addr show lacks %s:\n%s", p, ipOut)
		}
	}
	if !strings.Contains(ipOut, "nodad") {
		t.Errorf("ip shows no nodad flag:\n%s", ipOut)
	}
	// Addresses filtered by link: p1 has none of ours.
	p1 := linkIndex(t, ctx, c, "p1")
	if other, err := c.Addrs(ctx, unix.AF_INET, p1); err != nil || len(other) != 0 {
		t.Errorf("Addrs(p1) = %v, %v; want none", other, err)
	}

	gw4, gw6 := netip.MustParseAddr("10.1.2.1"), netip.MustParseAddr("2001:db8::fe")
	if err := c.AddDefaultRoute(ctx, gw4, 0); err != nil {
		t.Fatalf("default via %s: %v", gw4, err)
	}
	if err := c.AddDefaultRoute(ctx, gw6, p0); err != nil {
		t.Fatalf("default via %s: %v", gw6, err)
	}
	if out := ns.ip(t, nil, "route", "show", "default"); !strings.Contains(out, "default via 10.1.2.1 dev p0") {
		t.Errorf("ip route: %q", out)
	}
	if out := ns.ip(t, nil, "-6", "route", "show", "default"); !strings.Contains(out, "default via 2001:db8::fe dev p0") {
		t.Errorf("ip -6 route: %q", out)
	}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		routes, err := c.Routes(ctx, fam)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range routes {
			if r.DstPrefix().Bits() == 0 && r.Table == unix.RT_TABLE_MAIN && (r.Attrs.Gateway == gw4 || r.Attrs.Gateway == gw6) {
				found = true
				if r.Attrs.OIF == nil || *r.Attrs.OIF != p0 {
					t.Errorf("default route %+v: want oif %d", r, p0)
				}
			}
		}
		if !found {
			t.Errorf("Routes(%d) has no default route: %+v", fam, routes)
		}
	}
	if err := c.DelRoute(ctx, Route{Gateway: gw4}); err != nil {
		t.Fatalf("DelRoute: %v", err)
	}
	if out := ns.ip(t, nil, "route", "show", "default"); out != "" {
		t.Errorf("default route still there: %q", out)
	}

	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 9}
	if err := c.AddNeigh(ctx, p0, netip.MustParseAddr("10.1.2.9"), mac); err != nil {
		t.Fatalf("AddNeigh: %v", err)
	}
	if out := ns.ip(t, nil, "neigh", "show", "dev", "p0"); !strings.Contains(out, "10.1.2.9 lladdr 02:00:00:00:00:09 PERMANENT") {
		t.Errorf("ip neigh: %q", out)
	}
	if err := c.DelNeigh(ctx, p0, netip.MustParseAddr("10.1.2.9")); err != nil {
		t.Fatalf("DelNeigh: %v", err)
	}

	if err := c.DelAddr(ctx, p0, v4); err != nil {
		t.Fatalf("DelAddr: %v", err)
	}
	if out := ns.ip(t, nil, "-4", "-o", "addr", "show", "dev", "p0"); out != "" {
		t.Errorf("v4 address still there: %q", out)
	}
	if err := c.DelAddr(ctx, p0, v4); !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Errorf("deleting a missing address: %v, want EADDRNOTAVAIL", err)
	}
}

// requireFeature is called by a test that just saw the kernel refuse
// feature ("vlan", "ipvlan", … as VMLINK_EXPECT_FEATURES names them) with
// EOPNOTSUPP: testenv's Require decides, from its own probe, whether that
// is a skip (with what to run instead) or, under CI=true with the feature
// expected, a failure. present=true returns at once.
func requireFeature(t *testing.T, feature string, present bool) {
	t.Helper()
	if present {
		return
	}
	f, err := sandbox.ParseFeature(feature)
	if err != nil {
		t.Fatal(err)
	}
	sandbox.Require(t, f)
	t.Fatalf("the kernel refused a %s link, yet the %s probe found it supported", feature, f)
}

// TestIntegrationVLANErrors needs 8021q: it runs in the VM (Debian 6.1 and
// 6.12 kernels); this machine's kernel has none.
func TestIntegrationVLANErrors(t *testing.T) {
	ns := newTestNS(t)
	c := ns.dial(t)
	ctx := testCtx(t)
	p0 := vethParent(t, ctx, c)
	hc := func(name string) *HintContext { return &HintContext{Name: name, Kind: "vlan"} }
	_, err := c.execute(ctx, unix.RTM_NEWLINK, netlink.Create|netlink.Excl, testLink{name: "p0.10", parent: p0, kind: "vlan", vlanID: 10}, hc("p0.10"))
	if errors.Is(err, unix.EOPNOTSUPP) {
		requireFeature(t, "vlan", false)
	}
	if err != nil {
		t.Fatalf("create VLAN 10: %v", err)
	}
	// Same parent, id and protocol under another name.
	_, err = c.execute(ctx, unix.RTM_NEWLINK, netlink.Create|netlink.Excl, testLink{name: "dup10", parent: p0, kind: "vlan", vlanID: 10}, hc("dup10"))
	var oe *OpError
	if !errors.Is(err, unix.EEXIST) || !errors.As(err, &oe) {
		t.Fatalf("duplicate VLAN id: %v, want EEXIST", err)
	}
	t.Logf("duplicate VLAN id: extack %q → %v", oe.Message, err)
	if !strings.Contains(oe.Hint, "parent already has a VLAN link with this id") {
		t.Errorf("hint %q, want the duplicate-id hint", oe.Hint)
	}
	// Same name, another id: the name check comes first.
	_, err = c.execute(ctx, unix.RTM_NEWLINK, netlink.Create|netlink.Excl, testLink{name: "p0.10", parent: p0, kind: "vlan", vlanID: 11}, hc("p0.10"))
	if !errors.Is(err, unix.EEXIST) || !errors.As(err, &oe) || !strings.Contains(oe.Hint, `a link named "p0.10" already exists`) {
		t.Errorf("duplicate name: %v, want EEXIST with the name hint", err)
	}
	// VLAN id 4095 is reserved.
	_, err = c.execute(ctx, unix.RTM_NEWLINK, netlink.Create|netlink.Excl, testLink{name: "v4095", parent: p0, kind: "vlan", vlanID: 4095}, hc("v4095"))
	if !errors.Is(err, unix.ERANGE) || !errors.As(err, &oe) || !strings.Contains(oe.Hint, "0 and 4094") {
		t.Errorf("VLAN id 4095: %v, want ERANGE with the range hint", err)
	} else {
		t.Logf("VLAN id 4095: extack %q → %v", oe.Message, err)
	}
}

func TestIntegrationDialNetNS(t *testing.T) {
	requirePrivileged(t)
	name := fmt.Sprintf("vmlt-%d-rtnl%d", os.Getpid(), nsCount.Add(1))
	ns, err := netns.Create(name)
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	ns.Close()
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	c, err := DialNetNS(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	if _, err := c.Execute(ctx, unix.RTM_NEWLINK, netlink.Create|netlink.Excl, testLink{name: "here0", kind: "veth", peer: "here1"}); err != nil {
		t.Fatal(err)
	}
	// The reference sees the link in that namespace (and only there).
	out, err := exec.Command("ip", "-n", name, "-o", "link", "show", "here0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "here0") {
		t.Fatalf("ip -n %s link show here0: %v\n%s", name, err, out)
	}
	if _, err := DialNetNS("vmlt-no-such-ns", nil); !errors.Is(err, unix.ENOENT) {
		t.Errorf("DialNetNS of a missing namespace: %v, want ENOENT", err)
	}
}

// TestIntegrationLinkHelpers drives the typed helpers with the real kind
// drivers and checks the result with iproute2.
func TestIntegrationLinkHelpers(t *testing.T) {
	ns := newTestNS(t)
	c := ns.dial(t)
	ctx := testCtx(t)
	bridge := MacvlanModeBridge
	passthru := MacvlanModePassthru
	u32 := func(v uint32) *uint32 { return &v }

	veth := &LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP, Attrs: LinkAttrs{
		Name: "p0",
		Info: &LinkInfo{Kind: "veth", Data: &Veth{Peer: &LinkMessage{Attrs: LinkAttrs{Name: "p1"}}}},
	}}
	if err := c.NewLink(ctx, veth, netlink.Create|netlink.Excl); err != nil {
		t.Fatalf("NewLink veth: %v", err)
	}
	p0, err := c.GetLink(ctx, &LinkMessage{Attrs: LinkAttrs{Name: "p0"}})
	if err != nil {
		t.Fatalf("GetLink p0: %v", err)
	}
	if p0.Index <= 0 || p0.Attrs.Info == nil || p0.Attrs.Info.Kind != "veth" || p0.Flags&unix.IFF_UP == 0 {
		t.Fatalf("GetLink p0 = %+v", p0)
	}
	parent := uint32(p0.Index)
	if got, err := c.GetLink(ctx, &LinkMessage{Index: p0.Index}); err != nil || got.Attrs.Name != "p0" {
		t.Fatalf("GetLink by index: %+v, %v", got, err)
	}

	const n = 50
	reqs := make([]Request, n)
	for i := range reqs {
		reqs[i] = NewLinkRequest(&LinkMessage{Attrs: LinkAttrs{
			Name: fmt.Sprintf("mv%d", i), Link: &parent, Group: u32(9),
			Info: &LinkInfo{Kind: "macvlan", Data: &Macvlan{Mode: &bridge}},
		}}, netlink.Create|netlink.Excl)
	}
	errs, err := c.Batch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("create mv%d: %v", i, e)
		}
	}
	links, err := c.Links(ctx)
	if err != nil {
		t.Fatalf("Links: %v", err)
	}
	if len(links) != n+3 {
		t.Fatalf("Links returned %d links, want %d", len(links), n+3)
	}
	macvlans := 0
	for _, l := range links {
		if l.Attrs.Info == nil || l.Attrs.Info.Kind != "macvlan" {
			continue
		}
		macvlans++
		d, ok := l.Attrs.Info.Data.(*Macvlan)
		if !ok || d.Mode == nil || *d.Mode != MacvlanModeBridge {
			t.Errorf("%s: driver data %#v, want bridge mode", l.Attrs.Name, l.Attrs.Info.Data)
		}
		if l.Attrs.Group == nil || *l.Attrs.Group != 9 || l.Attrs.Link == nil || *l.Attrs.Link != parent {
			t.Errorf("%s: group %v link %v, want 9 and %d", l.Attrs.Name, l.Attrs.Group, l.Attrs.Link, parent)
		}
	}
	if macvlans != n {
		t.Errorf("%d macvlans listed, want %d", macvlans, n)
	}

	// SetLink: up and MTU, seen by the reference.
	if err := c.SetLink(ctx, &LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP, Attrs: LinkAttrs{Name: "mv1", MTU: u32(1400)}}); err != nil {
		t.Fatalf("SetLink: %v", err)
	}
	out := ns.ip(t, nil, "-d", "link", "show", "mv1")
	for _, want := range []string{"mtu 1400", "UP", "macvlan mode bridge", "group 9"} {
		if !strings.Contains(out, want) {
			t.Errorf("ip -d link show mv1 lacks %q:\n%s", want, out)
		}
	}

	// Refusals come back typed, with their hints.
	err = c.NewLink(ctx, &LinkMessage{Attrs: LinkAttrs{Name: "mv1", Link: &parent, Info: &LinkInfo{Kind: "macvlan", Data: &Macvlan{Mode: &bridge}}}}, netlink.Create|netlink.Excl)
	var oe *OpError
	if !errors.Is(err, unix.EEXIST) || !errors.As(err, &oe) || oe.Hint != `a link named "mv1" already exists` {
		t.Errorf("duplicate mv1: %v", err)
	}
	err = c.NewLink(ctx, &LinkMessage{Attrs: LinkAttrs{Name: "pt0", Link: &parent, Info: &LinkInfo{Kind: "macvlan", Data: &Macvlan{Mode: &passthru}}}}, netlink.Create|netlink.Excl)
	if !errors.Is(err, unix.EINVAL) || !errors.As(err, &oe) || !strings.Contains(oe.Hint, "passthru needs the parent to itself") {
		t.Errorf("passthru on a busy parent: %v", err)
	}

	// Delete one by name, the rest by group.
	if err := c.DelLink(ctx, &LinkMessage{Attrs: LinkAttrs{Name: "mv0"}}); err != nil {
		t.Fatalf("DelLink mv0: %v", err)
	}
	if err := c.DelLink(ctx, &LinkMessage{Attrs: LinkAttrs{Group: u32(9)}}); err != nil {
		t.Fatalf("DelLink group 9: %v", err)
	}
	if links, err := c.Links(ctx); err != nil || len(links) != 3 {
		t.Fatalf("after deleting group 9: %d links, %v; want lo, p0, p1", len(links), err)
	}
	err = c.DelLink(ctx, &LinkMessage{Attrs: LinkAttrs{Group: u32(9)}})
	if !errors.Is(err, unix.ENODEV) || !errors.As(err, &oe) || oe.Hint != "no link is in that group" {
		t.Errorf("deleting an empty group: %v", err)
	}
	if _, err := c.GetLink(ctx, &LinkMessage{Attrs: LinkAttrs{Name: "mv0"}}); !errors.Is(err, unix.ENODEV) {
		t.Errorf("GetLink of a deleted link: %v, want ENODEV", err)
	}
}
