package link

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
)

// Spec describes a link to create: one of *VLAN, *Macvlan, *Macvtap,
// *IPVlan, *Veth, *Dummy.
type Spec interface {
	// Kind is the kernel's link kind (IFLA_INFO_KIND): "vlan", "macvlan"…
	Kind() string
	// Base returns the fields every kind shares.
	Base() *Common
	// Validate checks the spec without touching the kernel; the error is a
	// *FieldError naming the field and the fix.
	Validate() error

	// needsParent reports whether the kind sits on a parent link.
	needsParent() bool
}

// Common are the fields every link kind shares, with the meaning of the
// matching `ip link add` options.
type Common struct {
	// Name is the new link's name (`name`), at most 15 bytes, without '/',
	// ':' or whitespace.
	Name string
	// Parent is the name of the lower link in the handle's namespace
	// (`link DEV`); required for VLAN, macvlan, macvtap and ipvlan.
	Parent string
	// MTU (`mtu`); 0 leaves the kernel's choice (the parent's MTU). It may
	// not exceed the parent's MTU.
	MTU uint32
	// Address is the link's MAC address (`address`); nil lets the kernel
	// pick a random one. Must be unicast and non-zero.
	Address net.HardwareAddr
	// Group is the link group (`group`); 0 is the default group. vmlink
	// puts links it creates in bulk in a group so they can be deleted in
	// one request.
	Group uint32
	// Alias is the interface alias (`alias`), at most 255 bytes. The kernel
	// ignores IFLA_IFALIAS when creating a link (so `ip link add … alias X`
	// silently drops it); Create sets it right after.
	Alias string
	// TxQLen is the transmit queue length (`txqueuelen`); nil keeps the
	// kernel's default.
	TxQLen *uint32
	// NetNS, if set, creates the link in that namespace (`netns`) while its
	// parent stays in the handle's namespace.
	NetNS *Target
	// Up brings the link up as part of its creation (`up`).
	Up bool
}

// Base implements part of Spec.
func (c *Common) Base() *Common { return c }

// Target names a network namespace to create a link in or move it to, the
// way `ip link … netns {NAME|PID}` does. Exactly one field is set.
type Target struct {
	// Name is a namespace under /run/netns (as `ip netns add` makes).
	Name string
	// PID is a process whose network namespace is meant.
	PID int
	// FD is an open namespace file descriptor (the caller keeps it open
	// until the operation returns).
	FD int
}

func (t *Target) String() string {
	switch {
	case t == nil:
		return ""
	case t.Name != "":
		return t.Name
	case t.PID != 0:
		return "pid " + strconv.Itoa(t.PID)
	default:
		return "fd " + strconv.Itoa(t.FD)
	}
}

func (t *Target) validate(kind, name string) error {
	if t == nil {
		return nil
	}
	n := 0
	if t.Name != "" {
		n++
		if strings.ContainsAny(t.Name, "/\x00") || t.Name == "." || t.Name == ".." {
			return fieldErr(kind, name, "netns", t.Name, "not a namespace name (no '/'): name one from `ip netns list`")
		}
	}
	if t.PID != 0 {
		n++
		if t.PID < 0 {
			return fieldErr(kind, name, "netns", strconv.Itoa(t.PID), "a process id is positive")
		}
	}
	if t.FD != 0 {
		n++
		if t.FD < 0 {
			return fieldErr(kind, name, "netns", strconv.Itoa(t.FD), "a file descriptor is not negative")
		}
	}
	if n != 1 {
		return fieldErr(kind, name, "netns", t.String(), "set exactly one of Name, PID or FD")
	}
	return nil
}

// FieldError is a spec or change that cannot work: it names the link, the
// field (with iproute2's option name), the offending value and the fix. It
// is returned before anything is sent to the kernel.
type FieldError struct {
	Kind  string // link kind, "" when not known
	Name  string // link name, "" when not known
	Field string // iproute2's option name: "id", "mode", "mtu", "link"…
	Value string // the offending value as the user wrote it, may be ""
	Fix   string // what is wrong and what to do
	// Err is the cause when there is one to test for: ErrNotFound for a
	// parent that does not exist.
	Err error
}

// Unwrap returns the cause, so errors.Is(err, ErrNotFound) tells a missing
// parent from a wrong value.
func (e *FieldError) Unwrap() error { return e.Err }

func (e *FieldError) Error() string {
	var sb strings.Builder
	if e.Kind != "" {
		sb.WriteString(e.Kind)
		sb.WriteByte(' ')
	}
	if e.Name != "" {
		sb.WriteString(e.Name)
		sb.WriteByte(' ')
	}
	if sb.Len() > 0 {
		s := strings.TrimSpace(sb.String())
		sb.Reset()
		sb.WriteString(s)
		sb.WriteString(": ")
	}
	sb.WriteString(e.Field)
	if e.Value != "" {
		fmt.Fprintf(&sb, " %q", e.Value)
	}
	sb.WriteString(": ")
	sb.WriteString(e.Fix)
	return sb.String()
}

func fieldErr(kind, name, field, value, fix string) *FieldError {
	return &FieldError{Kind: kind, Name: name, Field: field, Value: value, Fix: fix}
}

// IFNameSize is the kernel's IFNAMSIZ: names hold at most IFNameSize-1 bytes.
const IFNameSize = 16

// maxAlias is IFALIASZ-1: the longest alias the kernel stores.
const maxAlias = 255

// minMTU is ETH_MIN_MTU, the smallest MTU an Ethernet-like link accepts.
const minMTU = 68

// CheckName reports why s is not a valid interface name (the kernel's
// dev_valid_name, plus no name templates), or nil.
func CheckName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("is empty: give the link a name")
	case len(s) >= IFNameSize:
		return fmt.Errorf("is %d bytes long: interface names have at most %d bytes", len(s), IFNameSize-1)
	case s == "." || s == "..":
		return fmt.Errorf("is reserved: pick another name")
	case strings.ContainsRune(s, '%'):
		return fmt.Errorf("contains '%%': name templates like mv%%d are not supported, give the exact name")
	}
	for _, r := range s {
		if r == '/' || r == ':' || r == 0 || unicode.IsSpace(r) {
			return fmt.Errorf("contains %q: interface names may not contain '/', ':' or whitespace", r)
		}
	}
	return nil
}

// ParseMAC parses an Ethernet address the way iproute2's ll_addr_a2n does
// for `ip link … address`: six colon-separated hex bytes, each of one or
// more digits ("2:0:0:0:0:1", "02:00:00:00:00:01", "002:…" and "0x2:…" all
// work; measured with ip 6.1). Where ip's sscanf ignores trailing garbage
// in a byte ("2g"), ParseMAC refuses it. The error says only the fix.
func ParseMAC(s string) (net.HardwareAddr, error) {
	const fix = "not a MAC address: write six hex bytes like 02:00:00:00:00:01"
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return nil, errors.New(fix)
	}
	mac := make(net.HardwareAddr, 6)
	for i, p := range parts {
		p = strings.TrimLeft(p, " \t")
		if len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X") {
			p = p[2:]
		}
		n, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return nil, errors.New(fix)
		}
		mac[i] = byte(n)
	}
	return mac, nil
}

// CheckParent reports why the link called name cannot be a parent judged
// by its name alone, or nil: the rule Validate applies to Common.Parent,
// for callers that name parents elsewhere (topology files). Create checks
// the parent the kernel has too (a loopback under another name).
func CheckParent(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if name == "lo" {
		return errors.New(loopbackParentFix)
	}
	return nil
}

// loopbackParentFix is the rule "a loopback cannot be a parent".
const loopbackParentFix = "a loopback device cannot be a parent: use an Ethernet link such as eth0 or a veth"

// CheckUnicastMAC reports why a is not usable as a link's own address (or in
// a source-mode list), or nil.
func CheckUnicastMAC(a net.HardwareAddr) error {
	if len(a) != 6 {
		return fmt.Errorf("has %d bytes: an Ethernet address has 6, like 02:00:00:00:00:01", len(a))
	}
	if a[0]&1 != 0 {
		return fmt.Errorf("is a multicast address: clear the lowest bit of the first byte (e.g. 02:…)")
	}
	zero := true
	for _, b := range a {
		if b != 0 {
			zero = false
		}
	}
	if zero {
		return fmt.Errorf("is all zeros: use a unicast address such as 02:00:00:00:00:01")
	}
	return nil
}

// validate checks the fields of c; needsParent says whether Parent is
// required.
func (c *Common) validate(kind string, needsParent bool) error {
	if err := CheckName(c.Name); err != nil {
		return fieldErr(kind, "", "name", c.Name, err.Error())
	}
	if needsParent {
		if c.Parent == "" {
			return fieldErr(kind, c.Name, "link", "", fmt.Sprintf("a %s link needs a parent: add `link DEV`", kind))
		}
		if err := CheckParent(c.Parent); err != nil {
			return fieldErr(kind, c.Name, "link", c.Parent, err.Error())
		}
		// The same name is fine when the link lands in another namespace:
		// a container's eth0 on the host's eth0 is docker's macvlan setup.
		if c.Parent == c.Name && c.NetNS == nil {
			return fieldErr(kind, c.Name, "link", c.Parent, "a link cannot be its own parent: give the new link another name, or create it in another namespace with netns")
		}
	} else if c.Parent != "" {
		return fieldErr(kind, c.Name, "link", c.Parent, fmt.Sprintf("a %s link has no parent: drop `link`", kind))
	}
	if c.MTU != 0 && c.MTU < minMTU {
		return fieldErr(kind, c.Name, "mtu", strconv.FormatUint(uint64(c.MTU), 10), fmt.Sprintf("below the Ethernet minimum of %d", minMTU))
	}
	if c.Address != nil {
		if err := CheckUnicastMAC(c.Address); err != nil {
			return fieldErr(kind, c.Name, "address", c.Address.String(), err.Error())
		}
	}
	if len(c.Alias) > maxAlias {
		return fieldErr(kind, c.Name, "alias", "", fmt.Sprintf("is %d bytes long: at most %d", len(c.Alias), maxAlias))
	}
	return c.NetNS.validate(kind, c.Name)
}
