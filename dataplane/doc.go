// Package dataplane assembles container-style data paths from links:
// named namespaces standing in for containers, endpoints with IPv4/IPv6
// addresses and default routes, sandboxed veth parents whose far end sits
// in a "switch" namespace (a Linux bridge, optionally reflecting frames
// with hairpin), macvlan/macvtap/ipvlan networks on those parents or on
// auto-created 802.1Q sub-interfaces, and the host shim that restores
// host-to-container reachability.
//
// A Topology is declarative (YAML, see Parse). Up applies it atomically:
// every object it creates is journaled before the kernel is asked, and on
// any error or cancellation everything created so far is removed in
// reverse. Up of an already-applied topology changes nothing. Down removes
// exactly what Up created, found by marks on the kernel objects
// themselves, so it works after a crash:
//
//   - every link Up creates is put in the topology's link group (Mark.Group,
//     set atomically by the RTM_NEWLINK that creates it) and carries the
//     alias "vmlink:<topology>:<object>";
//   - every namespace Up creates has its loopback's alias set to
//     "vmlink:<topology>:netns", and is listed in a small state file under
//     /run/vmlink written before the namespace is created.
//
// Every container interface — of Up, of `net connect`, of the labs and of
// a CNI plugin — is built by BuildEndpointLink (the link created inside the
// container's namespace, named there, marked, addressed, up, routed;
// announced with EndpointLink.Announce) and removed by RemoveEndpointLink;
// every X.N VLAN parent by EnsureVLANParent.
//
// Networks are docker's `network create/connect/disconnect/rm` on the same
// machinery: -o parent=X.N creates the VLAN and removes it with the last
// network using it, addresses come from --ip-range or the subnet around the
// gateway and aux addresses, connect creates (and then owns) the container's
// namespace. Their state lives in /run/vmlink/state.json; List reconciles it
// with the kernel and removes what an interrupted vmlink left unrecorded.
//
// Every change of state happens under an exclusive flock on
// /run/vmlink/lock, so two vmlink processes never interleave their writes.
//
// ExecInNetNS runs a program in a named namespace the way `ip netns exec`
// does (its own /sys, /etc/netns/NAME files bound over /etc).
//
// Labs (Labs, LookupLab) are topologies embedded in the binary that run in
// throwaway namespaces: `vmlink lab`. ProbeWait derives how long their
// verification's probes wait from how fast the machine built them.
//
// dataplane builds; it never sniffs or judges. What it built is handed to
// package verify as verify.Topology values (Built.VerifyTopologies).
package dataplane
