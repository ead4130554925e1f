package rtnl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestHint(t *testing.T) {
	newlink := func(kind, mode string) HintContext {
		return HintContext{Type: unix.RTM_NEWLINK, Kind: kind, Mode: mode, Name: "x0"}
	}
	tests := []struct {
		name    string
		errno   unix.Errno
		message string
		c       HintContext
		want    string // substring; "" = no hint
	}{
		// Measured on 6.18 (no 8021q/ipvlan/dummy): EOPNOTSUPP "Unknown device type".
		{"no 8021q", unix.EOPNOTSUPP, "Unknown device type", newlink("vlan", ""), "kernel has no 802.1Q VLAN support (load module 8021q)"},
		{"no ipvlan", unix.EOPNOTSUPP, "Unknown device type", newlink("ipvlan", "l2"), "kernel has no ipvlan support (load module ipvlan)"},
		{"no dummy", unix.EOPNOTSUPP, "Unknown device type", newlink("dummy", ""), "(load module dummy)"},
		{"no macvlan", unix.EOPNOTSUPP, "Unknown device type", newlink("macvlan", "bridge"), "(load module macvlan)"},
		{"no vlan, old kernel without extack", unix.EOPNOTSUPP, "", newlink("vlan", ""), "load module 8021q"},
		{"EOPNOTSUPP for something else", unix.EOPNOTSUPP, "Operation not supported on this device", newlink("vlan", ""), ""},
		{"EOPNOTSUPP on delete", unix.EOPNOTSUPP, "", HintContext{Type: unix.RTM_DELLINK}, ""},

		// Measured: EEXIST, no extack message, for a duplicate name.
		{"duplicate name", unix.EEXIST, "", newlink("macvlan", "bridge"), `a link named "x0" already exists`},
		{"duplicate name, unnamed", unix.EEXIST, "", HintContext{Type: unix.RTM_NEWLINK}, "a link with this name already exists"},
		{"duplicate veth name", unix.EEXIST, "", newlink("veth", ""), "peer's name"},
		// vlan_check_real_dev: "VLAN device already exists" (VM-tested).
		{"duplicate vlan id", unix.EEXIST, "8021q: VLAN device already exists", newlink("vlan", ""), "parent already has a VLAN link with this id and protocol"},
		{"vlan EEXIST without message", unix.EEXIST, "", newlink("vlan", ""), `a link named "x0" already exists, or the parent already has a VLAN link with this id`},
		{"address exists", unix.EEXIST, "", HintContext{Type: unix.RTM_NEWADDR}, ""},

		// Measured: EINVAL, no message, for both passthru conflicts.
		{"second passthru", unix.EINVAL, "", newlink("macvlan", "passthru"), "passthru needs the parent to itself"},
		{"bridge on passthru parent", unix.EINVAL, "", newlink("macvlan", "bridge"), "parent already has a passthru macvlan/macvtap"},
		{"macvtap on passthru parent", unix.EINVAL, "", newlink("macvtap", "vepa"), "parent already has a passthru"},
		{"with MTU", unix.EINVAL, "", HintContext{Type: unix.RTM_NEWLINK, Kind: "macvlan", Mode: "bridge", SetsMTU: true}, "or the MTU is above the parent's"},
		{"EINVAL with a kernel message", unix.EINVAL, "Invalid MAC address", newlink("macvlan", "bridge"), ""},
		{"EINVAL for vlan", unix.EINVAL, "", newlink("vlan", ""), ""},

		// Measured: EADDRINUSE when the link comes up (create with up, set up, set address while up).
		{"busy MAC on create up", unix.EADDRINUSE, "", HintContext{Type: unix.RTM_NEWLINK, Kind: "macvlan", SetsUp: true}, "MAC address is already used on this parent"},
		{"busy MAC on set up", unix.EADDRINUSE, "", HintContext{Type: unix.RTM_SETLINK, SetsUp: true}, "sibling macvlan/macvtap"},

		{"no such link", unix.ENODEV, "", HintContext{Type: unix.RTM_DELLINK}, "no such link"},
		{"empty group", unix.ENODEV, "", HintContext{Type: unix.RTM_DELLINK, ByGroup: true}, "no link is in that group"},
		// Measured: EPERM for `ip link del group 0`.
		{"group 0", unix.EPERM, "", HintContext{Type: unix.RTM_DELLINK, ByGroup: true}, "group 0 is every link's default group"},
		{"unprivileged", unix.EPERM, "", newlink("macvlan", "bridge"), "CAP_NET_ADMIN"},
		{"vlan id range", unix.ERANGE, "", newlink("vlan", ""), "0 and 4094"},
		{"unknown", unix.EIO, "", newlink("vlan", ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Hint(tt.errno, tt.message, tt.c)
			if tt.want == "" {
				if got != "" {
					t.Fatalf("Hint = %q, want none", got)
				}
				return
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("Hint = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

// TestHintSentences checks the exact words of hints whose wording was
// wrong once: each reads as one sentence, with no nested parenthesis
// inside the " (hint)" OpError.Error puts around it, saying what to do.
func TestHintSentences(t *testing.T) {
	newlink := HintContext{Type: unix.RTM_NEWLINK, Kind: "vlan", Name: "v10"}
	got := Hint(unix.EEXIST, "8021q: VLAN device already exists", newlink)
	want := "the parent already has a VLAN link with this id and protocol: delete it or use another id"
	if got != want {
		t.Errorf("duplicate VLAN hint = %q\nwant                 %q", got, want)
	}
	oe := newOpError(unix.RTM_NEWLINK, &netlink.OpError{Op: "receive", Err: unix.EEXIST, Message: "8021q: VLAN device already exists"}, &newlink)
	if msg := oe.Error(); strings.Count(msg, "(") != strings.Count(msg, ")") || strings.Contains(msg, "))") {
		t.Errorf("error line has unbalanced or nested parentheses: %q", msg)
	}
}

func TestOpErrorWrapsNetlinkError(t *testing.T) {
	ne := &netlink.OpError{Op: "receive", Err: unix.EEXIST, Sequence: 3}
	err := fmt.Errorf("create macvlan mv1: %w", newOpError(unix.RTM_NEWLINK, ne, &HintContext{Name: "mv1", Kind: "macvlan"}))
	if !errors.Is(err, unix.EEXIST) {
		t.Fatal("errors.Is(err, EEXIST) = false")
	}
	if errors.Is(err, unix.ENOENT) {
		t.Fatal("errors.Is(err, ENOENT) = true")
	}
	var oe *OpError
	if !errors.As(err, &oe) {
		t.Fatal("no *OpError in the chain")
	}
	if oe.Errno != unix.EEXIST || oe.Op != "RTM_NEWLINK" {
		t.Errorf("OpError = %+v", oe)
	}
	want := `create macvlan mv1: RTM_NEWLINK: file exists (a link named "mv1" already exists)`
	if err.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", err.Error(), want)
	}
}

func TestOpErrorWithoutErrno(t *testing.T) {
	oe := newOpError(unix.RTM_GETLINK, context.DeadlineExceeded, nil)
	if oe.Errno != 0 || oe.Hint != "" {
		t.Errorf("OpError = %+v, want no errno and no hint", oe)
	}
	if !oe.Timeout() {
		t.Error("Timeout() = false for a deadline")
	}
	if got, want := oe.Error(), "RTM_GETLINK: context deadline exceeded"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var nilErr *OpError
	if nilErr.Error() != "<nil>" {
		t.Error("nil *OpError does not print <nil>")
	}
}

func TestMessageTypeString(t *testing.T) {
	for typ, want := range map[netlink.HeaderType]string{
		unix.RTM_NEWLINK: "RTM_NEWLINK", unix.RTM_DELLINK: "RTM_DELLINK", unix.RTM_GETLINK: "RTM_GETLINK",
		unix.RTM_NEWADDR: "RTM_NEWADDR", unix.RTM_NEWROUTE: "RTM_NEWROUTE", unix.RTM_NEWNEIGH: "RTM_NEWNEIGH",
		999: "RTM_999",
	} {
		if got := MessageTypeString(typ); got != want {
			t.Errorf("MessageTypeString(%d) = %q, want %q", typ, got, want)
		}
	}
}
