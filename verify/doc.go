// Package verify is the judge: it decides whether links behave as their
// configuration promises, from evidence on the wire.
//
// It owns discovery of the endpoints on a parent across every namespace,
// the behaviour model (what each macvlan, ipvlan and VLAN mode and the
// adjacent switch should allow), the probes sent from endpoint namespaces
// (ARP, ICMP), the checks, the reports (table, JSON, JUnit XML) and the
// doctor (the classic macvlan/VLAN problems diagnosed from kernel state and
// the same probes, each with its fix). The frames it judges come from
// package capture. It never creates links: it only watches and probes.
package verify
