package capture

// Direction is how a frame passed the capture point, from the kernel's
// sll_pkttype on a live socket or the pcapng epb_flags word in a file.
// The zero value means the source did not record it (classic pcap).
type Direction uint8

// Directions. The inbound ones keep the kernel's reason the frame was
// received: a verifier cares whether a frame came in addressed to the host,
// flooded, or only seen because the parent is promiscuous.
const (
	DirUnknown   Direction = iota // not recorded
	DirHost                       // inbound, addressed to this host (PACKET_HOST)
	DirBroadcast                  // inbound broadcast (PACKET_BROADCAST)
	DirMulticast                  // inbound multicast (PACKET_MULTICAST)
	DirOtherHost                  // inbound, for another host: seen promiscuously (PACKET_OTHERHOST)
	DirOutgoing                   // sent by this host (PACKET_OUTGOING)
	DirIn                         // inbound, reception type not recorded (pcapng)
)

// directionFromPktType maps sll_pkttype (linux/if_packet.h).
func directionFromPktType(t uint8) Direction {
	switch t {
	case 0:
		return DirHost
	case 1:
		return DirBroadcast
	case 2:
		return DirMulticast
	case 3:
		return DirOtherHost
	case 4:
		return DirOutgoing
	}
	return DirUnknown
}

// String is the kernel's word for d: host, broadcast, multicast, otherhost,
// outgoing; "in" when only the direction is known, "unknown" when nothing is.
func (d Direction) String() string {
	switch d {
	case DirHost:
		return "host"
	case DirBroadcast:
		return "broadcast"
	case DirMulticast:
		return "multicast"
	case DirOtherHost:
		return "otherhost"
	case DirOutgoing:
		return "outgoing"
	case DirIn:
		return "in"
	}
	return "unknown"
}

// Inbound reports whether the frame was received.
func (d Direction) Inbound() bool {
	return d == DirHost || d == DirBroadcast || d == DirMulticast || d == DirOtherHost || d == DirIn
}

// Outbound reports whether the frame was sent.
func (d Direction) Outbound() bool { return d == DirOutgoing }

// Way is "in", "out" or "unknown": the JSON "dir" field.
func (d Direction) Way() string {
	switch {
	case d.Inbound():
		return "in"
	case d.Outbound():
		return "out"
	}
	return "unknown"
}

// tcpdumpWord is how `tcpdump -i any` marks the direction: In, B, M, P, Out.
func (d Direction) tcpdumpWord() string {
	switch d {
	case DirHost, DirIn:
		return "In "
	case DirBroadcast:
		return "B  "
	case DirMulticast:
		return "M  "
	case DirOtherHost:
		return "P  "
	case DirOutgoing:
		return "Out"
	}
	return ""
}
