package testenv_test

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/testenv"
)

var pfx = netip.MustParsePrefix

func TestParentAndStation(t *testing.T) {
	p := testenv.NewParent(t, testenv.ParentOptions{Addrs: []netip.Prefix{pfx("10.0.0.1/24")}})
	st := p.Switch.Attach(t, testenv.EndpointOptions{Addrs: []netip.Prefix{pfx("10.0.0.2/24")}})

	if p.Name != "p0" || p.Index == 0 || len(p.MAC) != 6 {
		t.Errorf("parent %+v", p)
	}
	if l := p.Host.Link(t, "p0"); l.Flags&unix.IFF_UP == 0 || l.Attrs.Info == nil || l.Attrs.Info.Kind != "veth" {
		t.Errorf("p0 in %s is not an up veth: %+v", p.Host.Name(), l)
	}
	up := p.Switch.NS.Link(t, testenv.SwitchUplink)
	br := p.Switch.NS.Link(t, testenv.SwitchBridge)
	if up.Attrs.Master == nil || *up.Attrs.Master != uint32(br.Index) {
		t.Errorf("%s is not a port of %s", testenv.SwitchUplink, testenv.SwitchBridge)
	}
	if st.Interface != "eth0" || st.Port == "" || len(st.MAC) != 6 {
		t.Errorf("station %+v", st)
	}

	serveEcho(t, st.NetNS, netip.MustParseAddr("10.0.0.2"))
	serveEcho(t, p.Host, netip.MustParseAddr("10.0.0.1"))
	if !reaches(t, p.Host, netip.MustParseAddr("10.0.0.2")) {
		t.Error("host cannot reach the station through the switch")
	}
	if !reaches(t, st.NetNS, netip.MustParseAddr("10.0.0.1")) {
		t.Error("station cannot reach the host through the switch")
	}
}

// TestHairpinReflects proves the switch is a reflective relay only with
// hairpin on: two VEPA macvlans on the parent reach each other through it,
// and only then.
func TestHairpinReflects(t *testing.T) {
	testenv.Require(t, testenv.FeatureMacvlan)
	p := testenv.NewParent(t, testenv.ParentOptions{})
	if on, err := p.Switch.Hairpin(); err != nil || on {
		t.Fatalf("new switch: hairpin %v, %v; want off", on, err)
	}
	var eps []*testenv.Endpoint
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hc := p.Host.Dial(t)
	for i := range 2 {
		ep := testenv.NewEndpoint(t)
		mode := rtnl.MacvlanModeVEPA
		fd := uint32(ep.FD())
		name := fmt.Sprintf("mv%d", i)
		err := hc.NewLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: name, Link: &p.Index, NetNSFD: &fd,
			Info: &rtnl.LinkInfo{Kind: "macvlan", Data: &rtnl.Macvlan{Mode: &mode}}}}, netlink.Create|netlink.Excl)
		if err != nil {
			t.Fatal(err)
		}
		addr := pfx(fmt.Sprintf("10.1.0.%d/24", i+1))
		ep.SetUp(t, name)
		ep.AddAddr(t, name, addr)
		serveEcho(t, ep.NetNS, addr.Addr())
		eps = append(eps, ep)
	}
	if reaches(t, eps[0].NetNS, netip.MustParseAddr("10.1.0.2")) {
		t.Fatal("VEPA siblings reached each other with hairpin off")
	}
	if err := p.Switch.SetHairpin(true); err != nil {
		t.Fatal(err)
	}
	if on, err := p.Switch.Hairpin(); err != nil || !on {
		t.Fatalf("hairpin %v, %v after SetHairpin(true)", on, err)
	}
	if !reaches(t, eps[0].NetNS, netip.MustParseAddr("10.1.0.2")) {
		t.Fatal("VEPA siblings cannot reach each other with hairpin on")
	}
	if err := p.Switch.SetHairpin(false); err != nil {
		t.Fatal(err)
	}
	if on, err := p.Switch.Hairpin(); err != nil || on {
		t.Fatalf("hairpin %v, %v after SetHairpin(false)", on, err)
	}
}

// TestTopologyCleanup builds a parent, switch and station in a subtest
// and checks every namespace is gone when the subtest ends.
func TestTopologyCleanup(t *testing.T) {
	testenv.Require(t, testenv.FeaturePrivileged)
	var names []string
	t.Run("build", func(t *testing.T) {
		p := testenv.NewParent(t, testenv.ParentOptions{Hairpin: true})
		st := p.Switch.Attach(t, testenv.EndpointOptions{})
		names = []string{p.Host.Name(), p.Switch.NS.Name(), st.Name()}
		for _, n := range names {
			if !netns.Exists(n) {
				t.Fatalf("%s does not exist while the test runs", n)
			}
		}
	})
	if len(names) != 3 {
		t.Fatalf("subtest made %v", names)
	}
	for _, n := range names {
		if netns.Exists(n) {
			t.Errorf("%s survived its test", n)
		}
	}
}

func TestOptionsValidated(t *testing.T) {
	for _, tt := range []struct {
		opts testenv.ParentOptions
		want string
	}{
		{testenv.ParentOptions{Name: "averyveryverylongname"}, "at most 15"},
		{testenv.ParentOptions{Name: "a/b"}, "contains"},
		{testenv.ParentOptions{MAC: []byte{1, 0, 0, 0, 0, 1}}, "unicast"},
		{testenv.ParentOptions{Addrs: []netip.Prefix{{}}}, "invalid prefix"},
	} {
		msg := fatalOf(func(tb *fakeTB) { testenv.NewParent(tb, tt.opts) })
		if !strings.Contains(msg, tt.want) {
			t.Errorf("NewParent(%+v): %q, want it to say %q", tt.opts, msg, tt.want)
		}
	}
	msg := fatalOf(func(tb *fakeTB) {
		testenv.NewVLANSwitch(tb, testenv.VLANSwitchOptions{Trunk: []uint16{10, 4095}})
	})
	if !strings.Contains(msg, "1-4094") {
		t.Errorf("VLAN 4095 on a trunk: %q", msg)
	}
}

// fakeTB records the first Fatal and stops the goroutine, as testing does;
// validation errors must come before anything is created.
type fakeTB struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fakeTB) Cleanup(func()) {
	panic("fakeTB: validation must fail before anything needs cleaning up")
}
func (f *fakeTB) Skip(args ...any) { f.Fatalf("skip: %s", fmt.Sprint(args...)) }

func fatalOf(fn func(*fakeTB)) string {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.fatal
}
