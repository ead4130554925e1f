// Package verify is the judge: it decides whether links behave as their
// configuration promises, from evidence on the wire.
//
// It owns the behaviour model (what each macvlan mode, VLAN and adjacent
// switch should allow), the probes sent from endpoint namespaces (ARP,
// ICMP), live capture on the parent interface (AF_PACKET with the VLAN tag
// the kernel moved into aux data put back in place), frame decoding, pcap
// and pcapng reading and writing, the checks, and the reports (table, JSON,
// JUnit XML), and the doctor (Doctor: the classic macvlan/VLAN problems
// diagnosed from kernel state and the same probes, each with its fix). It
// never creates links: it only watches and probes.
package verify
