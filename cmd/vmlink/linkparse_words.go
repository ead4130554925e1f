package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
)

// matches is iproute2's matches(): arg is a non-empty prefix of keyword.
func matches(arg, keyword string) bool {
	return arg != "" && strings.HasPrefix(keyword, arg)
}

// parseUint parses like iproute2's get_u32/get_u16 (strtoul with base 0:
// decimal, 0x hex, 0 octal).
func parseUint(s string, bits int) (uint64, error) {
	if s == "" || strings.ContainsAny(s, "_+-") {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 0, bits)
}

// parseGroup parses a link group: a number or a name from
// /etc/iproute2/group ("default" is 0).
func parseGroup(s string) (uint32, error) {
	if n, err := parseUint(s, 32); err == nil {
		return uint32(n), nil
	}
	if g, ok := groupNames()[s]; ok {
		return g, nil
	}
	return 0, fmt.Errorf("not a group number or a name from /etc/iproute2/group")
}

// groupNames reads /etc/iproute2/group (as iproute2 does); "default" is
// always 0.
func groupNames() map[string]uint32 {
	names := map[string]uint32{"default": 0}
	b, err := os.ReadFile("/etc/iproute2/group")
	if err != nil {
		return names
	}
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if n, err := parseUint(f[0], 32); err == nil {
			names[f[1]] = uint32(n)
		}
	}
	return names
}

// parseNetNS parses `netns NAME|PID` like iproute2: a name under /run/netns
// wins; otherwise a number is a process id.
func parseNetNS(s string) (*link.Target, error) {
	if s == "" || strings.Contains(s, "/") {
		return nil, fmt.Errorf("not a namespace name: name one from `ip netns list`, or give a process id")
	}
	if _, err := os.Stat(filepath.Join(netns.Dir, s)); err == nil {
		return &link.Target{Name: s}, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return &link.Target{PID: n}, nil
	}
	// Not there (yet): keep the name; the operation reports the missing
	// namespace with the errno.
	return &link.Target{Name: s}, nil
}
