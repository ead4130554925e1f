package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/internal/netns"
)

func init() {
	register(&command{
		Name:    "netns",
		Summary: "add, delete, list named network namespaces and run commands in them (the `ip netns` dialect)",
		Run:     runNetns,
	})
}

const netnsHelp = `usage: vmlink [-j] netns list
       vmlink netns add NAME
       vmlink netns del NAME
       vmlink netns exec NAME [--] CMD [ARGS...]

Namespaces live under /run/netns exactly as with 'ip netns': each tool sees
the other's. exec runs CMD in NAME as 'ip netns exec' does: in a private mount
namespace where /sys shows NAME's interfaces (/sys/class/net) and each file
of /etc/netns/NAME is bound over its namesake in /etc.
exec exits with CMD's own status.

` + exitTable

func runNetns(g *globals, args []string) int {
	if len(args) == 0 {
		args = []string{"list"}
	}
	op, rest := args[0], args[1:]
	switch {
	case op == "help" || op == "-h" || op == "--help":
		fmt.Fprint(g.Stdout, netnsHelp)
		return exitOK
	case matches(op, "list") || op == "show":
		if len(rest) > 0 {
			return fail(g, usagef("netns list: takes no arguments, got %q", rest[0]))
		}
		names, err := netns.List()
		if err != nil {
			return fail(g, err)
		}
		if g.JSON {
			type item struct {
				Name string `json:"name"`
			}
			out := []item{}
			for _, n := range names {
				out = append(out, item{n})
			}
			writeJSON(g, out)
			return exitOK
		}
		for _, n := range names {
			fmt.Fprintln(g.Stdout, n)
		}
		return exitOK
	case matches(op, "add"), matches(op, "delete"), op == "del":
		if len(rest) != 1 {
			return fail(g, usagef("netns %s: give exactly one NAME", op))
		}
		if err := netns.ValidateName(rest[0]); err != nil {
			return fail(g, usagef("netns %s: %v", op, err))
		}
		var err error
		if matches(op, "add") {
			var h *netns.NS
			if h, err = netns.Create(rest[0]); err == nil {
				h.Close()
			} else if errors.Is(err, unix.EEXIST) {
				err = fmt.Errorf("netns add %s: a namespace of that name exists", rest[0])
			}
		} else {
			err = netns.Delete(rest[0])
		}
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				err = &envError{err} // a namespace it names that does not exist
			}
			return fail(g, err)
		}
		return exitOK
	case matches(op, "exec"):
		if len(rest) > 0 && rest[0] == "--" {
			rest = rest[1:]
		}
		if len(rest) < 2 {
			return fail(g, usagef("netns exec: give NAME and a command: vmlink netns exec NAME -- CMD [ARGS...]"))
		}
		name, cmd := rest[0], rest[1:]
		if cmd[0] == "--" {
			cmd = cmd[1:]
		}
		if len(cmd) == 0 {
			return fail(g, usagef("netns exec %s: missing the command to run", name))
		}
		return netnsExec(g, name, cmd)
	}
	return fail(g, usagef("netns: unknown command %q: use list, add, del or exec", op))
}

// netnsExec replaces vmlink with cmd inside the namespace, as `ip netns
// exec` does (its own /sys and /etc/netns/NAME files; see
// dataplane.ExecInNetNS). It returns only when that failed.
func netnsExec(g *globals, name string, cmd []string) int {
	// The namespace first: it is what the command names, whatever CMD is.
	if err := netns.ValidateName(name); err != nil {
		return fail(g, usagef("netns exec: %v", err))
	}
	if !netns.Exists(name) {
		return fail(g, &envError{fmt.Errorf("netns exec %s: no such namespace (see 'vmlink netns list')", name)})
	}
	path, err := exec.LookPath(cmd[0])
	if err != nil {
		return fail(g, fmt.Errorf("netns exec %s: %w", name, err))
	}
	err = dataplane.ExecInNetNS(name, path, cmd, os.Environ(), func(err error) {
		fmt.Fprintf(g.Stderr, "vmlink: %v\n", err)
	})
	if errors.Is(err, os.ErrNotExist) {
		err = &envError{err} // no such namespace
	}
	return fail(g, err)
}
