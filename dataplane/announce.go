package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"

	"github.com/vmlink/vmlink/internal/ndp"
)

// announcement is one interface whose addresses the network should learn
// at once: after setup Up sends a gratuitous ARP for each IPv4 address and
// an unsolicited neighbour advertisement for each IPv6 address, so switches
// and neighbours stop using stale entries (a re-created container keeps its
// IP but gets a new MAC).
type announcement struct {
	NetNS Namespace
	Index int
	Name  string
	MAC   net.HardwareAddr
	Addrs []netip.Prefix
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// kernelAnnounces sets the interface's arp_notify (IPv4 addresses) and
// ndisc_notify (IPv6) when it has addresses of that family, while it is
// still down: bringing it up then makes the kernel send the gratuitous ARP
// and the unsolicited NA itself (an address added to a link already up
// gets none), in the same form announcement.send writes. The reference
// CNI plugins set arp_notify the same way. It saves a packet socket, whose
// close waits for an RCU grace period (synchronize_net in packet_release:
// 5–25 ms measured here, the largest part of a CNI ADD).
func (n Namespace) kernelAnnounces(name string, addrs []netip.Prefix) error {
	var v4, v6 bool
	for _, p := range addrs {
		v4 = v4 || p.Addr().Is4()
		v6 = v6 || p.Addr().Is6()
	}
	if v4 {
		if err := n.writeSysctl("net/ipv4/conf/"+name+"/arp_notify", "1"); err != nil {
			return err
		}
	}
	if v6 {
		return n.writeSysctl("net/ipv6/conf/"+name+"/ndisc_notify", "1")
	}
	return nil
}

// send opens a packet socket on the interface inside its namespace and
// writes the frames.
func (an *announcement) send() error {
	if len(an.MAC) != 6 || len(an.Addrs) == 0 {
		return nil
	}
	sendAll := func() error {
		c, err := packet.Listen(&net.Interface{Index: an.Index, Name: an.Name, HardwareAddr: an.MAC}, packet.Raw, 0, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		var errs []error
		for _, p := range an.Addrs {
			a := p.Addr()
			if a.Is4() {
				var f []byte
				if f, err = garpFrame(an.MAC, a); err == nil {
					_, err = c.WriteTo(f, &packet.Addr{HardwareAddr: broadcastMAC})
				}
			} else {
				_, err = c.WriteTo(unsolicitedNAFrame(an.MAC, a), &packet.Addr{HardwareAddr: allNodesMAC})
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", a, err))
			}
		}
		return errors.Join(errs...)
	}
	err := an.NetNS.do(sendAll)
	if err != nil {
		return fmt.Errorf("announce %s in %s: %w", an.Name, an.NetNS.label(), err)
	}
	return nil
}

// garpFrame is a gratuitous ARP request (sender and target both ip, target
// hardware address zero), broadcast: the form every stack accepts for
// updating its cache. mdlayher/arp encodes it, as for verify's ARP probe.
func garpFrame(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, ip, make(net.HardwareAddr, 6), ip)
	if err != nil {
		return nil, fmt.Errorf("gratuitous ARP for %s: %w", ip, err)
	}
	payload, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: mac, EtherType: ethernet.EtherTypeARP, Payload: payload}
	return f.MarshalBinary()
}

var allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}

// unsolicitedNAFrame is a neighbour advertisement for ip to all nodes
// (ff02::1) with the override flag and the target link-layer option (RFC
// 4861 7.2.6).
func unsolicitedNAFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	const icmpLen = 32
	b := make([]byte, 14+40+icmpLen)
	copy(b[0:6], allNodesMAC)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], 0x86dd)
	ip6 := b[14:54]
	ip6[0] = 0x60
	binary.BigEndian.PutUint16(ip6[4:6], icmpLen)
	ip6[6] = 58  // ICMPv6
	ip6[7] = 255 // hop limit required by RFC 4861
	src := ip.As16()
	dst := netip.MustParseAddr("ff02::1").As16()
	copy(ip6[8:24], src[:])
	copy(ip6[24:40], dst[:])
	icmp := b[54:]
	icmp[0] = 136                                     // neighbour advertisement
	binary.BigEndian.PutUint32(icmp[4:8], 0x20000000) // override
	copy(icmp[8:24], src[:])
	icmp[24], icmp[25] = 2, 1 // target link-layer address, 8 bytes
	copy(icmp[26:32], mac)
	binary.BigEndian.PutUint16(icmp[2:4], ndp.Checksum(src, dst, icmp))
	return b
}
