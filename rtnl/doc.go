// Package rtnl is vmlink's rtnetlink layer: the wire format of link
// messages and the socket they travel on. Nothing above it builds netlink
// bytes.
//
// What it owns:
//   - LinkMessage, our codec for RTM_{NEW,DEL,GET}LINK bodies, and the
//     link-kind drivers that encode and decode IFLA_INFO_DATA: VLAN
//     (802.1Q/802.1ad), Macvlan, Macvtap, IPVlan, and the Veth, Bridge,
//     BridgePort and Dummy kinds test environments need. Register adds a
//     driver;
//   - Conn: a socket dialled inside a network namespace (by fd or name) in
//     strict mode, an ACK awaited on every mutation, dumps retried when the
//     kernel flags them inconsistent (NLM_F_DUMP_INTR), read buffers sized
//     for 10,000-link dumps, and Batch, which pipelines many requests per
//     sendmsg and matches every ACK to its request;
//   - OpError: the kernel's errno (errors.Is works) and extack message,
//     with a hint a user can act on for the well-known refusals;
//   - address, route and neighbour helpers the data plane needs, the
//     namespace ids a link's IFLA_LINK_NETNSID refers to (Conn.NSIDOf), and
//     the IFLA_AF_SPEC parts vmlink reads (AFSpec);
//   - the vocabulary of link kinds: MacvlanMode, MacvlanFlags, MacaddrMode,
//     IPVlanMode, IPVlanFlags and VLANProtocol, each with an invalid zero
//     value ("not given"), String and a Parse function for iproute2's
//     words (the one conversion the CLI, topology files and verify use);
//     the codecs convert to the kernel's numbers where those start at 0.
//
// What it does not own: the meaning of modes, names or addresses (package
// link validates specs and describes links), and anything about the CLI.
//
// Why our own codecs: jsimonetti/rtnetlink's link-kind drivers get the VLAN
// wire format wrong — IFLA_VLAN_FLAGS is a {flags, mask} struct, the QoS
// maps are nests of {from, to} pairs, IFLA_VLAN_PROTOCOL is big-endian —
// as well as the macvlan source-MAC list, and its LinkMessage decoder
// swallows a driver's error and drops every attribute after it. We use
// that module's framing types only and never import its driver package.
// Every driver here is table-tested against requests captured from
// iproute2 with strace (testdata/golden) and replies captured from real
// kernels (testdata/dumps), never against its own output, and every
// decoder is fuzzed with a round-trip property. Each decode loop ends with
// ad.Err(), and nested decoders return their own Err, so a malformed
// attribute is an error rather than a silently shorter message.
package rtnl
