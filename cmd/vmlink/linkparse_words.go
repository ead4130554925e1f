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

// words walks a command line's words the way iproute2's NEXT_ARG does:
// opt is the option at hand, i the last word it has taken.
type words struct {
	// op names what is parsed, in messages: the subcommand ("add", "set")
	// for the common options, the kind for the kind's own.
	op   string
	args []string
	i    int
	opt  string
}

// more reports whether words are left, and makes the next the option at
// hand.
func (w *words) more() bool {
	if w.i >= len(w.args) {
		return false
	}
	w.opt = w.args[w.i]
	return true
}

// rest is what follows the last word taken.
func (w *words) rest() []string { return w.args[w.i+1:] }

// take moves on to the next word and returns it; ok is false at the end.
func (w *words) take() (v string, ok bool) {
	if w.i+1 >= len(w.args) {
		return "", false
	}
	w.i++
	return w.args[w.i], true
}

// value takes the value of a common option; what says what the option
// needs when the line ends before it.
func (w *words) value(what string) (string, error) {
	v, ok := w.take()
	if !ok {
		return "", usagef("link %s: %s needs a value: %s", w.op, w.opt, what)
	}
	return v, nil
}

// need takes a value of a kind's option, as value does.
func (w *words) need(what string) (string, error) {
	v, ok := w.take()
	if !ok {
		return "", usagef("%s: %s needs %s", w.op, w.opt, what)
	}
	return v, nil
}

// takeKindValue reads the value of a kind's option name with parse.
func takeKindValue[T any](w *words, name, what string, parse func(string) (T, error)) (T, error) {
	var zero T
	v, err := w.need(what)
	if err != nil {
		return zero, err
	}
	t, err := parse(v)
	if err != nil {
		return zero, usagef("%s: %s %q: %v", w.op, name, v, err)
	}
	return t, nil
}
