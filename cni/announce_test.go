package cni_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// TestAddAnnounces: ADD announces the attachment's addresses on the wire,
// a gratuitous ARP for the IPv4 one and an unsolicited neighbour
// advertisement for the IPv6 one, from the pod's MAC, seen at the switch.
// The kernel sends them itself (the interface comes up addressed, with
// arp_notify and ndisc_notify set), as the reference plugins have the
// kernel send the ARP, instead of a packet socket whose close costs an RCU
// grace period.
func TestAddAnnounces(t *testing.T) {
	hostTierOnly(t)
	l := newLab(t)
	sw := l.parent.Switch
	var up net.Interface
	var pc *packet.Conn
	if err := sw.NS.Do(func() error {
		ifi, err := net.InterfaceByName(sw.Uplink)
		if err != nil {
			return err
		}
		up = *ifi
		pc, err = packet.Listen(&up, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	conf := tutorialConf(t, "vmlink", "1.1.0", l.ipam, map[string]any{"ipam": map[string]any{"type": "static",
		"addresses": []any{map[string]any{"address": "172.16.128.9/24"}, map[string]any{"address": "fd00:128::9/64"}}}})
	a := l.add(t, "announce", conf)
	mac, err := net.ParseMAC(a.mac)
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := netip.MustParseAddr("172.16.128.9").As4(), netip.MustParseAddr("fd00:128::9").As16()
	sawARP, sawNA := false, false
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	for !(sawARP && sawNA) {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		f := buf[:n]
		if n < 14 || !bytes.Equal(f[6:12], mac) {
			continue
		}
		switch binary.BigEndian.Uint16(f[12:14]) {
		case unix.ETH_P_ARP: // sender and target protocol address both ours
			if n >= 42 && bytes.Equal(f[14+8:14+14], mac) && bytes.Equal(f[14+14:14+18], v4[:]) && bytes.Equal(f[14+24:14+28], v4[:]) {
				sawARP = true
			}
		case unix.ETH_P_IPV6: // ICMPv6 neighbour advertisement for our address
			if n >= 14+40+24 && f[14+6] == 58 && f[54] == 136 && bytes.Equal(f[54+8:54+24], v6[:]) {
				sawNA = true
			}
		}
	}
	if !sawARP || !sawNA {
		t.Fatalf("after ADD the switch saw gratuitous ARP %v, unsolicited NA %v from %s; want both", sawARP, sawNA, mac)
	}
	for _, key := range []string{"net/ipv4/conf/eth0/arp_notify", "net/ipv6/conf/eth0/ndisc_notify"} {
		if v, err := a.c.ReadSysctl(key); err != nil || v != "1" {
			t.Errorf("%s in the container = %q, %v; want 1 (the kernel announces)", key, v, err)
		}
	}
}
