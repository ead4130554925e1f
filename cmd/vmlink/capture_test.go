package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/verify/capture"
	"golang.org/x/sys/unix"
)

func runVmlink(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestParseTPID: --tpid takes the VLAN protocol words and numbers of `ip
// link … protocol` (the one vocabulary) and the 0x9100 tag by number, and
// refuses a payload type.
func TestParseTPID(t *testing.T) {
	for in, want := range map[string]capture.EtherType{"802.1q": 0x8100, "802.1Q": 0x8100, "802.1ad": 0x88a8, "802.1AD": 0x88a8, "0x8100": 0x8100, "0x88a8": 0x88a8, "33024": 0x8100, "0x9100": 0x9100} {
		if got, err := parseTPID(in); err != nil || got != want {
			t.Errorf("parseTPID(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0x0800", "arp", "x", "", "0x10000"} {
		if got, err := parseTPID(in); err == nil {
			t.Errorf("parseTPID(%q) = %v, want an error", in, got)
		}
	}
}

func TestCaptureUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"capture"}, "give -i IFACE"},
		{[]string{"capture", "-i", "h0", "-r", "f"}, "-i and -r exclude each other"},
		{[]string{"capture", "-r", "f", "-c", "0"}, "-c"},
		{[]string{"capture", "-r", "f", "-c", "x"}, "COUNT must be a positive number"},
		{[]string{"capture", "-r", "f", "--vlan", "4096"}, "--vlan"},
		{[]string{"capture", "-r", "f", "--vlan", "ten"}, "use a VLAN id 0-4095"},
		{[]string{"capture", "-r", "f", "--mac", "02:00"}, "--mac"},
		{[]string{"capture", "-r", "f", "--ethertype", "tcp"}, "use arp, ipv4, ipv6"},
		{[]string{"capture", "-r", "f", "--ethertype", "0x8100"}, "VLAN tag"},
		{[]string{"capture", "-r", "f", "--tpid", "0x0800"}, "--tpid"},
		{[]string{"capture", "-r", "f", "--timeout", "soon"}, "--timeout"},
		{[]string{"capture", "-i", "h0", "--snaplen", "10"}, "--snaplen"},
		{[]string{"capture", "-r", "f", "--no-promisc"}, "applies to -i only"},
		{[]string{"capture", "-i", "h0", "-w", "-", "-j"}, "pick one"},
		{[]string{"capture", "-r", "f", "--bogus"}, "bogus"},
		{[]string{"capture", "-r", "f", "vlan", "10"}, "filters are options"},
	} {
		code, _, stderr := runVmlink(tc.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.args, code, exitUsage)
		}
		if !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: stderr %q, want one line with %q", tc.args, stderr, tc.want)
		}
	}
	code, stdout, _ := runVmlink("capture", "help")
	if code != exitOK || !strings.Contains(stdout, "--ethertype") {
		t.Errorf("help: exit %d %q", code, stdout)
	}
}

// Frames built byte by byte: an 802.1Q ARP request, a QinQ one and an
// untagged one, from two MACs.
func testPcap(t *testing.T) string {
	t.Helper()
	be := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	src1 := []byte{2, 0, 0, 0, 0, 1}
	src2 := []byte{2, 0, 0, 0, 0, 2}
	bc := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	arp := func(src []byte) []byte {
		b := append(be(1), be(0x0800)...)
		b = append(b, 6, 4, 0, 1)
		b = append(b, src...)
		b = append(b, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2)
		return b
	}
	frame := func(src []byte, tags ...uint16) []byte {
		b := append(append([]byte{}, bc...), src...)
		for _, t := range tags {
			b = append(b, be(t)...)
		}
		return append(append(b, be(0x0806)...), arp(src)...)
	}
	path := filepath.Join(t.TempDir(), "in.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := capture.NewPcapWriter(f, 0)
	t0 := time.Unix(1700000000, 0)
	for i, d := range [][]byte{
		frame(src1, 0x8100, 10),
		frame(src1, 0x88a8, 100, 0x8100, 20),
		frame(src2),
	} {
		if err := w.WritePacket(t0.Add(time.Duration(i)*time.Second), d, 0); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	f.Close()
	return path
}

func TestCaptureReadFile(t *testing.T) {
	t.Setenv("TZ", "UTC")
	path := testPcap(t)
	code, stdout, stderr := runVmlink("capture", "-r", path)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(stdout, "\n")
	if !strings.Contains(lines[0], "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype 802.1Q (0x8100), length 46: vlan 10, p 0, ethertype ARP (0x0806), Request who-has 10.0.0.2 tell 10.0.0.1, length 28") {
		t.Errorf("first line %q", lines[0])
	}
	for _, want := range []string{"3 frames captured", "802.1ad 100 / 802.1Q 20", "802.1Q 10", "untagged", "02:00:00:00:00:02"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	// JSON lines on stdout, the summary on stderr; the filter applies.
	code, stdout, stderr = runVmlink("-j", "capture", "-r", path, "--vlan", "20")
	if code != exitOK || strings.Count(stdout, "\n") != 1 || !strings.Contains(stderr, "1 frames captured") {
		t.Fatalf("json: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var obj struct {
		VLANs []struct {
			TPID, VID, PCP int
			DEI            bool
		}
		EtherType int
	}
	if err := json.Unmarshal([]byte(stdout), &obj); err != nil {
		t.Fatal(err)
	}
	if len(obj.VLANs) != 2 || obj.VLANs[0].TPID != 0x88a8 || obj.VLANs[1].VID != 20 || obj.EtherType != 0x0806 {
		t.Errorf("json frame %+v", obj)
	}

	// -c and -w: a pcapng that reads back with the same frames.
	out := filepath.Join(t.TempDir(), "out.pcapng")
	code, stdout, stderr = runVmlink("capture", "-r", path, "-c", "2", "-w", out)
	if code != exitOK || stdout != "" || !strings.Contains(stderr, "2 frames captured") {
		t.Fatalf("-w: exit %d %q %q", code, stdout, stderr)
	}
	r, err := capture.OpenFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Format() != capture.FormatPcapng {
		t.Errorf("-w wrote %v", r.Format())
	}
	n := 0
	for {
		f, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if len(f.VLANs) == 0 {
			t.Errorf("frame %d lost its tags", n)
		}
	}
	if n != 2 {
		t.Errorf("-c 2 wrote %d frames", n)
	}

	if code, _, stderr := runVmlink("capture", "-r", filepath.Join(t.TempDir(), "missing")); code != exitUsage || strings.Count(stderr, "\n") != 1 {
		t.Errorf("missing file: exit %d %q", code, stderr)
	}
}

// captureNeedsRoot skips a privileged test with the reason; in CI it fails.
func captureNeedsRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("privileged: skipped with -short; run `go test ./cmd/vmlink` as root")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but the live capture test needs root")
		}
		t.Skip("needs root (namespaces, veth, packet sockets): run `sudo go test ./cmd/vmlink`")
	}
}

// vethNS makes a throwaway namespace with veth a <-> b and returns its name
// and a function sending a raw frame on a.
func vethNS(t *testing.T) (string, func([]byte)) {
	t.Helper()
	captureNeedsRoot(t)
	ns := fmt.Sprintf("vmlt-%d-cli%d", os.Getpid(), time.Now().UnixNano()%100000)
	ip := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	// Written to /proc/sys from a thread inside the namespace rather than
	// with sysctl(8), which the VM tier's guest does not have.
	if err := disableIPv6Default(ns); err != nil {
		t.Fatal(err)
	}
	ip("-n", ns, "link", "add", "name", "a", "type", "veth", "peer", "name", "b")
	ip("-n", ns, "link", "set", "dev", "a", "up")
	ip("-n", ns, "link", "set", "dev", "b", "up")
	h, err := netns.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fd := -1
	if err := h.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	ifr, _ := unix.NewIfreq("a")
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		t.Fatal(err)
	}
	idx := int(ifr.Uint32())
	return ns, func(frame []byte) {
		if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: idx}); err != nil {
			t.Fatal(err)
		}
	}
}

// tagged is an 802.1ad-tagged broadcast frame from 02:…:0a with an
// unknown payload type, padded to 60 bytes.
func tagged(vid uint16) []byte {
	b := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x0a, 0x88, 0xa8}
	b = binary.BigEndian.AppendUint16(b, vid)
	b = append(b, 0x88, 0xb5)
	return append(b, make([]byte, 60-len(b))...)
}

// The capture runs as its own process (this test binary re-executed), so
// that SIGINT can end it the way Ctrl-C does.
func TestCaptureLiveInterrupt(t *testing.T) {
	ns, send := vethNS(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestVmlinkHelperProcess$")
	cmd.Env = append(os.Environ(), "VMLINK_HELPER_ARGS="+strings.Join([]string{"-n", ns, "capture", "-i", "b", "--vlan", "7"}, "\x1f"))
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Send until the capture shows a frame (it may not be bound yet).
	deadline := time.After(10 * time.Second)
	var first string
	for first == "" {
		send(tagged(9)) // filtered out
		send(tagged(7))
		select {
		case first = <-lines:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no frame captured; stderr: %s", stderr.String())
		}
	}
	if !strings.Contains(first, "B   02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff, ethertype 802.1Q-QinQ (0x88a8), length 60: vlan 7, p 0, ethertype Unknown (0x88b5)") {
		t.Errorf("first line %q", first)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGINT: %v; stderr %s", err, stderr.String())
	}
	out := strings.Join(rest, "\n")
	for _, want := range []string{"frames captured", "dropped by kernel", "802.1ad 7"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "vlan 9,") || strings.Contains(out, "802.1ad 9") {
		t.Errorf("--vlan 7 let VLAN 9 through:\n%s", out)
	}
}

// TestVmlinkHelperProcess runs vmlink with the arguments in
// VMLINK_HELPER_ARGS; it does nothing in a normal run.
func TestVmlinkHelperProcess(t *testing.T) {
	args := os.Getenv("VMLINK_HELPER_ARGS")
	if args == "" {
		t.Skip("helper process for the live capture tests")
	}
	os.Exit(run(strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
}

// -w - streams pcapng; --timeout ends the capture.
func TestCaptureLivePcapngStream(t *testing.T) {
	ns, send := vethNS(t)
	done := make(chan struct{})
	var code int
	var stdout, stderr string
	go func() {
		defer close(done)
		code, stdout, stderr = runVmlink("-n", ns, "capture", "-i", "b", "-w", "-", "--timeout", "1500ms")
	}()
	// The capture is bound once it has made b promiscuous: then send.
	for deadline := time.Now().Add(10 * time.Second); promiscuity(t, ns, "b") == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the capture never made b promiscuous")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		send(tagged(uint16(100 + i)))
	}
	<-done
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	r, err := capture.NewFileReader(strings.NewReader(stdout))
	if err != nil {
		t.Fatal(err)
	}
	var vids []uint16
	for {
		f, err := r.Next(context.Background())
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		if len(f.VLANs) == 1 && f.VLANs[0].TPID == 0x88a8 && f.Dir == capture.DirBroadcast {
			vids = append(vids, f.VLANs[0].VID)
		}
	}
	if fmt.Sprint(vids) != "[100 101 102 103 104]" {
		t.Errorf("streamed VIDs %v; stderr %s", vids, stderr)
	}
	if !strings.Contains(stderr, "5 frames captured") {
		t.Errorf("stderr %q", stderr)
	}
}

// promiscuity reads IFLA_PROMISCUITY as ip(8) reports it.
func promiscuity(t *testing.T, ns, dev string) int {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-d", "-j", "link", "show", "dev", dev).Output()
	if err != nil {
		t.Fatalf("ip link show: %v", err)
	}
	var links []struct {
		Promiscuity int `json:"promiscuity"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s: %v %s", dev, err, out)
	}
	return links[0].Promiscuity
}

// disableIPv6Default sets net.ipv6.conf.default.disable_ipv6=1 in the named
// namespace: /proc/sys/net shows the namespace of the thread that opens it.
func disableIPv6Default(ns string) error {
	h, err := netns.Open(ns)
	if err != nil {
		return fmt.Errorf("disable IPv6 in %s: %w", ns, err)
	}
	defer h.Close()
	const p = "/proc/sys/net/ipv6/conf/default/disable_ipv6"
	if err := h.Do(func() error { return os.WriteFile(p, []byte("1\n"), 0) }); err != nil {
		return fmt.Errorf("disable IPv6 in %s: write %s: %w", ns, p, err)
	}
	return nil
}
