// Command vmlink creates VLAN, macvlan, macvtap and ipvlan links from
// rtnetlink messages, builds container-style data paths on them, and proves
// on the wire that they behave.
//
// This file only dispatches: every subcommand lives in its own file and
// registers itself with register in an init function, so commands can be
// added without touching each other.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/verify"
)

// Exit codes shared by every subcommand; exitCode picks one for an error.
const (
	exitOK       = 0 // the operation succeeded (verify, lab: every check passed)
	exitFailed   = 1 // the operation failed, or a check failed
	exitUsage    = 2 // the command line or the file is wrong
	exitEnvError = 3 // the environment prevents the operation
	// An interrupting signal exits 128+N after the cleanup (SIGINT 130,
	// SIGTERM 143, SIGHUP 129, SIGPIPE 141).
	exitSignal = 128
)

// exitTable is the exit-status table every help text ends with.
const exitTable = `Exit status (every vmlink command):
  0    ok (verify, lab: every check passed)
  1    the operation failed (the kernel refused it, it conflicts with what
       exists: a name taken, a network not found, endpoints attached), or a
       check failed
  2    the command line or the file is wrong (syntax, a value out of range,
       options that exclude each other); nothing was tried
  3    the environment prevents it: no privileges, a kernel feature or
       module missing, an interface or namespace it names does not exist
  130, 143, 129, 141
       interrupted by SIGINT, SIGTERM, SIGHUP or SIGPIPE (128+signal), after
       removing what the command had created (capture -i: SIGINT and
       SIGTERM are its normal end, exit 0, as with tcpdump)
`

// globals are the options that come before the subcommand, as with `ip`:
// `vmlink -n ns1 -j link show`.
type globals struct {
	NetNS   string // -n NAME: run inside the named namespace, like `ip -n`
	JSON    bool   // -j: JSON output
	Pretty  bool   // -p: indent JSON
	Details bool   // -d: accepted for `ip -d` compatibility; show is always detailed
	// StateDir is $VMLINK_STATE_DIR: where networks, topologies and labs
	// keep their state instead of /run/vmlink, so that a test or a CI job
	// has its own state and its `net ls` reconciles only its own links.
	StateDir string
	Stdout   io.Writer
	Stderr   io.Writer

	// Ctx ends at the first interrupting signal (see interrupts); caught
	// records which one, and run exits 128+N for it once the command has
	// cleaned up and returned.
	Ctx    context.Context
	caught atomic.Int32
	// signalEnds makes SIGINT and SIGTERM a normal end (exit 0): a live
	// capture stops that way, as tcpdump does.
	signalEnds bool
}

// interrupts are the signals after which a command removes what it created
// and exits 128+N: Ctrl-C, kill, a closed terminal, and a closed pipe
// (`vmlink lab | head -1`). Notifying for SIGPIPE also turns a write to the
// closed pipe into an EPIPE error instead of killing the process mid-way.
var interrupts = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE}

// watchSignals sets g.Ctx and returns the function that stops watching.
func (g *globals) watchSignals() func() {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, len(interrupts))
	signal.Notify(ch, interrupts...)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			if sig, ok := s.(syscall.Signal); ok {
				g.caught.CompareAndSwap(0, int32(sig))
			}
			cancel()
		case <-done:
		}
	}()
	g.Ctx = ctx
	return func() {
		close(done)
		signal.Stop(ch)
		cancel()
	}
}

// interrupted is the signal that ended the command, 0 for none (or for one
// the command takes as its normal end).
func (g *globals) interrupted() syscall.Signal {
	sig := syscall.Signal(g.caught.Load())
	if g.signalEnds && (sig == syscall.SIGINT || sig == syscall.SIGTERM) {
		return 0
	}
	return sig
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
// kernel feature or interface), exit code 3.
type envError struct{ err error }

func (e *envError) Error() string { return e.err.Error() }
func (e *envError) Unwrap() error { return e.err }

// fail prints err as one line prefixed with "vmlink: " and returns the exit
// code exitCode picks for it. After an interrupting signal the line says so
// instead of blaming what the cancellation broke.
func fail(g *globals, err error) int {
	if sig := g.interrupted(); sig != 0 {
		fmt.Fprintf(g.Stderr, "vmlink: interrupted by %s: %s\n", signalName(sig), oneLine(err.Error()))
		return exitSignal + int(sig)
	}
	fmt.Fprintf(g.Stderr, "vmlink: %s\n", oneLine(err.Error()))
	return exitCode(err)
}

// oneLine keeps an error on the one line the CLI promises (YAML and
// joined errors can carry newlines).
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// exitCode is the one mapping from an error to the exit status (see
// exitTable):
//   - 2: the command line or file is wrong, found before anything changed —
//     our usage errors, link's and dataplane's field errors, a topology
//     verify cannot judge as given;
//   - 3: the environment — privileges (EPERM, EACCES), a kernel feature the
//     kernel lacks (EOPNOTSUPP, "load module X"), an interface or namespace
//     the command names that does not exist;
//   - 1: everything else: the kernel refused the operation, it conflicts
//     with what exists, or a check failed.
func exitCode(err error) int {
	var (
		ue  *usageError
		ee  *envError
		lfe *link.FieldError
		dfe *dataplane.FieldError
		dft *dataplane.FeatureError
	)
	// The environment first: a field error about a parent that does not
	// exist names a missing interface, not a wrong value.
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee), errors.As(err, &dft), errors.Is(err, verify.ErrEnvironment),
		errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.EOPNOTSUPP),
		errors.Is(err, link.ErrNotFound), errors.Is(err, unix.ENODEV), errors.Is(err, errNoNetNS),
		errors.Is(err, dataplane.ErrNoInterface):
		return exitEnvError
	case errors.Is(err, dataplane.ErrConflict):
		return exitFailed
	case errors.As(err, &ue), errors.As(err, &lfe), errors.As(err, &dfe), errors.Is(err, dataplane.ErrRefused),
		errors.Is(err, verify.ErrTopology):
		return exitUsage
	}
	return exitFailed
}

// errNoNetNS marks a namespace the command names (-n NAME) that does not exist.
var errNoNetNS = errors.New("no such network namespace")

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	}
	return sig.String()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the global options and dispatches; split from main for tests.
func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{Stdout: stdout, Stderr: stderr, StateDir: os.Getenv("VMLINK_STATE_DIR")}
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
		fmt.Fprintf(stderr, "vmlink: %v: run 'vmlink help' for the options\n", err)
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
	stop := g.watchSignals()
	defer stop()
	// A signal that came after the command had done its work (up applied,
	// nothing left to cut short) does not change its exit status: fail
	// reports the ones that interrupted it.
	return c.Run(g, rest[1:])
}

// checkNetNS refuses a -n NAME that names no namespace (exit 3, as every
// missing object the command names). Commands call it once their own
// arguments parsed, so a wrong command line is reported first (exit 2).
func (g *globals) checkNetNS() error {
	name := g.NetNS
	if name == "" {
		return nil
	}
	if err := netns.ValidateName(name); err != nil {
		return usagef("-n %q: %v", name, err)
	}
	if !netns.Exists(name) {
		return fmt.Errorf("-n %s: %w: create it with 'vmlink netns add %s' (or ip netns add)", name, errNoNetNS, name)
	}
	return nil
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
environment:
  VMLINK_STATE_DIR  state directory of networks, topologies and labs
                    (default /run/vmlink)
Run 'vmlink COMMAND help' for a command's options.`))
	fmt.Fprint(w, "\n"+exitTable)
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

// newFlags is a command's flag set: errors come back to the caller, which
// says them its own way; nothing is printed.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// jsonFlags adds -j and --json to a command's flags; the global -j (the
// value *json holds) is their default.
func jsonFlags(fs *flag.FlagSet, json *bool) {
	fs.BoolVar(json, "j", *json, "")
	fs.BoolVar(json, "json", *json, "")
}

// startCommand begins a command that judges or watches (doctor, verify,
// capture) the same way each time: parse reads its command line; `help`,
// -h or --help (errHelp) print help and exit 0; then a wrong command line
// (exit 2) and a -n NETNS that names no namespace (exit 3) fail, in that
// order. done is true when the command has nothing left to do, with code
// its exit status.
func startCommand[A any](g *globals, args []string, help string, parse func([]string, *globals) (A, error)) (a A, code int, done bool) {
	a, err := parse(args, g)
	if errors.Is(err, errHelp) {
		fmt.Fprint(g.Stdout, help)
		return a, exitOK, true
	}
	if err == nil {
		err = g.checkNetNS()
	}
	if err != nil {
		return a, fail(g, err), true
	}
	return a, exitOK, false
}
