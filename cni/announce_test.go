package cni_test

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/vmlink/vmlink/testenv"
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
	sawARP, sawNA := testenv.SawAnnouncements(pc, mac, netip.MustParseAddr("172.16.128.9"), netip.MustParseAddr("fd00:128::9"), 5*time.Second)
	if !sawARP || !sawNA {
		t.Fatalf("after ADD the switch saw gratuitous ARP %v, unsolicited NA %v from %s; want both", sawARP, sawNA, mac)
	}
	for _, key := range []string{"net/ipv4/conf/eth0/arp_notify", "net/ipv6/conf/eth0/ndisc_notify"} {
		if v, err := a.c.ReadSysctl(key); err != nil || v != "1" {
			t.Errorf("%s in the container = %q, %v; want 1 (the kernel announces)", key, v, err)
		}
	}
}
