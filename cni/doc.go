// Package cni is vmlink's CNI plugin ("type": "vmlink"): the configuration
// (every key of the reference macvlan, ipvlan and vlan plugins plus what
// vmlink's link engine adds), the protocol dispatcher (ADD, DEL, CHECK,
// VERSION, STATUS, GC for spec 0.3.0 to 1.1.0), IPAM delegation, and a
// CHECK that proves the attachment on the wire with package verify.
//
// It is a package of its own, not part of dataplane, because it speaks the
// CNI protocol (environment, stdin, result and error JSON); the endpoint
// itself is built by dataplane, and cmd/vmlink-cni only calls Main. The
// dispatcher is ours rather than the cni module's pkg/skel because skel
// pulls github.com/vishvananda/netns through pkg/ns.
package cni
