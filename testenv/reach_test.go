package testenv_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv"
)

// Reachability for the tests, in pure Go (the VM guest has no ping): a UDP
// echo server opened inside one namespace, a client inside another.

const echoPort = 7007

// serveEcho answers UDP datagrams on addr:7007 inside ns until the test
// ends.
func serveEcho(t *testing.T, ns *testenv.NetNS, addr netip.Addr) {
	t.Helper()
	var pc net.PacketConn
	err := ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", netip.AddrPortFrom(addr, echoPort).String())
		return err
	})
	if err != nil {
		t.Fatalf("echo server in %s: %v", ns.Name(), err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
}

// reaches reports whether a datagram from ns gets an echo from to:7007,
// trying a few times (the first datagram may wait for ARP). A "no" takes
// the whole bounded wait; a "yes" returns at the first echo.
func reaches(t *testing.T, ns *testenv.NetNS, to netip.Addr) bool {
	t.Helper()
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = net.Dial("udp", netip.AddrPortFrom(to, echoPort).String())
		return err
	})
	if err != nil {
		// No route at all: unreachable by construction.
		t.Logf("dial %s from %s: %v", to, ns.Name(), err)
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	for ctx.Err() == nil {
		if _, err := c.Write([]byte("vmlink")); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// ECONNREFUSED from an earlier ICMP, EHOSTUNREACH: try again.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == "vmlink" {
			return true
		}
	}
	return false
}
