package rtnl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrDumpInterrupted is returned (wrapped in an *OpError) when every attempt
// of a dump was interrupted by a concurrent change: the kernel flags such a
// reply with NLM_F_DUMP_INTR because it may have skipped or repeated entries.
var ErrDumpInterrupted = errors.New("dump interrupted by concurrent changes (NLM_F_DUMP_INTR)")

// OpError is a failed rtnetlink request. Kernel refusals keep their errno, so
// errors.Is(err, unix.EEXIST) works, carry the kernel's extended-ACK text in
// Message, and, for the well-known causes, a Hint a user can act on.
//
// Errors that are not kernel refusals (the socket failed, the context
// expired, a dump stayed interrupted) are OpErrors too, with Errno 0 and the
// cause in Err.
type OpError struct {
	// Op names the request, e.g. "RTM_NEWLINK".
	Op string
	// Errno is the kernel's answer; 0 when the failure was not a kernel refusal.
	Errno unix.Errno
	// Message is the kernel's extended-ACK message (NLMSGERR_ATTR_MSG), if any.
	Message string
	// Offset is the extended-ACK offset of the offending attribute in the
	// request (NLMSGERR_ATTR_OFFS), 0 when the kernel gave none.
	Offset int
	// Hint explains a well-known cause in words a user can act on.
	Hint string
	// Err is the underlying error: a *netlink.OpError for kernel refusals,
	// otherwise the socket or context error.
	Err error
}

func (e *OpError) Error() string {
	if e == nil {
		return "<nil>"
	}
	var sb strings.Builder
	sb.WriteString(e.Op)
	sb.WriteString(": ")
	switch {
	case e.Errno != 0:
		sb.WriteString(e.Errno.Error())
	case e.Err != nil:
		sb.WriteString(e.Err.Error())
	default:
		sb.WriteString("unknown error")
	}
	if e.Message != "" {
		// The kernel's sentences sometimes end in a full stop ("Unknown
		// device type."); drop it so the line reads as one sentence.
		fmt.Fprintf(&sb, ": %s", strings.TrimSuffix(e.Message, "."))
	}
	if e.Hint != "" {
		fmt.Fprintf(&sb, " (%s)", e.Hint)
	}
	return sb.String()
}

// Unwrap returns the underlying error, so errors.Is reaches the errno through
// the *netlink.OpError (whose Unwrap yields the unix.Errno).
func (e *OpError) Unwrap() error { return e.Err }

// Timeout reports whether the request failed because its deadline passed.
func (e *OpError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}

// newOpError wraps err for the request type typ; a kernel refusal
// (*netlink.OpError carrying a unix.Errno) gets its errno, extack message and
// a hint from hc.
func newOpError(typ netlink.HeaderType, err error, hc *HintContext) *OpError {
	oe := &OpError{Op: MessageTypeString(typ), Err: err}
	var ne *netlink.OpError
	if errors.As(err, &ne) {
		oe.Message = ne.Message
		oe.Offset = ne.Offset
		var errno unix.Errno
		if errors.As(ne.Err, &errno) {
			oe.Errno = errno
		}
	}
	if oe.Errno != 0 {
		c := HintContext{}
		if hc != nil {
			c = *hc
		}
		if c.Type == 0 {
			// SetLink goes out as RTM_NEWLINK but is hinted as a change.
			c.Type = typ
		}
		oe.Hint = Hint(oe.Errno, oe.Message, c)
	}
	return oe
}

// MessageTypeString names an rtnetlink message type the way the kernel
// headers do ("RTM_NEWLINK"); unknown types print as "RTM_<number>".
func MessageTypeString(t netlink.HeaderType) string {
	switch t {
	case unix.RTM_NEWLINK:
		return "RTM_NEWLINK"
	case unix.RTM_DELLINK:
		return "RTM_DELLINK"
	case unix.RTM_GETLINK:
		return "RTM_GETLINK"
	case unix.RTM_SETLINK:
		return "RTM_SETLINK"
	case unix.RTM_NEWADDR:
		return "RTM_NEWADDR"
	case unix.RTM_DELADDR:
		return "RTM_DELADDR"
	case unix.RTM_GETADDR:
		return "RTM_GETADDR"
	case unix.RTM_NEWROUTE:
		return "RTM_NEWROUTE"
	case unix.RTM_DELROUTE:
		return "RTM_DELROUTE"
	case unix.RTM_GETROUTE:
		return "RTM_GETROUTE"
	case unix.RTM_NEWNEIGH:
		return "RTM_NEWNEIGH"
	case unix.RTM_DELNEIGH:
		return "RTM_DELNEIGH"
	case unix.RTM_GETNEIGH:
		return "RTM_GETNEIGH"
	case unix.RTM_NEWNSID:
		return "RTM_NEWNSID"
	case unix.RTM_GETNSID:
		return "RTM_GETNSID"
	}
	return fmt.Sprintf("RTM_%d", uint16(t))
}

// HintContext is what Hint knows about the request the kernel refused.
// Every field is optional; the more is set, the sharper the hint.
type HintContext struct {
	// Type is the request's message type (RTM_NEWLINK, RTM_DELLINK, …).
	Type netlink.HeaderType
	// Name is the link the request names (IFLA_IFNAME).
	Name string
	// Kind is the link kind (IFLA_INFO_KIND), e.g. "vlan" or "macvlan".
	Kind string
	// Mode is the macvlan/macvtap/ipvlan mode in iproute2's words
	// ("bridge", "passthru", "l2"…).
	Mode string
	// SetsAddress is true when the request sets a MAC address.
	SetsAddress bool
	// SetsUp is true when the request brings the link up.
	SetsUp bool
	// SetsMTU is true when the request sets the MTU.
	SetsMTU bool
	// ByGroup is true for a delete by IFLA_GROUP.
	ByGroup bool
}

// kindModule maps a link kind to the kernel module that provides it, for the
// "Unknown device type" hint.
var kindModule = map[string]string{
	"vlan":    "8021q",
	"macvlan": "macvlan",
	"macvtap": "macvtap",
	"ipvlan":  "ipvlan",
	"ipvtap":  "ipvtap",
	"dummy":   "dummy",
	"veth":    "veth",
	"bridge":  "bridge",
}

// Hint maps a kernel refusal of a link, address or route request to a
// sentence a user can act on, or "" when the cause is not a well-known one.
// It is a pure function of the errno, the kernel's extack message and what
// the request asked for, so every case is unit-tested without a kernel.
//
// The errnos below were measured on Linux 6.18 (and, for VLANs, in the VM
// on Debian's 6.1/6.12): see errors_test.go and integration_test.go.
func Hint(errno unix.Errno, message string, c HintContext) string {
	macvlanLike := c.Kind == "macvlan" || c.Kind == "macvtap"
	switch errno {
	case unix.EOPNOTSUPP:
		// rtnl_newlink: no rtnl_link_ops for the kind and the module could
		// not be loaded -> "Unknown device type".
		if c.Type == unix.RTM_NEWLINK && c.Kind != "" &&
			(message == "" || strings.Contains(message, "Unknown device type")) {
			switch c.Kind {
			case "vlan":
				return "kernel has no 802.1Q VLAN support (load module 8021q)"
			default:
				mod := kindModule[c.Kind]
				if mod == "" {
					mod = c.Kind
				}
				return fmt.Sprintf("kernel has no %s support (load module %s)", c.Kind, mod)
			}
		}
	case unix.EEXIST:
		if c.Type != unix.RTM_NEWLINK {
			break
		}
		// vlan_check_real_dev: one VLAN link per (parent, id, protocol).
		// The kernel says "VLAN device already exists"; the duplicate-name
		// check in rtnl_newlink comes first and says nothing.
		if c.Kind == "vlan" && strings.Contains(message, "VLAN") {
			return "the parent already has a VLAN link with this id and protocol: delete it or use another id"
		}
		name := "with this name"
		if c.Name != "" {
			name = fmt.Sprintf("named %q", c.Name)
		}
		switch c.Kind {
		case "vlan":
			if message == "" {
				return fmt.Sprintf("a link %s already exists, or the parent already has a VLAN link with this id", name)
			}
		case "veth":
			return fmt.Sprintf("a link %s, or one with the peer's name, already exists", name)
		}
		return fmt.Sprintf("a link %s already exists", name)
	case unix.EINVAL:
		// macvlan_common_newlink refuses, without an extack message, a
		// second macvlan/macvtap of any mode on a parent that has a
		// passthru one, and a passthru one on a parent that has any.
		if c.Type == unix.RTM_NEWLINK && macvlanLike && message == "" {
			h := "the parent already has a passthru macvlan/macvtap, which takes the parent to itself"
			if c.Mode == "passthru" {
				h = "passthru needs the parent to itself: the parent already has a macvlan/macvtap link"
			}
			if c.SetsMTU {
				h += ", or the MTU is above the parent's"
			}
			return h
		}
	case unix.EADDRINUSE:
		// macvlan_open / macvlan_sync_address: a macvlan's MAC must differ
		// from its parent's and from every sibling's; the check runs when
		// the link comes up (or changes address while up), not at creation.
		if c.Type == unix.RTM_NEWLINK || c.Type == unix.RTM_SETLINK {
			return "the MAC address is already used on this parent (by the parent itself or a sibling macvlan/macvtap); give each link its own"
		}
	case unix.ENODEV:
		switch c.Type {
		case unix.RTM_DELLINK:
			if c.ByGroup {
				return "no link is in that group"
			}
			return "no such link"
		case unix.RTM_NEWLINK, unix.RTM_SETLINK, unix.RTM_GETLINK:
			return "no such link (or its parent does not exist)"
		}
	case unix.EPERM:
		if c.Type == unix.RTM_DELLINK && c.ByGroup {
			return "group 0 is every link's default group and cannot be deleted as a whole; use a non-zero group"
		}
		return "needs CAP_NET_ADMIN in the target network namespace (run as root)"
	case unix.ERANGE:
		if c.Kind == "vlan" {
			return "VLAN id must be between 0 and 4094"
		}
	}
	return ""
}
