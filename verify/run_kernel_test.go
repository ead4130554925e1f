package verify

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// kernelLab is a parent h0 in its own namespace, wired by a veth to a
// switch namespace holding a Linux bridge (port sw0, hairpin on or off) and
// an outside host o0 on the same bridge. Children are added per case.
type kernelLab struct {
	t                  *testing.T
	prefix             string
	parentNS, switchNS string
	outsideNS          string
	parentMAC, outMAC  net.HardwareAddr
	children           []string // namespaces of children, removed per case
	hostAddr, outAddr  netip.Prefix
	childAddr          func(i int) netip.Prefix
}

func requireKernelTests(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds namespaces, veths and macvlans on the host kernel: needs root; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (run as root, or `make test-vm`)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip to build the lab: install iproute2")
	}
}

func labIP(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func sysctlNS(t *testing.T, ns, path, val string) {
	t.Helper()
	// From a thread inside ns, not `ip netns exec ns sh`: the VM guest has no shell.
	if err := inNetNS(ns, func() error { return os.WriteFile("/proc/sys/"+path, []byte(val+"\n"), 0) }); err != nil {
		t.Fatalf("set %s in %s: %v", path, ns, err)
	}
}

func newNS(t *testing.T, name string) {
	t.Helper()
	labIP(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	// IPv6 off: the checks would cope, but fewer frames mean quieter failures.
	sysctlNS(t, name, "net/ipv6/conf/all/disable_ipv6", "1")
	sysctlNS(t, name, "net/ipv6/conf/default/disable_ipv6", "1")
}

func newKernelLab(t *testing.T) *kernelLab {
	requireKernelTests(t)
	var r [3]byte
	_, _ = rand.Read(r[:])
	l := &kernelLab{
		t:         t,
		prefix:    fmt.Sprintf("vmlt-%x", r),
		parentMAC: hw("02:00:00:00:01:01"),
		outMAC:    hw("02:00:00:00:01:99"),
		hostAddr:  netip.MustParsePrefix("10.77.0.1/24"),
		outAddr:   netip.MustParsePrefix("10.77.0.99/24"),
		childAddr: func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, 0, byte(10 + i)}), 24)
		},
	}
	l.parentNS, l.switchNS, l.outsideNS = l.prefix+"-p", l.prefix+"-s", l.prefix+"-o"
	newNS(t, l.parentNS)
	newNS(t, l.switchNS)
	// The outside host has a namespace of its own: in the switch's, br0
	// would answer ARP for o0's address with its own MAC (arp_ignore 0
	// answers for any local address on any interface).
	newNS(t, l.outsideNS)
	p, s, o := l.parentNS, l.switchNS, l.outsideNS
	labIP(t, "-n", p, "link", "add", "h0", "address", l.parentMAC.String(), "type", "veth", "peer", "name", "sw0", "netns", s)
	labIP(t, "-n", s, "link", "add", "br0", "type", "bridge", "stp_state", "0")
	labIP(t, "-n", s, "link", "set", "sw0", "master", "br0")
	labIP(t, "-n", o, "link", "add", "o0", "address", l.outMAC.String(), "type", "veth", "peer", "name", "o0p", "netns", s)
	labIP(t, "-n", s, "link", "set", "o0p", "master", "br0")
	for _, dev := range []string{"br0", "sw0", "o0p"} {
		labIP(t, "-n", s, "link", "set", dev, "up")
	}
	labIP(t, "-n", o, "addr", "add", l.outAddr.String(), "dev", "o0")
	labIP(t, "-n", o, "link", "set", "o0", "up")
	labIP(t, "-n", p, "addr", "add", l.hostAddr.String(), "dev", "h0")
	labIP(t, "-n", p, "link", "set", "h0", "up")
	return l
}

func (l *kernelLab) hairpin(on bool) {
	v := "off"
	if on {
		v = "on"
	}
	labIP(l.t, "-n", l.switchNS, "link", "set", "sw0", "type", "bridge_slave", "hairpin", v)
}

func (l *kernelLab) childMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0, 0, 0, 0x02, byte(i)}
}

// addChild creates macvlan c<i> on h0 in mode, moves it into its own
// namespace and gives it an address. Source-mode children list the outside
// host's and the parent's MACs.
func (l *kernelLab) addChild(i int, mode string) Endpoint {
	t := l.t
	ns := fmt.Sprintf("%s-c%d", l.prefix, i)
	newNS(t, ns)
	l.children = append(l.children, ns)
	name := fmt.Sprintf("c%d", i)
	mac := l.childMAC(i)
	args := []string{"-n", l.parentNS, "link", "add", name, "link", "h0"}
	if mode != "passthru" {
		args = append(args, "address", mac.String())
	} else {
		mac = l.parentMAC
	}
	args = append(args, "type", "macvlan", "mode", mode)
	labIP(t, args...)
	ep := Endpoint{Name: name, NetNS: ns, Interface: name, Kind: KindMacvlan, Mode: mode, MAC: mac, Addrs: []netip.Prefix{l.childAddr(i)}}
	if mode == "source" {
		labIP(t, "-n", l.parentNS, "link", "set", name, "type", "macvlan", "macaddr", "set", l.outMAC.String(), l.parentMAC.String())
		ep.SourceMACs = []net.HardwareAddr{l.outMAC, l.parentMAC}
	}
	labIP(t, "-n", l.parentNS, "link", "set", name, "netns", ns)
	labIP(t, "-n", ns, "addr", "add", l.childAddr(i).String(), "dev", name)
	labIP(t, "-n", ns, "link", "set", name, "up")
	return ep
}

// clearChildren deletes the children's namespaces (and so the macvlans).
func (l *kernelLab) clearChildren() {
	for _, ns := range l.children {
		labIP(l.t, "netns", "del", ns)
	}
	l.children = nil
}

func (l *kernelLab) topology(eps ...Endpoint) Topology {
	return Topology{
		Parent: Parent{Name: "h0", NetNS: l.parentNS, MAC: l.parentMAC, Addrs: []netip.Prefix{l.hostAddr}},
		Endpoints: append(eps, Endpoint{Name: "outside", NetNS: l.outsideNS, Interface: "o0", Kind: KindOutside,
			MAC: l.outMAC, Addrs: []netip.Prefix{l.outAddr}}),
	}
}

// TestModelMatchesKernel builds every macvlan mode (two children, one for
// passthru) and a few mixed pairs with the switch reflecting and not, runs
// Run with reflection detection, and asserts that every cell observed on
// the kernel is the model's, and that every check passes.
func TestModelMatchesKernel(t *testing.T) {
	l := newKernelLab(t)
	cases := [][]string{
		{"bridge", "bridge"},
		{"vepa", "vepa"},
		{"private", "private"},
		{"passthru"},
		{"source", "source"},
		{"bridge", "vepa"},
		{"bridge", "private"},
		{"vepa", "private"},
		{"bridge", "source"},
	}
	for _, modes := range cases {
		for _, reflect := range []bool{false, true} {
			name := strings.Join(modes, "+") + map[bool]string{true: "/reflect", false: "/noreflect"}[reflect]
			t.Run(name, func(t *testing.T) {
				l.t = t
				defer l.clearChildren()
				l.hairpin(reflect)
				var eps []Endpoint
				for i, m := range modes {
					eps = append(eps, l.addChild(i+1, m))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				var frames []*Frame
				rep, err := Run(ctx, l.topology(eps...), Options{OnFrame: func(f *Frame) { frames = append(frames, f) }})
				if err != nil {
					t.Fatal(err)
				}
				if rep.SwitchReflects != reflect {
					t.Errorf("detected reflection %v with hairpin %v: %s", rep.SwitchReflects, reflect, rep.ReflectDetail)
				}
				for _, p := range rep.Pairs {
					if p.Observed != p.Expected {
						t.Errorf("%s → %s: kernel %s, model %s (%s); probe: %s; %s", p.From, p.To, p.Observed, p.Expected, p.Why, p.Probe, p.Evidence)
					}
				}
				for _, c := range rep.Checks {
					if !c.OK {
						t.Errorf("check %s failed: %s", c.Name, c.Detail)
					}
				}
				if t.Failed() {
					var b strings.Builder
					_ = rep.WriteTable(&b)
					t.Log("\n" + b.String())
					for _, f := range frames {
						t.Logf("%s %s %s", f.Time.Format("05.000000"), f.Dir, f.Summary())
					}
				}
			})
		}
	}
}
