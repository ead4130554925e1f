package verify

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/testenv"
	"golang.org/x/sys/unix"
)

// doctorLab is kernelLab (parent h0 with the host's 10.77.0.1/24, a
// switch, an outside station 10.77.0.99) with children of random MACs:
// doctor's duplicate-MAC check looks into every namespace of the machine,
// where other tests' fixed MACs may live at the same time.
type doctorLab struct {
	*kernelLab
	sysfs string // a fake sysfs root showing h0 as a wired interface
}

func newDoctorLab(t *testing.T) *doctorLab {
	l := &doctorLab{kernelLab: newKernelLab(t), sysfs: t.TempDir()}
	l.fakeSysfs(t, false)
	return l
}

// fakeSysfs writes class/net/h0 with h0's real ifindex, and a wireless
// directory when wireless: no wireless NIC exists where the tests run.
func (l *doctorLab) fakeSysfs(t *testing.T, wireless bool) {
	t.Helper()
	dir := filepath.Join(l.sysfs, "class", "net", l.p.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ifindex"), []byte(strconv.Itoa(int(l.p.Index))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(dir, "wireless")
	if wireless {
		if err := os.MkdirAll(w, 0o755); err != nil {
			t.Fatal(err)
		}
	} else if err := os.RemoveAll(w); err != nil {
		t.Fatal(err)
	}
}

// kid is a child of h0 and the namespace it lives in.
type kid struct {
	Endpoint
	ns *testenv.Endpoint
}

// kid creates a macvlan in mode on h0 with a random MAC in a namespace of
// its own, with addr, up.
func (l *doctorLab) kid(t *testing.T, name, mode string, addr netip.Prefix) kid {
	t.Helper()
	ns := testenv.NewEndpoint(t)
	quietIPv6(t, ns.NetNS)
	mac := spareMAC().HardwareAddr()
	l.p.Host.Run(t, "ip", "link", "add", name, "link", l.p.Name, "address", mac.String(), "type", "macvlan", "mode", mode)
	l.p.Host.Run(t, "ip", "link", "set", name, "netns", ns.Name())
	t.Cleanup(func() { _, _ = ns.Exec(context.Background(), "ip", "link", "del", name) })
	ns.Run(t, "ip", "addr", "add", addr.String(), "dev", name)
	ns.Run(t, "ip", "link", "set", name, "up")
	return kid{Endpoint{NetNS: ns.Name(), Interface: name, MAC: mac, Addrs: []netip.Prefix{addr}}, ns}
}

// ping sends an echo request from ep's interface (verify's own echo probe:
// the VM guest has no ping) and fails t unless the reply comes. The
// kernel resolves the neighbour on the way, as ping would.
func ping(t *testing.T, from Endpoint, src, dst netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got bool
	err := netns.DoIn(from.NetNS, func() error {
		var err error
		got, err = echoProbe(ctx, from.Interface, src, dst, 4242, &pacer{floor: 2 * time.Second})
		return err
	})
	if err != nil || !got {
		t.Fatalf("echo from %s (%s) to %s: answered %v, %v", EndpointID(from), src, dst, got, err)
	}
}

func (l *doctorLab) doctor(t *testing.T, o DoctorOptions) *DoctorReport {
	t.Helper()
	o.NetNS, o.Parent = l.p.Host.Name(), l.p.Name
	if o.SysRoot == "" {
		o.SysRoot = l.sysfs
	}
	if o.Wait == 0 {
		o.Wait = time.Second // the VM tier emulates its CPU
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Doctor(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// find returns the findings with id.
func find(rep *DoctorReport, id string) []Finding {
	var out []Finding
	for _, f := range rep.Findings {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

func logReport(t *testing.T, rep *DoctorReport) {
	t.Helper()
	var b strings.Builder
	_ = rep.WriteTable(&b)
	t.Log("\n" + b.String())
}

// want fails unless rep has exactly one finding id whose text holds every
// part, and returns it.
func want(t *testing.T, rep *DoctorReport, id string, parts ...string) Finding {
	t.Helper()
	fs := find(rep, id)
	if len(fs) != 1 {
		logReport(t, rep)
		t.Fatalf("%d %s findings, want 1", len(fs), id)
	}
	text := fs[0].What + " " + fs[0].Why + " " + strings.Join(fs[0].Fix, " ")
	for _, p := range parts {
		if !strings.Contains(text, p) {
			logReport(t, rep)
			t.Errorf("%s finding lacks %q", id, p)
		}
	}
	return fs[0]
}

func wantNone(t *testing.T, rep *DoctorReport, id string) {
	t.Helper()
	if fs := find(rep, id); len(fs) > 0 {
		logReport(t, rep)
		t.Errorf("%s found after the fix: %+v", id, fs)
	}
}

// A clean topology: bridge children with a host shim, every subnet the
// same, a reflecting switch, a station the children have talked to. No
// finding, and the wire probes really ran.
func TestDoctorClean(t *testing.T) {
	l := newDoctorLab(t)
	l.hairpin(t, true)
	a := l.kid(t, "c1", "bridge", l.childAddr(1))
	l.kid(t, "c2", "vepa", l.childAddr(2))
	l.p.Host.Run(t, "ip", "link", "add", "shim0", "link", l.p.Name, "type", "macvlan", "mode", "bridge")
	l.p.Host.Run(t, "ip", "addr", "add", "10.77.0.1/32", "dev", "shim0")
	l.p.Host.Run(t, "ip", "link", "set", "shim0", "up")
	ping(t, a.Endpoint, l.childAddr(1).Addr(), l.outAddr.Addr()) // c1 knows the station

	rep := l.doctor(t, DoctorOptions{})
	if !rep.OK() {
		logReport(t, rep)
		t.Fatalf("%d findings on a clean topology", len(rep.Findings))
	}
	for _, s := range rep.Skipped {
		t.Errorf("check skipped: %+v", s)
	}
}

func TestDoctorHostIsolation(t *testing.T) {
	l := newDoctorLab(t)
	c := l.kid(t, "c1", "bridge", l.childAddr(1))
	rep := l.doctor(t, DoctorOptions{})
	f := want(t, rep, FindHostIsolation, c.NetNS+"/c1", "link add vmshim0 link h0 type macvlan mode bridge", "route add 10.77.0.11/32 dev vmshim0")
	if f.Subject != l.p.Host.Name()+"/h0" || f.Severity != SeverityWarning {
		t.Errorf("subject %q severity %q", f.Subject, f.Severity)
	}
	// The fix, as printed (with ip for vmlink's link commands): the host
	// reaches the child, and the finding is gone.
	for _, cmd := range f.Fix {
		args := strings.Fields(cmd)
		if args[0] == "vmlink" {
			args[0] = "ip"
		}
		l.p.Host.Run(t, args[0], args[3:]...) // drop "ip -n NS"
	}
	ping(t, Endpoint{NetNS: l.p.Host.Name(), Interface: "vmshim0"}, l.hostAddr.Addr(), l.childAddr(1).Addr())
	wantNone(t, l.doctor(t, DoctorOptions{}), FindHostIsolation)
}

func TestDoctorWirelessParent(t *testing.T) {
	l := newDoctorLab(t)
	l.kid(t, "c1", "bridge", l.childAddr(1))
	l.fakeSysfs(t, true)
	f := want(t, l.doctor(t, DoctorOptions{}), FindWirelessParent, "ipvlan mode l2")
	if f.Severity != SeverityError {
		t.Errorf("severity %q with a macvlan child, want error", f.Severity)
	}
	l.fakeSysfs(t, false)
	wantNone(t, l.doctor(t, DoctorOptions{}), FindWirelessParent)

	// sysfs of another namespace (another ifindex): not checked, and said.
	if err := os.WriteFile(filepath.Join(l.sysfs, "class", "net", "h0", "ifindex"), []byte("99999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := l.doctor(t, DoctorOptions{})
	skipped := false
	for _, s := range rep.Skipped {
		skipped = skipped || s.Check == "wireless parent"
	}
	if !skipped {
		t.Errorf("a sysfs of another namespace was not reported as unchecked: %+v", rep.Skipped)
	}
}

func TestDoctorParentDownAndNoCarrier(t *testing.T) {
	l := newDoctorLab(t)
	l.kid(t, "c1", "bridge", l.childAddr(1))
	l.p.Host.Run(t, "ip", "link", "set", "h0", "down")
	want(t, l.doctor(t, DoctorOptions{}), FindParentDown, "link set h0 up")
	l.p.Host.Run(t, "ip", "link", "set", "h0", "up")
	l.p.Switch.NS.Run(t, "ip", "link", "set", l.p.Switch.Uplink, "down")
	want(t, l.doctor(t, DoctorOptions{}), FindNoCarrier, "vmlink -n "+l.p.Switch.NS.Name()+" link set up0 up")
	l.p.Switch.NS.Run(t, "ip", "link", "set", l.p.Switch.Uplink, "up")
	rep := l.doctor(t, DoctorOptions{})
	wantNone(t, rep, FindParentDown)
	wantNone(t, rep, FindNoCarrier)
}

// An X.N parent whose lower exists: a finding exactly when the kernel has
// no 802.1Q (the host here), and a missing interface otherwise (the VM).
// VLANSupport answers as the real probe does on each.
func TestDoctorNo8021Q(t *testing.T) {
	l := newDoctorLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, missing := range []bool{true, false} {
		support := func(context.Context) error {
			if missing {
				return fmt.Errorf("probe: %w", unix.EOPNOTSUPP)
			}
			return nil
		}
		rep, err := Doctor(ctx, DoctorOptions{NetNS: l.p.Host.Name(), Parent: "h0.10", VLANSupport: support, SysRoot: l.sysfs})
		if missing {
			if err != nil {
				t.Fatal(err)
			}
			want(t, rep, FindNo8021Q, "modprobe 8021q", "link add h0.10 link h0 type vlan id 10")
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "link add h0.10 link h0 type vlan id 10") {
			t.Errorf("with 802.1Q: %v, want no interface h0.10 with the command creating it", err)
		}
	}
}

func TestDoctorDuplicateMAC(t *testing.T) {
	l := newDoctorLab(t)
	c := l.kid(t, "c1", "bridge", l.childAddr(1))
	l.out.Run(t, "ip", "link", "set", l.out.Interface, "address", c.MAC.String())
	f := want(t, l.doctor(t, DoctorOptions{}), FindDuplicateMAC, c.NetNS+"/c1", l.out.Name()+"/eth0", "vmlink -n "+c.NetNS+" link set c1 address 02:76:")
	if f.Subject != c.MAC.String() {
		t.Errorf("subject %q, want %s", f.Subject, c.MAC)
	}
	l.out.Run(t, "ip", "link", "set", l.out.Interface, "address", l.outMAC.String())
	wantNone(t, l.doctor(t, DoctorOptions{}), FindDuplicateMAC)
}

func TestDoctorOverlappingSubnets(t *testing.T) {
	l := newDoctorLab(t)
	l.kid(t, "c1", "bridge", l.childAddr(1))
	c2 := l.kid(t, "c2", "bridge", netip.MustParsePrefix("10.77.1.12/16"))
	f := want(t, l.doctor(t, DoctorOptions{}), FindOverlap, c2.NetNS+"/c2 (10.77.0.0/16)")
	if len(f.Fix) != 1 || !strings.Contains(f.Fix[0], "addr add 10.77.") || !strings.Contains(f.Fix[0], "/16") {
		t.Errorf("fix %q: want the /24 widened to /16", f.Fix)
	}
	c2.ns.Run(t, "ip", "addr", "del", "10.77.1.12/16", "dev", "c2")
	c2.ns.Run(t, "ip", "addr", "add", "10.77.0.12/24", "dev", "c2")
	wantNone(t, l.doctor(t, DoctorOptions{}), FindOverlap)

	// A vmlink network on h0 with a subnet overlapping the children's.
	nets := []DoctorNetwork{{Name: "n2", Host: l.p.Host.Name(), Parent: "h0", Driver: "macvlan", Subnets: []netip.Prefix{netip.MustParsePrefix("10.77.0.128/25")}}}
	want(t, l.doctor(t, DoctorOptions{Networks: nets}), FindOverlap, "network n2 (10.77.0.128/25)", "vmlink -n "+l.p.Host.Name()+" net rm n2")
}

// An ipvlan may be given an MTU above its parent's (macvlan and VLAN
// links may not: the kernel refuses them with EINVAL/ERANGE).
func TestDoctorMTUAboveParent(t *testing.T) {
	testenv.Require(t, testenv.FeatureIPVlan)
	l := newDoctorLab(t)
	ns := testenv.NewEndpoint(t)
	l.p.Host.Run(t, "ip", "link", "add", "ipv1", "link", "h0", "mtu", "9000", "type", "ipvlan", "mode", "l2")
	l.p.Host.Run(t, "ip", "link", "set", "ipv1", "netns", ns.Name())
	t.Cleanup(func() { _, _ = ns.Exec(context.Background(), "ip", "link", "del", "ipv1") })
	ns.Run(t, "ip", "link", "set", "ipv1", "up")
	want(t, l.doctor(t, DoctorOptions{}), FindMTUAboveParent, ns.Name()+"/ipv1 has MTU 9000, above the 1500", "vmlink -n "+ns.Name()+" link set ipv1 mtu 1500")
	ns.Run(t, "ip", "link", "set", "ipv1", "mtu", "1500")
	wantNone(t, l.doctor(t, DoctorOptions{}), FindMTUAboveParent)
}

func TestDoctorVEPAWithoutReflection(t *testing.T) {
	l := newDoctorLab(t)
	l.hairpin(t, false)
	a := l.kid(t, "c1", "vepa", l.childAddr(1))
	l.kid(t, "c2", "vepa", l.childAddr(2))
	want(t, l.doctor(t, DoctorOptions{}), FindVEPANoReflect, "hairpin on", "vmlink -n "+a.NetNS+" link set c1 type macvlan mode bridge")
	l.hairpin(t, true)
	wantNone(t, l.doctor(t, DoctorOptions{}), FindVEPANoReflect)
}

// Port security on the switch: the parent's port is locked (802.1X/MAB:
// only source MACs with an FDB entry pass) with the parent's MAC as its
// one static entry. The station answers the parent's ARP probe, and never
// sees the child's; unlocked, it answers both.
func TestDoctorChildMACUnanswered(t *testing.T) {
	l := newDoctorLab(t)
	c := l.kid(t, "c1", "bridge", l.childAddr(1))
	ping(t, c.Endpoint, l.childAddr(1).Addr(), l.outAddr.Addr()) // c1 knows the station
	sw := l.p.Switch.NS
	sw.Run(t, "ip", "link", "set", "up0", "type", "bridge_slave", "learning", "off")
	sw.Run(t, "bridge", "link", "set", "dev", "up0", "locked", "on")
	sw.Run(t, "bridge", "fdb", "replace", l.parentMAC.String(), "dev", "up0", "master", "static")
	_, _ = sw.Exec(context.Background(), "bridge", "fdb", "del", c.MAC.String(), "dev", "up0", "master")
	want(t, l.doctor(t, DoctorOptions{}), FindChildMACDropped, l.outAddr.Addr().String()+" answered", c.NetNS+"/c1 ("+c.MAC.String()+")", "type ipvlan mode l2")
	sw.Run(t, "bridge", "link", "set", "dev", "up0", "locked", "off")
	rep := l.doctor(t, DoctorOptions{})
	wantNone(t, rep, FindChildMACDropped)
	for _, s := range rep.Skipped {
		if s.Check == "child MACs on the wire" {
			t.Errorf("the probe did not run after unlocking: %+v", s)
		}
	}
}
