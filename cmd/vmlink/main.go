// Command vmlink creates VLAN, macvlan, macvtap and ipvlan links from
// rtnetlink messages, builds container-style data paths on them, and proves
// on the wire that they behave.
//
// This file only dispatches: every subcommand lives in its own file and
// registers itself with register in an init function, so commands can be
// added without touching each other.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes shared by every subcommand.
const (
	exitOK       = 0 // the operation succeeded (verify: everything matched)
	exitFailed   = 1 // the operation failed (verify: a mismatch)
	exitUsage    = 2 // the command line is wrong
	exitEnvError = 3 // the environment prevents the operation (verify: no privileges, parent missing)
)

// globals are the options that come before the subcommand, as with `ip`:
// `vmlink -n ns1 -j link show`.
type globals struct {
	NetNS   string // -n NAME: run inside the named namespace, like `ip -n`
	JSON    bool   // -j: JSON output
	Pretty  bool   // -p: indent JSON
	Details bool   // -d: accepted for `ip -d` compatibility; show is always detailed
	Stdout  io.Writer
	Stderr  io.Writer
}

// command is one top-level subcommand such as "link" or "capture".
type command struct {
	Name    string
	Summary string
	// Run executes the subcommand with the arguments after its name and
	// returns the process exit code.
	Run func(g *globals, args []string) int
}

var commands = map[string]*command{}

// register adds a subcommand; called from init functions.
func register(c *command) {
	if _, dup := commands[c.Name]; dup {
		panic("vmlink: duplicate command " + c.Name)
	}
	commands[c.Name] = c
}

// usageError marks an error caused by the command line, exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a usage error; the message names the field and the fix.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// envError marks an error caused by the environment (privileges, a missing
// parent), exit code 3 where a command distinguishes it.
type envError struct{ err error }

func (e *envError) Error() string { return e.err.Error() }
func (e *envError) Unwrap() error { return e.err }

// fail prints err as one line prefixed with "vmlink: " and returns the exit
// code its kind calls for.
func fail(g *globals, err error) int {
	fmt.Fprintf(g.Stderr, "vmlink: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var ee *envError
	if errors.As(err, &ee) {
		return exitEnvError
	}
	return exitFailed
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the global options and dispatches; split from main for tests.
func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{Stdout: stdout, Stderr: stderr}
	fs := flag.NewFlagSet("vmlink", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.NetNS, "n", "", "run inside the named network namespace (as `ip -n`)")
	fs.StringVar(&g.NetNS, "netns", "", "same as -n")
	fs.BoolVar(&g.JSON, "j", false, "print JSON")
	fs.BoolVar(&g.JSON, "json", false, "same as -j")
	fs.BoolVar(&g.Pretty, "p", false, "indent JSON output")
	fs.BoolVar(&g.Details, "d", false, "accepted for `ip -d` compatibility")
	help := fs.Bool("h", false, "show help")
	fs.BoolVar(help, "help", false, "show help")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "vmlink: %v\n", err)
		printUsage(stderr)
		return exitUsage
	}
	rest := fs.Args()
	if *help || len(rest) == 0 {
		printUsage(stdout)
		if *help {
			return exitOK
		}
		return exitUsage
	}
	name := rest[0]
	if name == "help" {
		printUsage(stdout)
		return exitOK
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "vmlink: unknown command %q: run 'vmlink help' for the list\n", name)
		return exitUsage
	}
	return c.Run(g, rest[1:])
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: vmlink [-n NETNS] [-j] [-p] COMMAND [ARGS...]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintln(w, "\n"+strings.TrimSpace(`
global options:
  -n NETNS   run inside the named network namespace (as 'ip -n')
  -j         print JSON
  -p         indent JSON
Run 'vmlink COMMAND help' for a command's options.`))
}

// parseFlags parses a command's flags the same way for every command:
// `help`, -h or --help give errHelp (the caller prints the command's help),
// a bad flag is a usage error that points at the help.
func parseFlags(fs *flag.FlagSet, cmd string, args []string, errHelp error) error {
	if len(args) > 0 && args[0] == "help" {
		return errHelp
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usagef("%s: %v: see 'vmlink %s help'", cmd, err, cmd)
	}
	return nil
}
