// Package link creates, inspects, changes and deletes one Linux link at a
// time — 802.1Q/802.1ad VLANs, macvlan, macvtap and ipvlan (plus the veth
// and dummy links tests and labs build on) — from typed specs, over rtnl.
//
// What it owns:
//   - the specs (VLAN, Macvlan, Macvtap, IPVlan, Veth, Dummy), one file
//     per kind, and their Validate methods: the only copy of the kernel's
//     rules (which options a mode allows, what can be a parent), run
//     before any syscall, naming the field and the fix, so bad input never
//     reaches the kernel; ParseMAC reads a MAC as ip does;
//   - the vocabulary of modes, flags and protocols, re-exported from rtnl
//     (where it is defined once, with the kernel's values) with its one
//     String/Parse pair;
//   - the operations on a Handle: Create, Ensure, Get, List, Set, Delete,
//     DeleteGroup and CreateBatch, each leaving nothing half-created when it
//     fails;
//   - Describe: a link's state as a struct whose JSON has the keys of
//     `ip -d -j link show`, and its text in the shape of `ip -d link show`.
//
// What it does not do: parse command lines or print (cmd/vmlink does),
// know about addresses, routes or topologies (dataplane does), or speak the
// wire format (rtnl does).
//
// Two choices users see:
//
// A macvlan or macvtap created without a mode is created in bridge mode.
// The kernel's own default when the mode attribute is missing is vepa,
// which silently breaks sibling-to-sibling traffic on most hosts; so
// vmlink always sends a mode. Nothing is recorded on the link: its kernel
// state is exactly that of `ip link add … type macvlan mode bridge`, so
// iproute2, CNI and vmlink all read the same thing. Only the Link that
// Create returns knows the mode was defaulted (Link.ModeDefaulted), and its
// text says "mode bridge (vmlink default)".
//
// Operations hang off a Handle rather than taking an *rtnl.Conn: a Handle
// knows which namespace it works in (for messages and for opening the
// namespace a link is moved into), may own its connection, and gives
// dataplane one value to pass around per namespace.
package link
