// Package capture reads Ethernet frames as they were on the wire, VLAN tags
// included, live or from a file, and writes them out again.
//
// It owns live capture (AF_PACKET, with the outer tag the kernel moved into
// PACKET_AUXDATA put back in place with its real TPID, and the direction the
// kernel saw), frame decoding (802.1Q and 802.1ad stacks, ARP, IPv4, IPv6,
// ICMP), filters (classic BPF live, the same predicate on decoded frames),
// pcap and pcapng reading and writing, tcpdump -e style lines and JSON, the
// owner of each source MAC across the host's namespaces, and the tally a
// capture ends with. It judges nothing: package verify decides what a
// capture proves.
//
// # Network namespaces
//
// Options.NetNS names the namespace of the interface to capture on; the
// socket is opened on a locked thread inside it and stays bound to it
// afterwards, as with netns.Do.
package capture
