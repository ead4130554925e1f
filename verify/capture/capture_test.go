package capture

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmlink/vmlink/internal/netns"
	"golang.org/x/sys/unix"
)

// Privileged tests: a throwaway named namespace with a veth pair a <-> b.
// Frames are sent on a with a raw AF_PACKET socket (tags inline, as a VLAN
// device or a switch port would put them on the wire) and captured on b,
// where the kernel's receive path moves the outer tag into skb metadata —
// exactly what the capture has to undo.

// requirePrivileged skips a test that needs root, with the reason and what
// to run instead; in CI (CI=true) it fails instead of skipping.
//
// TODO(capture): testenv.Require(t, testenv.FeatureVeth) once testenv lands.
func requirePrivileged(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("privileged capture test: skipped with -short (unit tier); run `go test ./verify/capture` as root")
	}
	if os.Geteuid() != 0 {
		msg := "needs root (namespaces, veth, packet sockets): run `sudo go test ./verify/capture`"
		if os.Getenv("CI") == "true" {
			tb.Fatal("CI=true but " + msg)
		}
		tb.Skip(msg)
	}
}

var nsSeq atomic.Int32

// ipCmd runs ip(8), the reference tool, and fails the test on error.
func ipCmd(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// vethNS is a namespace holding veth a (sender) and b (capture side).
type vethNS struct {
	ns         string
	macA, macB MAC
}

func newVethNS(tb testing.TB) *vethNS {
	tb.Helper()
	requirePrivileged(tb)
	ns := fmt.Sprintf("vmlt-%d-cap%d", os.Getpid(), nsSeq.Add(1))
	ipCmd(tb, "netns", "add", ns)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v %s", ns, err, out)
		}
	})
	// No IPv6 on the links: no router solicitations or MLD reports
	// between our frames.
	// Written to /proc/sys from a thread inside the namespace rather than
	// with sysctl(8), which the VM tier's guest does not have.
	for _, k := range []string{"all", "default"} {
		p := "/proc/sys/net/ipv6/conf/" + k + "/disable_ipv6"
		if err := netns.DoIn(ns, func() error { return os.WriteFile(p, []byte("1\n"), 0) }); err != nil {
			tb.Fatalf("disable IPv6 in %s: write %s: %v", ns, p, err)
		}
	}
	v := &vethNS{ns: ns, macA: MAC{0x02, 0xaa, 0, 0, 0, 0x0a}, macB: MAC{0x02, 0xbb, 0, 0, 0, 0x0b}}
	ipCmd(tb, "-n", ns, "link", "add", "name", "a", "address", v.macA.String(), "type", "veth", "peer", "name", "b", "address", v.macB.String())
	ipCmd(tb, "-n", ns, "link", "set", "dev", "a", "up")
	ipCmd(tb, "-n", ns, "link", "set", "dev", "b", "up")
	return v
}

// promiscuity reads IFLA_PROMISCUITY of dev as ip(8) reports it.
func (v *vethNS) promiscuity(tb testing.TB, dev string) int {
	tb.Helper()
	var links []struct {
		Promiscuity int `json:"promiscuity"`
	}
	out := ipCmd(tb, "-n", v.ns, "-d", "-j", "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		tb.Fatalf("ip -d -j link show %s: %v %q", dev, err, out)
	}
	return links[0].Promiscuity
}

// sender is a raw packet socket on a.
type sender struct {
	fd, ifindex int
}

func (v *vethNS) sender(tb testing.TB) *sender {
	tb.Helper()
	s := &sender{fd: -1}
	err := netns.DoIn(v.ns, func() error {
		var err error
		s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		tb.Fatalf("sender socket: %v", err)
	}
	tb.Cleanup(func() { unix.Close(s.fd) })
	ifr, _ := unix.NewIfreq("a")
	if err := unix.IoctlIfreq(s.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		tb.Fatal(err)
	}
	s.ifindex = int(ifr.Uint32())
	return s
}

func (s *sender) send(tb testing.TB, frame []byte) {
	tb.Helper()
	if err := unix.Sendto(s.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: s.ifindex}); err != nil {
		tb.Fatalf("send: %v", err)
	}
}

// liveFrame is a frame to send and what the capture on b must report.
type liveFrame struct {
	name  string
	data  []byte
	vlans []Tag
	dir   Direction
}

// liveFrames are told apart by their ARP target address 10.9.0.<index+1>.
func (v *vethNS) liveFrames() []liveFrame {
	arp := func(i int, dst MAC) []byte {
		return arpBody(1, v.macA, [4]byte{10, 9, 0, 99}, MAC{}, [4]byte{10, 9, 0, byte(i + 1)})
	}
	other := MAC{0x02, 0xcc, 0, 0, 0, 0x0c}
	ipmc := MAC{0x01, 0x00, 0x5e, 0, 0, 0x01}
	var out []liveFrame
	add := func(name string, dst MAC, tags []Tag, dir Direction) {
		b := eth(dst, v.macA)
		for _, t := range tags {
			b = append(b, tagBytes(t.TPID, t.VID, t.PCP, t.DEI)...)
		}
		b = append(b, be16(0x0806)...)
		b = append(b, arp(len(out), dst)...)
		out = append(out, liveFrame{name: name, data: b, vlans: tags, dir: dir})
	}
	add("802.1Q 10 p3", bcast, []Tag{{TPID: 0x8100, VID: 10, PCP: 3}}, DirBroadcast)
	add("QinQ 802.1ad 100 / 802.1Q 20", bcast, []Tag{{TPID: 0x88a8, VID: 100, PCP: 1, DEI: true}, {TPID: 0x8100, VID: 20}}, DirBroadcast)
	add("802.1ad 200 only", bcast, []Tag{{TPID: 0x88a8, VID: 200}}, DirBroadcast)
	add("VLAN 0 priority p5 to b", v.macB, []Tag{{TPID: 0x8100, PCP: 5}}, DirHost)
	add("VLAN 0 TCI 0 to b", v.macB, []Tag{{TPID: 0x8100}}, DirHost)
	add("untagged to another host", other, nil, DirOtherHost)
	add("untagged multicast", ipmc, nil, DirMulticast)
	add("802.1Q 10 to another host", other, []Tag{{TPID: 0x8100, VID: 10}}, DirOtherHost)
	return out
}

// marker is the index a live frame carries (ARP target 10.9.0.i+1), or -1.
func marker(f *Frame) int {
	if f.Net != NetARP || !f.ARP.TargetIP.Is4() {
		return -1
	}
	a := f.ARP.TargetIP.As4()
	if a[0] != 10 || a[1] != 9 || a[2] != 0 || a[3] == 0 {
		return -1
	}
	return int(a[3]) - 1
}

// collect reads until every index in want arrived or ctx ends.
func collect(ctx context.Context, c *Capture, want int) (map[int]*Frame, error) {
	got := map[int]*Frame{}
	for len(got) < want {
		f, err := c.Next(ctx)
		if err != nil {
			return got, err
		}
		if i := marker(f); i >= 0 {
			got[i] = f.Clone()
		}
	}
	return got, nil
}

func TestCaptureRestoresTags(t *testing.T) {
	v := newVethNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	p0 := v.promiscuity(t, "b")
	capB, err := Open(ctx, Options{NetNS: v.ns, Iface: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer capB.Close()
	capA, err := Open(ctx, Options{NetNS: v.ns, Iface: "a", NoPromisc: true})
	if err != nil {
		t.Fatal(err)
	}
	defer capA.Close()
	if p := v.promiscuity(t, "b"); p != p0+1 {
		t.Errorf("promiscuity of b during the capture = %d, want %d", p, p0+1)
	}
	if p := v.promiscuity(t, "a"); p != 0 {
		t.Errorf("NoPromisc capture made a promiscuous (%d)", p)
	}

	frames := v.liveFrames()
	s := v.sender(t)
	for _, lf := range frames {
		s.send(t, lf.data)
	}

	gotB, err := collect(ctx, capB, len(frames))
	if err != nil {
		t.Fatalf("capture on b: %v (got %d of %d frames)", err, len(gotB), len(frames))
	}
	gotA, err := collect(ctx, capA, len(frames))
	if err != nil {
		t.Fatalf("capture on a: %v (got %d of %d frames)", err, len(gotA), len(frames))
	}
	for i, lf := range frames {
		fb, fa := gotB[i], gotA[i]
		// On b the outer tag came from aux data: the restored frame must be
		// byte for byte what a sent, with the same stack and TPIDs.
		if !bytes.Equal(fb.Data, lf.data) {
			t.Errorf("%s: b captured\n%x\nsent\n%x", lf.name, fb.Data, lf.data)
		}
		if !slices.Equal(fb.VLANs, lf.vlans) && !(len(fb.VLANs) == 0 && len(lf.vlans) == 0) {
			t.Errorf("%s: b stack %v, want %v", lf.name, fb.VLANs, lf.vlans)
		}
		if fb.Dir != lf.dir {
			t.Errorf("%s: b direction %v, want %v", lf.name, fb.Dir, lf.dir)
		}
		if fb.IfIndex != capB.ifindex || fb.Length != len(lf.data) || fb.Truncated {
			t.Errorf("%s: b ifindex %d (want %d) length %d truncated %v", lf.name, fb.IfIndex, capB.ifindex, fb.Length, fb.Truncated)
		}
		// On a the frame leaves with its tags inline and is seen outgoing.
		if !bytes.Equal(fa.Data, lf.data) || fa.Dir != DirOutgoing {
			t.Errorf("%s: a captured %v %x", lf.name, fa.Dir, fa.Data)
		}
	}
	st, err := capB.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Frames < uint64(len(frames)) || st.KernelPackets < uint64(len(frames)) || st.KernelDrops != 0 {
		t.Errorf("stats %+v", st)
	}

	capA.Close()
	capB.Close()
	if p := v.promiscuity(t, "b"); p != p0 {
		t.Errorf("promiscuity of b after Close = %d, want %d", p, p0)
	}
	st2, _ := capB.Stats()
	if st2.KernelPackets < st.KernelPackets {
		t.Errorf("stats went backwards after Close: %+v then %+v", st, st2)
	}
	if _, err := capB.Next(ctx); err == nil {
		t.Error("Next after Close succeeded")
	}
}

// Filters run in the kernel against the aux-data tag and the inline ones.
func TestCaptureBPFFilter(t *testing.T) {
	v := newVethNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	frames := v.liveFrames()

	all, err := Open(ctx, Options{NetNS: v.ns, Iface: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	cases := []struct {
		name string
		f    Filter
		keep []int // indexes into liveFrames
	}{
		{"vlan 10 (aux outer tag)", Filter{VLAN: u16p(10)}, []int{0, 7}},
		{"vlan 20 (inline inner tag)", Filter{VLAN: u16p(20)}, []int{1}},
		{"vlan 100 802.1ad", Filter{VLAN: u16p(100), TPID: EtherType8021AD}, []int{1}},
		{"vlan 100 802.1Q", Filter{VLAN: u16p(100), TPID: EtherType8021Q}, nil},
		{"any 802.1ad", Filter{TPID: EtherType8021AD}, []int{1, 2}},
		{"vlan 0", Filter{VLAN: u16p(0)}, []int{3, 4}},
		{"mac b", Filter{MAC: macp(v.macB)}, []int{3, 4}},
		{"arp and vlan 200", Filter{VLAN: u16p(200), EtherType: etp(EtherTypeARP)}, []int{2}},
		{"ipv4", Filter{EtherType: etp(EtherTypeIPv4)}, nil},
	}
	caps := make([]*Capture, len(cases))
	for i, tc := range cases {
		c, err := Open(ctx, Options{NetNS: v.ns, Iface: "b", Filter: tc.f, NoPromisc: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		defer c.Close()
		caps[i] = c
	}
	s := v.sender(t)
	for _, lf := range frames {
		s.send(t, lf.data)
	}
	if got, err := collect(ctx, all, len(frames)); err != nil {
		t.Fatalf("unfiltered capture: %v (%d frames)", err, len(got))
	}
	// Every socket got its copy in the same softirq as the unfiltered one;
	// a short grace period covers the last frame's delivery order.
	for i, tc := range cases {
		dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		got, err := collect(dctx, caps[i], len(frames))
		dcancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var idx []int
		for k := range got {
			idx = append(idx, k)
		}
		slices.Sort(idx)
		if !slices.Equal(idx, tc.keep) && !(len(idx) == 0 && len(tc.keep) == 0) {
			t.Errorf("%s kept frames %v, want %v", tc.name, idx, tc.keep)
		}
		for k, f := range got {
			if !bytes.Equal(f.Data, frames[k].data) {
				t.Errorf("%s: frame %d not restored: %x", tc.name, k, f.Data)
			}
		}
	}
}

func TestCaptureErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, Options{}); err == nil || !strings.Contains(err.Error(), "no interface given") {
		t.Errorf("no iface: %v", err)
	}
	if _, err := Open(ctx, Options{Iface: "x", Filter: Filter{VLAN: u16p(5000)}}); err == nil || !strings.Contains(err.Error(), "0-4095") {
		t.Errorf("bad filter: %v", err)
	}
	if _, err := Open(ctx, Options{Iface: "x", Snaplen: 10}); err == nil || !strings.Contains(err.Error(), "snap length") {
		t.Errorf("bad snaplen: %v", err)
	}
	if _, err := Open(ctx, Options{Iface: "b", NetNS: "vmlt-no-such-ns"}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing netns: %v", err)
	}
	v := newVethNS(t)
	if _, err := Open(ctx, Options{NetNS: v.ns, Iface: "nosuch0"}); err == nil || !errors.Is(err, unix.ENODEV) {
		t.Errorf("missing iface: %v", err)
	}
	// Like tcpdump, a capture on a down interface is refused.
	if _, err := Open(ctx, Options{NetNS: v.ns, Iface: "lo"}); err == nil || !strings.Contains(err.Error(), "is down") {
		t.Errorf("down interface: %v", err)
	}
	// A cancelled context ends a blocked Next promptly with ctx's error.
	c, err := Open(ctx, Options{NetNS: v.ns, Iface: "b", NoPromisc: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cctx, ccancel := context.WithCancel(ctx)
	go func() { time.Sleep(50 * time.Millisecond); ccancel() }()
	if _, err := c.Next(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next after cancel: %v", err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer dcancel()
	if _, err := c.Next(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next past deadline: %v", err)
	}
	if frames, err := c.collect(dctx); err != nil || len(frames) != 0 {
		t.Errorf("Collect on a quiet link: %v, %d frames", err, len(frames))
	}
	// The interface going away ends the capture with an error.
	ipCmd(t, "-n", v.ns, "link", "del", "dev", "b")
	if _, err := c.Next(ctx); err == nil || !strings.Contains(err.Error(), "went down") {
		t.Errorf("Next after the link was deleted: %v", err)
	}
}

// The kernel drops the promiscuous membership when the socket goes, even
// when the capturing process is killed: nothing of ours has to run.
func TestCapturePromiscRestoredOnKill(t *testing.T) {
	v := newVethNS(t)
	p0 := v.promiscuity(t, "b")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestCaptureHelperProcess$")
	cmd.Env = append(os.Environ(), "VMLINK_CAPTURE_HELPER="+v.ns)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "capturing") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper said %q", line)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("helper did not start capturing")
	}
	if p := v.promiscuity(t, "b"); p != p0+1 {
		t.Errorf("promiscuity while the helper captures = %d, want %d", p, p0+1)
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if p := v.promiscuity(t, "b"); p != p0 {
		t.Errorf("promiscuity after the capturing process was killed = %d, want %d", p, p0)
	}
}

// TestCaptureHelperProcess is the process TestCapturePromiscRestoredOnKill
// kills; it does nothing in a normal run.
func TestCaptureHelperProcess(t *testing.T) {
	ns := os.Getenv("VMLINK_CAPTURE_HELPER")
	if ns == "" {
		t.Skip("helper process for TestCapturePromiscRestoredOnKill")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Open(ctx, Options{NetNS: ns, Iface: "b"})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("capturing")
	for {
		if _, err := c.Next(ctx); err != nil {
			os.Exit(0)
		}
	}
}

// libpcap (tcpdump -w) restores the outer tag too: its file and our live
// capture must agree frame by frame, and FileReader must read its file.
func TestReadTcpdumpCapture(t *testing.T) {
	tcpdump := needTool(t, "tcpdump", "tcpdump")
	v := newVethNS(t)
	frames := v.liveFrames()
	path := filepath.Join(t.TempDir(), "tcpdump.pcap")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// -U: write each packet; -c: stop after our frames; -Z root: the
	// Debian build drops privileges to user tcpdump by default.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", v.ns, tcpdump, "-i", "b", "-U", "-Z", "root",
		"-c", fmt.Sprint(len(frames)), "-w", path)
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// tcpdump prints "listening on b" once its socket is bound.
	listening := make(chan struct{})
	var stderr strings.Builder
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			stderr.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-stderrDone:
		cmd.Wait()
		t.Fatalf("tcpdump did not start: %s", stderr.String())
	case <-ctx.Done():
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("tcpdump did not start listening")
	}
	s := v.sender(t)
	for _, lf := range frames {
		s.send(t, lf.data)
	}
	<-stderrDone
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tcpdump: %v\n%s", err, stderr.String())
	}
	r, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[int]*Frame{}
	for {
		f, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i := marker(f); i >= 0 {
			got[i] = f.Clone()
		}
	}
	if len(got) != len(frames) {
		t.Fatalf("read %d of %d frames from tcpdump's file", len(got), len(frames))
	}
	for i, lf := range frames {
		if !bytes.Equal(got[i].Data, lf.data) {
			t.Errorf("%s: tcpdump wrote\n%x\nsent\n%x", lf.name, got[i].Data, lf.data)
		}
		if len(lf.vlans) > 0 && !slices.Equal(got[i].VLANs, lf.vlans) {
			t.Errorf("%s: stack %v, want %v", lf.name, got[i].VLANs, lf.vlans)
		}
	}
}

func TestDiscoverOwners(t *testing.T) {
	v := newVethNS(t)
	o, err := DiscoverOwners(context.Background(), "")
	if err != nil {
		// Other tests' namespaces may vanish while we walk them; ours must be there.
		t.Logf("DiscoverOwners: %v", err)
	}
	if got, want := o.Owner(v.macA), v.ns+"/a"; got != want {
		t.Errorf("owner of %v = %q, want %q", v.macA, got, want)
	}
	if got, want := o.Owner(v.macB), v.ns+"/b"; got != want {
		t.Errorf("owner of %v = %q, want %q", v.macB, got, want)
	}
}
