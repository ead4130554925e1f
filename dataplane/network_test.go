package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/testenv"
)

// newNetEnv is a throwaway host namespace with two veth parents (p0, p1,
// their peers p0peer, p1peer; all up) and a private state directory.
func newNetEnv(t *testing.T) (*testEnv, *Networks) {
	t.Helper()
	e := newTestEnv(t)
	c, err := rtnl.DialNetNS(e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range []string{"p0", "p1"} {
		if err := c.NewLink(context.Background(), &rtnl.LinkMessage{Flags: 1, Change: 1, Attrs: rtnl.LinkAttrs{Name: p, Info: &rtnl.LinkInfo{Kind: "veth",
			Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: p + "peer"}}}}}}, 0x400|0x200); err != nil {
			t.Fatal(err)
		}
		// The peer up too: a veth without its peer up has no carrier, and
		// the interfaces on it would pass no traffic.
		up := true
		if err := link.New(c).Set(context.Background(), p+"peer", link.Change{Up: &up}); err != nil {
			t.Fatal(err)
		}
	}
	return e, &Networks{Host: e.host, StateDir: e.stateDir}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func wantUsage(t *testing.T, err error, substr string) {
	t.Helper()
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), substr) {
		t.Fatalf("err = %v, want a refusal (ErrRefused) containing %q", err, substr)
	}
}

func TestNetworkLifecycle(t *testing.T) {
	e, nets := newNetEnv(t)
	ctx := context.Background()
	c1, c2 := e.prefix+"c1", e.prefix+"c2"
	rec, err := nets.Create(ctx, NetworkSpec{Name: "macvlan10", Subnets: []netip.Prefix{pfx("10.0.10.0/24"), pfx("2001:db8:babe:10::/64")},
		Gateways: []netip.Addr{addr("10.0.10.1"), addr("2001:db8:babe:10::1")}, IPRanges: []netip.Prefix{pfx("10.0.10.128/25")},
		Aux: map[string]netip.Addr{"router": addr("10.0.10.254")}, IPv6: true, HostShim: true,
		Options: netOpts(t, "parent", "p0", "macvlan_mode", "bridge")})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Shim == nil || rec.Shim.Addrs[0].String() != "10.0.10.128/32" {
		t.Fatalf("shim = %+v", rec.Shim)
	}
	a1, err := nets.Connect(ctx, ConnectSpec{Network: "macvlan10", Container: c1, IPs: []netip.Addr{addr("10.0.10.3"), addr("2001:db8:babe:10::3")}})
	if err != nil {
		t.Fatal(err)
	}
	if a1.Interface != "eth0" || len(a1.Addrs) != 2 || a1.Addrs[0].String() != "10.0.10.3/24" || !a1.NSCreated {
		t.Fatalf("attached %+v", a1)
	}
	a2, err := nets.Connect(ctx, ConnectSpec{Network: "macvlan10", Container: c2})
	if err != nil {
		t.Fatal(err)
	}
	// .128 is the shim's; the range starts there; .254 is aux, .1 the gateway.
	if a2.Addrs[0].String() != "10.0.10.129/24" || a2.Addrs[1].String() != "2001:db8:babe:10::4/64" {
		t.Fatalf("allocated %v", a2.Addrs)
	}
	// The kernel has what the state says.
	ec, err := rtnl.DialNetNS(c2, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := link.New(ec).Get(ctx, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	has, _ := hasAddr(ctx, ec, m.Index, a2.Addrs[1])
	ec.Close()
	if !has || m.Address.String() != a2.MAC {
		t.Fatalf("c2/eth0 = %+v (IPv6 address present: %v)", m, has)
	}
	// Bridge mode: the two containers reach each other, IPv4 and IPv6.
	for _, dst := range []netip.Addr{addr("10.0.10.129"), addr("2001:db8:babe:10::4")} {
		if err := ping(c1, dst, 15*time.Second); err != nil {
			t.Error(err)
		}
	}
	// Default routes via the gateways of both families.
	ec, err = rtnl.DialNetNS(c1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for fam, gw := range map[uint8]string{2 /* AF_INET */ : "10.0.10.1", 10 /* AF_INET6 */ : "2001:db8:babe:10::1"} {
		routes, err := ec.Routes(ctx, fam)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range routes {
			if r.DstLen == 0 && r.Attrs.Gateway.String() == gw {
				found = true
			}
		}
		if !found {
			t.Errorf("c1 has no default route via %s", gw)
		}
	}
	ec.Close()
	// The host shim: the host reaches its macvlan containers in the
	// --ip-range (the route the shim gets, as in the usual fix).
	if err := ping(e.host, addr("10.0.10.129"), 15*time.Second); err != nil {
		t.Errorf("through the host shim: %v", err)
	}
	// c1's --ip 10.0.10.3 is outside the range: it gets a host route of its
	// own through the shim.
	if err := ping(e.host, addr("10.0.10.3"), 15*time.Second); err != nil {
		t.Errorf("through the host shim to an --ip outside the range: %v", err)
	}
	if !hostRouteVia(t, e.host, "10.0.10.3/32", rec.Shim.Interface) {
		t.Errorf("no 10.0.10.3/32 route through the shim %s in the host namespace", rec.Shim.Interface)
	}
	if err := ping(c1, addr("10.0.10.200"), 500*time.Millisecond); err == nil {
		t.Error("ping of an address nobody has got an answer: the ping helper proves nothing")
	}
	// Refusals.
	_, err = nets.Connect(ctx, ConnectSpec{Network: "macvlan10", Container: e.prefix + "c3", IPs: []netip.Addr{addr("10.0.11.3")}})
	wantUsage(t, err, "outside the network's subnets")
	_, err = nets.Connect(ctx, ConnectSpec{Network: "macvlan10", Container: e.prefix + "c3", IPs: []netip.Addr{addr("10.0.10.3")}})
	wantUsage(t, err, "already in use by "+c1)
	_, err = nets.Connect(ctx, ConnectSpec{Network: "macvlan10", Container: e.prefix + "c3", IPs: []netip.Addr{addr("10.0.10.254")}})
	wantUsage(t, err, "aux address router")
	if netns.Exists(e.prefix + "c3") {
		t.Fatal("a refused connect left its namespace behind")
	}
	wantUsage(t, nets.Remove(ctx, "macvlan10"), "has active endpoints")

	// docker inspect's shape.
	got, err := nets.Inspect(ctx, "macvlan10")
	if err != nil {
		t.Fatal(err)
	}
	c := got.IPAM[0]
	if got.Name != "macvlan10" || got.Driver != "macvlan" || !got.IPv6 || c.Subnet != pfx("10.0.10.0/24") || c.IPRange != pfx("10.0.10.128/25") ||
		c.Gateway != addr("10.0.10.1") || c.Aux["router"] != addr("10.0.10.254") || got.Endpoints[c1].Addrs[0] != pfx("10.0.10.3/24") ||
		len(got.Options) != 2 || got.Options["macvlan_mode"] != "bridge" || got.Options["parent"] != "p0" {
		t.Errorf("inspect = %+v", got)
	}

	// Reconcile: a container deleted behind vmlink's back. c3 has an --ip
	// outside the range: its host route through the shim goes too.
	c3 := e.prefix + "c3"
	if _, err := nets.Connect(ctx, ConnectSpec{Network: "macvlan10", Container: c3, IPs: []netip.Addr{addr("10.0.10.4")}}); err != nil {
		t.Fatal(err)
	}
	if !hostRouteVia(t, e.host, "10.0.10.4/32", rec.Shim.Interface) {
		t.Error("no host route through the shim for c3's 10.0.10.4")
	}
	netns.Delete(c3)
	netns.Delete(c2)
	recs, found, err := nets.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || !strings.Contains(fmt.Sprint(found), c2+" is gone") || !strings.Contains(fmt.Sprint(found), c3+" is gone") || len(recs[0].Endpoints) != 1 {
		t.Fatalf("reconcile found %v, endpoints %v", found, recs[0].Endpoints)
	}
	if hostRouteVia(t, e.host, "10.0.10.4/32", rec.Shim.Interface) {
		t.Error("reconcile left the vanished c3's host route through the shim")
	}
	if err := nets.Disconnect(ctx, "macvlan10", c1); err != nil {
		t.Fatal(err)
	}
	if netns.Exists(c1) {
		t.Fatal("disconnect kept the namespace connect created")
	}
	if hostRouteVia(t, e.host, "10.0.10.3/32", rec.Shim.Interface) {
		t.Error("disconnect left c1's host route through the shim")
	}
	if err := nets.Remove(ctx, "macvlan10"); err != nil {
		t.Fatal(err)
	}
	if l := e.links(t); strings.Join(l, ",") != "lo,p0peer,p0,p1peer,p1" {
		t.Fatalf("links after rm: %v (the shim must be gone, the user's parents stay)", l)
	}
}

func TestNetworkMultiNetworkEndpointAndExistingNamespace(t *testing.T) {
	e, nets := newNetEnv(t)
	ctx := context.Background()
	mine := e.prefix + "mine" // exists before: never removed
	h, err := netns.Create(mine)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	for i, p := range []string{"p0", "p1"} {
		if _, err := nets.Create(ctx, NetworkSpec{Name: "n" + p, Subnets: []netip.Prefix{pfx("10.5." + string(rune('0'+i)) + ".0/24")}, Options: netOpts(t, "parent", p)}); err != nil {
			t.Fatal(err)
		}
	}
	c := e.prefix + "multi"
	a0, err := nets.Connect(ctx, ConnectSpec{Network: "np0", Container: c})
	if err != nil {
		t.Fatal(err)
	}
	a1, err := nets.Connect(ctx, ConnectSpec{Network: "np1", Container: c})
	if err != nil {
		t.Fatal(err)
	}
	if a0.Interface != "eth0" || a1.Interface != "eth1" || !a1.NSCreated {
		t.Fatalf("interfaces %s, %s (ns created %v)", a0.Interface, a1.Interface, a1.NSCreated)
	}
	if _, err := nets.Connect(ctx, ConnectSpec{Network: "np0", Container: mine}); err != nil {
		t.Fatal(err)
	}
	if err := nets.Disconnect(ctx, "np0", c); err != nil {
		t.Fatal(err)
	}
	if !netns.Exists(c) {
		t.Fatal("disconnecting one of two networks removed the namespace")
	}
	if err := nets.Disconnect(ctx, "np1", c); err != nil {
		t.Fatal(err)
	}
	if netns.Exists(c) {
		t.Fatal("the last disconnect kept the namespace connect created")
	}
	if err := nets.Disconnect(ctx, "np0", mine); err != nil {
		t.Fatal(err)
	}
	if !netns.Exists(mine) {
		t.Fatal("disconnect removed a namespace that existed before")
	}
	ec, _ := rtnl.DialNetNS(mine, nil)
	defer ec.Close()
	if _, err := link.New(ec).Get(ctx, "eth0"); !errors.Is(err, link.ErrNotFound) {
		t.Fatalf("disconnect left the interface in the existing namespace (%v)", err)
	}
}

// netOpts is the options docker's `-o KEY=VALUE` words give.
func netOpts(t *testing.T, kv ...string) NetworkOptions {
	t.Helper()
	var o NetworkOptions
	for i := 0; i+1 < len(kv); i += 2 {
		if err := o.Set(kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// TestNetworkOptionsSet: every docker option word is parsed into its
// typed field or refused with a message naming the option.
func TestNetworkOptionsSet(t *testing.T) {
	o := netOpts(t, "parent", "eth0.10", "macvlan_mode", "vepa", "ipvlan_mode", "l3s", "ipvlan_flag", "private")
	want := NetworkOptions{Parent: "eth0.10", MacvlanMode: link.MacvlanModeVEPA, IPVlanMode: link.IPVlanModeL3S, IPVlanFlag: link.IPVlanFlagPrivate}
	if o != want {
		t.Fatalf("options = %+v, want %+v", o, want)
	}
	if w := o.words(); len(w) != 4 || w["ipvlan_flag"] != "private" || w["macvlan_mode"] != "vepa" {
		t.Fatalf("words = %v", w)
	}
	for _, c := range []struct{ key, value, want string }{
		{"ipvlan_flag", "bogus", "-o ipvlan_flag=bogus: use bridge, private or vepa"},
		{"ipvlan_flag", "", "-o ipvlan_flag=: use bridge, private or vepa"},
		{"ipvlan_mode", "l4", "-o ipvlan_mode=l4: use l2, l3 or l3s"},
		{"macvlan_mode", "bogus", "-o macvlan_mode=bogus: use bridge"},
		{"mtu", "9000", "-o mtu: unknown option"},
	} {
		var o NetworkOptions
		err := o.Set(c.key, c.value)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Set(%s, %q) = %v, want one line starting %q", c.key, c.value, err, c.want)
		}
	}
}

func TestNetworkRefusals(t *testing.T) {
	_, nets := newNetEnv(t)
	ctx := context.Background()
	spec := func(name, parent string, subnet string, opts ...string) NetworkSpec {
		s := NetworkSpec{Name: name, Subnets: []netip.Prefix{pfx(subnet)}, Options: netOpts(t, "parent", parent)}
		for i := 0; i+1 < len(opts); i += 2 {
			if err := s.Options.Set(opts[i], opts[i+1]); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	_, err := nets.Create(ctx, spec("lo", "lo", "10.0.0.0/24"))
	wantUsage(t, err, "loopback cannot be a parent")
	_, err = nets.Create(ctx, spec("gone", "nope0", "10.0.0.0/24"))
	wantUsage(t, err, "no such interface")
	if _, err := nets.Create(ctx, spec("a", "p0", "10.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	_, err = nets.Create(ctx, spec("a", "p1", "10.1.0.0/24"))
	wantUsage(t, err, "already exists")
	_, err = nets.Create(ctx, spec("b", "p0", "10.0.0.128/25"))
	wantUsage(t, err, "overlaps subnet 10.0.0.0/24 of network a")
	_, err = nets.Create(ctx, spec("pt", "p0", "10.2.0.0/24", "macvlan_mode", "passthru"))
	wantUsage(t, err, "passthru takes the parent alone")
	if _, err := nets.Create(ctx, spec("pt", "p1", "10.2.0.0/24", "macvlan_mode", "passthru")); err != nil {
		t.Fatal(err)
	}
	_, err = nets.Create(ctx, spec("after", "p1", "10.3.0.0/24"))
	wantUsage(t, err, "passthru takes the parent alone")
	if _, err := nets.Connect(ctx, ConnectSpec{Network: "pt", Container: "vmlt-pt1-" + t.Name()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete("vmlt-pt1-" + t.Name()) })
	_, err = nets.Connect(ctx, ConnectSpec{Network: "pt", Container: "vmlt-pt2-" + t.Name()})
	wantUsage(t, err, "passthru: it takes one container")
	// ipvlan takes one network per parent: refused before the kernel is
	// asked, so this holds on kernels without ipvlan too.
	_, err = nets.Create(ctx, NetworkSpec{Name: "ipv", Driver: "ipvlan", Subnets: []netip.Prefix{pfx("10.9.0.0/24")}, Options: netOpts(t, "parent", "p0", "ipvlan_mode", "l2")})
	wantUsage(t, err, "-o parent=p0: network a uses it and ipvlan takes one network per parent")
	_, err = nets.Create(ctx, NetworkSpec{Name: "g", Subnets: []netip.Prefix{pfx("10.4.0.0/24")}, Gateways: []netip.Addr{addr("10.5.0.1")}, Options: netOpts(t, "parent", "p0")})
	wantUsage(t, err, "outside every --subnet")
	_, err = nets.Create(ctx, NetworkSpec{Name: "g", Subnets: []netip.Prefix{pfx("2001:db8::/64")}, Options: netOpts(t, "parent", "p0")})
	wantUsage(t, err, "add --ipv6")
	// Options of another driver are refused, not dropped.
	_, err = nets.Create(ctx, spec("g", "p0", "10.6.0.0/24", "ipvlan_flag", "private"))
	wantUsage(t, err, "-o ipvlan_flag: not an option of the macvlan driver")
	_, err = nets.Create(ctx, spec("g", "p0", "10.6.0.0/24", "ipvlan_mode", "l3"))
	wantUsage(t, err, "-o ipvlan_mode: not an option of the macvlan driver")
	_, err = nets.Create(ctx, NetworkSpec{Name: "g", Driver: "ipvlan", Subnets: []netip.Prefix{pfx("10.6.0.0/24")}, Options: netOpts(t, "parent", "p1", "macvlan_mode", "vepa")})
	wantUsage(t, err, "-o macvlan_mode: not an option of the ipvlan driver")
	// A full range.
	if _, err := nets.Create(ctx, NetworkSpec{Name: "tiny", Subnets: []netip.Prefix{pfx("10.7.0.0/30")}, Options: netOpts(t, "parent", "p0")}); err != nil {
		t.Fatal(err)
	}
	c := "vmlt-tiny-" + t.Name()
	t.Cleanup(func() { netns.Delete(c); netns.Delete(c + "b") })
	if _, err := nets.Connect(ctx, ConnectSpec{Network: "tiny", Container: c}); err != nil {
		t.Fatal(err)
	}
	_, err = nets.Connect(ctx, ConnectSpec{Network: "tiny", Container: c + "b"})
	if !errors.Is(err, ErrPoolFull) {
		t.Fatalf("connect to a full network = %v, want ErrPoolFull", err)
	}
}

// TestNetworkAutoVLANParent: X.N parents are created on demand, shared, and
// removed with the last network that uses them (needs 8021q: the VM tier).
func TestNetworkAutoVLANParent(t *testing.T) {
	testenv.Require(t, testenv.FeatureVLAN)
	e, nets := newNetEnv(t)
	ctx := context.Background()
	for i, name := range []string{"v10a", "v10b"} {
		if _, err := nets.Create(ctx, NetworkSpec{Name: name, Subnets: []netip.Prefix{pfx("10.10." + string(rune('0'+i)) + ".0/24")}, Options: netOpts(t, "parent", "p0.10")}); err != nil {
			t.Fatal(err)
		}
	}
	has := func(name string) bool {
		for _, l := range e.links(t) {
			if l == name {
				return true
			}
		}
		return false
	}
	if !has("p0.10") {
		t.Fatal("p0.10 was not created")
	}
	// The one parent builder: a VLAN parent vmlink creates has IPv6 off,
	// for `net create` as for `up`.
	var v6off []byte
	if err := NamedNS(e.host).do(func() (err error) {
		v6off, err = os.ReadFile("/proc/sys/net/ipv6/conf/p0.10/disable_ipv6")
		return err
	}); err != nil || strings.TrimSpace(string(v6off)) != "1" {
		t.Fatalf("p0.10 disable_ipv6 = %q, %v: want 1", v6off, err)
	}
	if err := nets.Remove(ctx, "v10a"); err != nil {
		t.Fatal(err)
	}
	if !has("p0.10") {
		t.Fatal("p0.10 removed while network v10b still uses it")
	}
	if err := nets.Remove(ctx, "v10b"); err != nil {
		t.Fatal(err)
	}
	if has("p0.10") {
		t.Fatal("p0.10 kept after its last network")
	}
	// An existing X.N that really is VLAN N on X is used, and stays after
	// net rm: vmlink did not create it.
	c, _ := rtnl.DialNetNS(e.host, nil)
	defer c.Close()
	if _, err := link.New(c).Create(ctx, &link.VLAN{Common: link.Common{Name: "p1.30", Parent: "p1", Up: true}, ID: 30}); err != nil {
		t.Fatal(err)
	}
	rec, err := nets.Create(ctx, NetworkSpec{Name: "v30", Subnets: []netip.Prefix{pfx("10.30.0.0/24")}, Options: netOpts(t, "parent", "p1.30")})
	if err != nil {
		t.Fatal(err)
	}
	if rec.ParentCreated {
		t.Fatal("a VLAN the user made is recorded as vmlink's")
	}
	if err := nets.Remove(ctx, "v30"); err != nil {
		t.Fatal(err)
	}
	if !has("p1.30") {
		t.Fatal("net rm removed a VLAN parent vmlink did not create")
	}
	// An existing X.N that is not VLAN N on X is refused.
	if err := c.NewLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "p1.20", Info: &rtnl.LinkInfo{Kind: "bridge"}}}, 0x400|0x200); err != nil {
		t.Fatal(err)
	}
	_, err = nets.Create(ctx, NetworkSpec{Name: "v20", Subnets: []netip.Prefix{pfx("10.20.0.0/24")}, Options: netOpts(t, "parent", "p1.20")})
	wantUsage(t, err, "is not VLAN 20 on p1")
}

// TestNetworkInternalDummy: no parent makes an internal network on a dummy
// link vmlink creates and removes (needs dummy: the VM tier).
func TestNetworkInternalDummy(t *testing.T) {
	testenv.Require(t, testenv.FeatureDummy)
	e, nets := newNetEnv(t)
	ctx := context.Background()
	rec, err := nets.Create(ctx, NetworkSpec{Name: "internal", Subnets: []netip.Prefix{pfx("10.30.0.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Internal || !rec.ParentCreated || !strings.HasPrefix(rec.Parent, "dm-") {
		t.Fatalf("record %+v", rec)
	}
	c := e.prefix + "int"
	a, err := nets.Connect(ctx, ConnectSpec{Network: "internal", Container: c})
	if err != nil {
		t.Fatal(err)
	}
	if a.Addrs[0].String() != "10.30.0.1/24" {
		t.Fatalf("internal network allocated %v (no gateway is reserved)", a.Addrs)
	}
	if err := nets.Disconnect(ctx, "internal", c); err != nil {
		t.Fatal(err)
	}
	if err := nets.Remove(ctx, "internal"); err != nil {
		t.Fatal(err)
	}
	for _, l := range e.links(t) {
		if strings.HasPrefix(l, "dm-") {
			t.Fatalf("dummy parent %s left behind", l)
		}
	}
}

// TestNetworkConnectAnnounces: connect announces the container's addresses
// on the wire — a gratuitous ARP for its IPv4 address and an unsolicited
// neighbour advertisement for its IPv6 address, from its MAC — seen on the
// far end of the parent. (The kernel sends neither by itself: arp_notify
// and ndisc_notify are off by default.)
func TestNetworkConnectAnnounces(t *testing.T) {
	e, nets := newNetEnv(t)
	ctx := context.Background()
	if _, err := nets.Create(ctx, NetworkSpec{Name: "ann", IPv6: true, Subnets: []netip.Prefix{pfx("10.0.12.0/24"), pfx("fd00:12::/64")},
		Options: netOpts(t, "parent", "p0")}); err != nil {
		t.Fatal(err)
	}
	h, err := netns.Open(e.host)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := rtnl.DialNetNS(e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := link.New(c).Get(ctx, "p0peer")
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	var pc *packet.Conn
	if err := h.Do(func() (err error) {
		pc, err = packet.Listen(&net.Interface{Index: int(peer.Index), Name: "p0peer"}, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	a, err := nets.Connect(ctx, ConnectSpec{Network: "ann", Container: e.prefix + "ann1", IPs: []netip.Addr{addr("10.0.12.7"), addr("fd00:12::7")}})
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC(a.MAC)
	sawARP, sawNA := testenv.SawAnnouncements(pc, mac, addr("10.0.12.7"), addr("fd00:12::7"), 5*time.Second)
	if !sawARP || !sawNA {
		t.Fatalf("after connect the wire saw gratuitous ARP %v, unsolicited NA %v; want both", sawARP, sawNA)
	}
}

// hostRouteVia reports whether namespace ns has a route to dst out of the
// link named dev.
func hostRouteVia(t *testing.T, ns, dst, dev string) bool {
	t.Helper()
	ctx := context.Background()
	c, err := rtnl.DialNetNS(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := link.New(c).Get(ctx, dev)
	if err != nil {
		t.Fatalf("%s in %s: %v", dev, ns, err)
	}
	p := netip.MustParsePrefix(dst)
	fam := uint8(unix.AF_INET)
	if p.Addr().Is6() {
		fam = unix.AF_INET6
	}
	routes, err := c.Routes(ctx, fam)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if int(r.DstLen) == p.Bits() && r.Attrs.Dst == p.Addr() && r.Attrs.OIF != nil && *r.Attrs.OIF == uint32(m.Index) {
			return true
		}
	}
	return false
}

// TestNetworkStatesKeepApart: two state directories (two API users, or
// tests running side by side) each reconcile only their own links. `net
// ls` of one removes marked links no network of its state claims, in every
// named namespace; before each directory had its own mark, B's List deleted
// A's host shim as an orphan.
func TestNetworkStatesKeepApart(t *testing.T) {
	e, a := newNetEnv(t)
	ctx := context.Background()
	b := &Networks{Host: e.host, StateDir: t.TempDir()}
	if a.mark() == b.mark() || a.mark() == netMark || (&Networks{}).mark() != netMark {
		t.Fatalf("marks: a %v, b %v, default %v: want distinct marks for distinct state directories and netMark for the default", a.mark(), b.mark(), (&Networks{}).mark())
	}
	rec, err := a.Create(ctx, NetworkSpec{Name: "na", Subnets: []netip.Prefix{pfx("10.0.20.0/24")}, HostShim: true,
		Options: netOpts(t, "parent", "p0")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Connect(ctx, ConnectSpec{Network: "na", Container: e.prefix + "ca"}); err != nil {
		t.Fatal(err)
	}
	if _, found, err := b.List(ctx); err != nil || len(found) != 0 {
		t.Fatalf("List of another state directory: found %v, %v; want nothing to repair", found, err)
	}
	recs, found, err := a.List(ctx)
	if err != nil || len(found) != 0 || len(recs) != 1 || len(recs[0].Endpoints) != 1 {
		t.Fatalf("A after B's List: %d networks, found %v, %v; want its network and endpoint intact", len(recs), found, err)
	}
	if !hostRouteVia(t, e.host, "10.0.20.0/24", rec.Shim.Interface) {
		t.Errorf("A's host shim %s or its route is gone after B's List", rec.Shim.Interface)
	}
	if err := a.Disconnect(ctx, "na", e.prefix+"ca"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(ctx, "na"); err != nil {
		t.Fatal(err)
	}
}
