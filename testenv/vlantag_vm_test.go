//go:build vm

package testenv_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/testenv"
	"github.com/vmlink/vmlink/verify/capture"
)

// TestVLANTagsOnWire proves the kernel really tags: a VLAN sub-interface
// on a veth parent sends (ARP, then UDP) to an address in the peer's
// namespace, and the frames captured on the parent's peer carry the tag
// inline with the VID and TPID configured, 802.1Q and 802.1ad alike. Two
// independent witnesses look: verify/capture's AF_PACKET capture (tag restored
// from PACKET_AUXDATA) and tcpdump -e (libpcap's own restoration).
//
// It runs in the VM (8021q): make vm-tools && go test -count=1 \
//
//	-exec "$PWD/bin/vm/vmtest --kernel 6.1 --" -tags vm -run TestVLANTagsOnWire ./testenv/
func TestVLANTagsOnWire(t *testing.T) {
	testenv.Require(t, testenv.FeatureVLAN, testenv.FeatureVeth, testenv.FeatureTcpdump)
	for _, tc := range []struct {
		name  string
		vid   uint16
		proto rtnl.VLANProtocol
		// tcpdump's words for the TPID.
		dump string
	}{
		{"802.1Q", 10, rtnl.VLANProtocol8021Q, `ethertype 802\.1Q \(0x8100\)`},
		{"802.1ad", 100, rtnl.VLANProtocol8021AD, `ethertype 802\.1Q-QinQ \(0x88a8\)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, peer := testenv.NewNetNS(t), testenv.NewNetNS(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			// p0 in host, its peer w0 in peer.
			fd := uint32(peer.FD())
			err := host.Dial(t).NewLink(ctx, &rtnl.LinkMessage{Flags: unix.IFF_UP, Change: unix.IFF_UP,
				Attrs: rtnl.LinkAttrs{Name: "p0", Info: &rtnl.LinkInfo{Kind: "veth",
					Data: &rtnl.Veth{Peer: &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "w0", NetNSFD: &fd}}}}}},
				netlink.Create|netlink.Excl)
			if err != nil {
				t.Fatal(err)
			}
			peer.SetUp(t, "w0")
			sub := fmt.Sprintf("p0.%d", tc.vid)
			// The sub-interface gets a MAC of its own, so that every
			// frame it sends is recognisable on the wire (the parent's
			// own untagged IPv6 chatter has the parent's MAC).
			mac := net.HardwareAddr{0x02, 0x00, 0x00, 0x00, byte(tc.vid >> 8), byte(tc.vid)}
			addVLANWithMAC(t, host, "p0", sub, tc.vid, tc.proto, mac, pfx("192.0.2.1/24"))
			addVLAN(t, peer, "w0", fmt.Sprintf("w0.%d", tc.vid), tc.vid, tc.proto, pfx("192.0.2.2/24"))
			srcMAC := capture.MACFrom(host.Link(t, sub).Attrs.Address)
			if srcMAC != capture.MACFrom(mac) {
				t.Fatalf("%s has MAC %s, want %s", sub, srcMAC, mac)
			}

			// Witness 1: verify/capture's capture on w0, opened before any
			// traffic. No filter: untagged frames from p0 must show up
			// too if there were any.
			capt, err := capture.Open(ctx, capture.Options{NetNS: peer.Name(), Iface: "w0"})
			if err != nil {
				t.Fatalf("capture on w0: %v", err)
			}
			defer capt.Close()

			// Witness 2: tcpdump -e on w0, up before any traffic.
			dump := startTcpdump(t, ctx, peer, "w0")

			serveEcho(t, peer, addr("192.0.2.2"))
			if !reaches(t, host, addr("192.0.2.2")) {
				t.Fatalf("%s cannot reach 192.0.2.2 over the VLAN", sub)
			}

			// Every frame p0.VID sent must be on w0 with the tag inline.
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			defer ccancel()
			var tagged, arp, udp int
			for f, err := range capt.Frames(cctx) {
				if err != nil {
					break // the deadline: everything sent has arrived
				}
				if f.Src != srcMAC {
					continue
				}
				outer, ok := f.OuterVLAN()
				if !ok {
					t.Errorf("untagged frame from %s on w0: %s", sub, f.Summary())
					continue
				}
				if outer.VID != tc.vid || uint16(outer.TPID) != uint16(tc.proto) {
					t.Errorf("frame from %s tagged %s, want VID %d TPID %#04x: %s", sub, outer, tc.vid, uint16(tc.proto), f.Summary())
					continue
				}
				// The bytes themselves: TPID right after the MACs,
				// then the TCI with the VID in its low 12 bits.
				if len(f.Data) < 18 || binary.BigEndian.Uint16(f.Data[12:]) != uint16(tc.proto) ||
					binary.BigEndian.Uint16(f.Data[14:])&0x0fff != tc.vid {
					t.Errorf("tag not inline in the frame bytes: % x", f.Data[:min(len(f.Data), 18)])
					continue
				}
				tagged++
				switch f.Net {
				case capture.NetARP:
					arp++
				case capture.NetIPv4:
					if f.IP.Proto == unix.IPPROTO_UDP {
						udp++
					}
				}
			}
			t.Logf("verify: %d frames from %s tagged VID %d TPID %#04x (%d ARP, %d UDP)", tagged, sub, tc.vid, uint16(tc.proto), arp, udp)
			if arp == 0 || udp == 0 {
				t.Errorf("capture saw %d tagged ARP and %d tagged UDP frames from %s, want both", arp, udp, sub)
			}

			lines := dump.stop(t)
			re := regexp.MustCompile(regexp.QuoteMeta(srcMAC.String()) + ` > .*` + tc.dump + `, length \d+: vlan ` + fmt.Sprint(tc.vid) + `, p \d, ethertype ARP`)
			var seen int
			for _, l := range lines {
				if re.MatchString(l) {
					seen++
				}
			}
			if seen == 0 {
				t.Errorf("tcpdump -e saw no ARP frame from %s with VID %d and TPID %#04x; it printed:\n%s",
					srcMAC, tc.vid, uint16(tc.proto), strings.Join(lines, "\n"))
			} else {
				t.Logf("tcpdump -e: %d matching frames, e.g. %s", seen, firstMatch(lines, re))
			}
		})
	}
}

func firstMatch(lines []string, re *regexp.Regexp) string {
	for _, l := range lines {
		if re.MatchString(l) {
			return l
		}
	}
	return ""
}

type tcpdump struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
}

// startTcpdump runs tcpdump -e on iface inside ns and returns once it
// says it is listening.
func startTcpdump(t *testing.T, ctx context.Context, ns *testenv.NetNS, iface string) *tcpdump {
	t.Helper()
	d := &tcpdump{done: make(chan error, 1)}
	d.cmd = exec.CommandContext(ctx, "tcpdump", "-i", iface, "-e", "-n", "-l", "--immediate-mode", "-c", "50")
	d.cmd.Stdout = &d.out
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(d.cmd); err != nil {
		t.Fatalf("start tcpdump: %v", err)
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		d.done <- d.cmd.Wait()
	}()
	t.Cleanup(func() { d.kill() })
	select {
	case <-listening:
	case err := <-d.done:
		d.done <- err
		t.Fatalf("tcpdump exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("tcpdump did not start listening within 30s")
	}
	return d
}

// kill stops tcpdump if it still runs (an error means it had ended).
func (d *tcpdump) kill() { _ = d.cmd.Process.Signal(unix.SIGINT) }

// stop ends tcpdump (SIGINT flushes its output) and returns its lines.
func (d *tcpdump) stop(t *testing.T) []string {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // let the last lines be printed
	_ = d.cmd.Process.Signal(unix.SIGINT)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	return strings.Split(strings.TrimSpace(d.out.String()), "\n")
}
