package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/vmlink/vmlink/internal/netns"
)

// ping sends ICMP echo requests from inside the namespace ns to dst, one
// every 200 ms, until an echo reply comes back from dst (nil) or timeout
// passes (an error). It is `ping` for the tests, in Go: the VM guest has no
// ping binary. The raw socket is opened on a thread inside ns and stays
// bound to it.
func ping(ns string, dst netip.Addr, timeout time.Duration) error {
	h, err := netns.Open(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var echo, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		echo, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var c *icmp.PacketConn
	if err := h.Do(func() (err error) {
		c, err = icmp.ListenPacket(network, laddr)
		return err
	}); err != nil {
		return fmt.Errorf("ping from %s: %w", ns, err)
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	end := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for seq := 1; time.Now().Before(end); seq++ {
		msg := icmp.Message{Type: echo, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("vmlink dataplane test")}}
		b, err := msg.Marshal(nil) // the kernel fills in the ICMPv6 checksum
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// No route or no neighbour yet: try again at the next tick.
			time.Sleep(200 * time.Millisecond)
			continue
		}
		tick := time.Now().Add(200 * time.Millisecond)
		c.SetReadDeadline(tick)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != reply {
				continue
			}
			e, ok := m.Body.(*icmp.Echo)
			ip, _ := from.(*net.IPAddr)
			if ok && e.ID == id && ip != nil && ip.IP.Equal(dst.AsSlice()) {
				return nil
			}
		}
	}
	return fmt.Errorf("ping %s from %s: no echo reply within %s", dst, ns, timeout)
}
