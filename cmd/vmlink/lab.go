package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/verify"
)

func init() {
	register(&command{
		Name:    "lab",
		Summary: "build a self-contained lab in throwaway namespaces, verify it on the wire, tear it down",
		Run:     runLab,
	})
}

const labHelp = `usage: vmlink [-j [-p]] lab [--keep] [NAME]
       vmlink lab --list
       vmlink lab --down PREFIX
       vmlink lab --down

  NAME      the lab to run (default: modes); --list shows them all
  --keep    keep the lab after the verification, to explore it with
            'ip netns exec' or 'vmlink -n NETNS link show'; prints the
            command that removes it
  --down PREFIX  remove a lab kept with --keep (PREFIX as it printed,
            vmlab-<pid>-), or what a killed lab left
  --down    (alone) remove every orphaned lab: namespaces vmlab-<pid>-…
            whose process <pid> no longer runs
  --wait D  how long each probe waits for an answer before it counts as
            blocked; by default the lab derives it from how fast this
            machine built the lab — netlink round trips with the kernel —
            (250ms on a fast one, seconds under emulation), and verify
            lengthens it when answers come slower still
  -j        print what was built and the verification as JSON

A lab builds its topology in namespaces named vmlab-<pid>-…, prints what it
built, verifies it on the wire (vmlink verify), and removes everything,
whatever happens (errors, Ctrl-C, kill, a closed terminal or pipe).

` + exitTable

// verifyParent judges one parent's part of what a lab built; a variable
// so tests can count or replace the judge.
var verifyParent = func(ctx context.Context, t verify.Topology, wait time.Duration) (*verify.Report, error) {
	return verify.Run(ctx, t, verify.Options{Wait: wait})
}

type labArgs struct {
	name       string
	list, keep bool
	json       bool
	down       string // --down PREFIX: remove a kept lab
	orphans    bool   // --down alone: remove the labs whose process is gone
	wait       time.Duration
	waitSet    bool
}

// parseInterspersed parses fs over args allowing flags after positional
// arguments, as users type them (`lab modes --keep`).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func parseLabArgs(args []string, g *globals) (*labArgs, error) {
	a := &labArgs{name: "modes", json: g.JSON}
	fs := newFlags("lab")
	fs.BoolVar(&a.list, "list", false, "")
	fs.BoolVar(&a.list, "l", false, "")
	fs.BoolVar(&a.keep, "keep", false, "")
	fs.StringVar(&a.down, "down", "", "")
	fs.Func("wait", "", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("--wait %q: use a duration like 500ms", s)
		}
		a.wait, a.waitSet = d, true
		return nil
	})
	jsonFlags(fs, &a.json)
	// --down without a prefix (last on the line) means the orphans.
	if n := len(args); n > 0 && (args[n-1] == "--down" || args[n-1] == "-down") {
		a.orphans, args = true, args[:n-1]
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, errHelp
	}
	if err != nil {
		return nil, usagef("lab: %v", err)
	}
	if len(pos) == 1 && pos[0] == "help" {
		return nil, errHelp
	}
	if len(pos) > 1 {
		return nil, usagef("lab: one lab at a time, got %q: run 'vmlink lab --list'", strings.Join(pos, " "))
	}
	if len(pos) == 1 {
		a.name = pos[0]
	}
	if a.down != "" {
		if a.orphans {
			return nil, usagef("lab --down: give one PREFIX, or none for every orphaned lab")
		}
		p, err := dataplane.ParseLabPrefix(a.down)
		if err != nil {
			return nil, usagef("lab --down: %v", err)
		}
		a.down = p
	}
	if (a.down != "" || a.orphans) && (a.keep || a.list) {
		return nil, usagef("lab --down: goes alone, without --keep or --list")
	}
	if a.waitSet && a.wait <= 0 {
		return nil, usagef("lab --wait %s: use a positive duration like 500ms, or leave it out to derive it", a.wait)
	}
	return a, nil
}

func runLab(g *globals, args []string) int {
	a, err := parseLabArgs(args, g)
	if errors.Is(err, errHelp) {
		fmt.Fprint(g.Stdout, labHelp)
		return exitOK
	}
	if err != nil {
		return fail(g, err)
	}
	if a.list {
		return listLabs(g)
	}
	lab, err := dataplane.LookupLab(a.name)
	if err != nil {
		return fail(g, usagef("lab: %v", err))
	}
	if g.NetNS != "" {
		return fail(g, usagef("lab: -n is not supported: a lab makes its own namespaces"))
	}
	ctx := g.Ctx
	if a.down != "" || a.orphans {
		return downLabs(g, a)
	}
	if lab.Needs != "" {
		if err := dataplane.Probe(ctx, lab.Needs); err != nil {
			var fe *dataplane.FeatureError
			if errors.As(err, &fe) && fe.Feature == "8021q" {
				return fail(g, &envError{fmt.Errorf("lab %s needs 802.1Q VLAN support (load module 8021q); this kernel has none", lab.Name)})
			}
			return fail(g, &envError{fmt.Errorf("lab %s: %w", lab.Name, err)})
		}
	}
	res := runLabPhases(ctx, g, lab, dataplane.LabPrefix(os.Getpid()), a.keep, a.wait)
	if a.json {
		writeJSON(g, res)
	}
	if res.err != nil {
		var fe *dataplane.FeatureError
		if errors.As(res.err, &fe) && fe.Feature == "8021q" {
			return fail(g, &envError{fmt.Errorf("lab %s needs 802.1Q VLAN support (load module 8021q); this kernel has none", lab.Name)})
		}
		if fe != nil {
			return fail(g, &envError{fmt.Errorf("lab %s: %w", lab.Name, res.err)})
		}
		if errors.Is(res.err, unix.EPERM) {
			return fail(g, &envError{fmt.Errorf("lab %s: %w (labs need root: CAP_NET_ADMIN and CAP_SYS_ADMIN)", lab.Name, res.err)})
		}
		return fail(g, fmt.Errorf("lab %s: %w", lab.Name, res.err))
	}
	if !res.OK {
		return exitFailed
	}
	return exitOK
}

// downLabs removes the lab run under a.down, or (--down alone) every lab
// whose process is gone.
func downLabs(g *globals, a *labArgs) int {
	prefixes := []string{a.down}
	if a.orphans {
		var err error
		if prefixes, err = dataplane.OrphanLabPrefixes(); err != nil {
			return fail(g, err)
		}
		if len(prefixes) == 0 {
			fmt.Fprintln(g.Stdout, "no orphaned lab namespaces (vmlab-<pid>-… of a process that is gone)")
			return exitOK
		}
	}
	for _, p := range prefixes {
		removed, err := dataplane.DownLab(g.Ctx, p, &dataplane.Options{StateDir: g.StateDir})
		if err != nil {
			return fail(g, fmt.Errorf("lab --down %s: %w", p, err))
		}
		fmt.Fprintf(g.Stdout, "removed lab %s: %d namespaces, %d links\n", p, len(removed.Namespaces), len(removed.Links))
	}
	return exitOK
}

func listLabs(g *globals) int {
	labs, err := dataplane.Labs()
	if err != nil {
		return fail(g, err)
	}
	if g.JSON {
		type item struct {
			Name        string `json:"name"`
			Description string `json:"description"`
			Needs       string `json:"needs,omitempty"`
		}
		var out []item
		for _, l := range labs {
			out = append(out, item{l.Name, l.Description, l.Needs})
		}
		writeJSON(g, out)
		return exitOK
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAB\tNEEDS\tDESCRIPTION")
	for _, l := range labs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", l.Name, orDash(l.Needs), l.Description)
	}
	tw.Flush()
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(g *globals, v any) {
	var b []byte
	var err error
	if g.Pretty {
		b, err = json.MarshalIndent(v, "", "    ")
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		fmt.Fprintf(g.Stderr, "vmlink: encode JSON: %v\n", err)
		return
	}
	fmt.Fprintf(g.Stdout, "%s\n", b)
}

// labResult is the whole run, and its JSON form.
type labResult struct {
	Lab     string             `json:"lab"`
	Prefix  string             `json:"prefix"`
	OK      bool               `json:"ok"`
	Phases  []labPhaseOut      `json:"phases"`
	Kept    bool               `json:"kept"`
	Removed *dataplane.Removed `json:"removed,omitempty"`
	// Wait is the probe wait the lab derived from its build time (not set
	// when --wait gave one).
	Wait  string `json:"wait,omitempty"`
	Error string `json:"error,omitempty"`
	err   error
}

type labPhaseOut struct {
	Name       string                     `json:"name"`
	Namespaces []dataplane.BuiltNS        `json:"namespaces"`
	Parents    []dataplane.BuiltParent    `json:"parents"`
	Interfaces []dataplane.BuiltInterface `json:"interfaces"`
	Verify     []*verify.Report           `json:"verify"`
	OK         bool                       `json:"ok"`
}

// runLabPhases builds each phase, verifies it, and tears the lab down
// (unless keep) whatever happened. Text goes to g.Stdout as it happens
// unless JSON was asked for.
func runLabPhases(ctx context.Context, g *globals, lab *dataplane.Lab, prefix string, keep bool, wait time.Duration) *labResult {
	inst := lab.WithPrefix(prefix)
	res := &labResult{Lab: lab.Name, Prefix: prefix, OK: true}
	text := !g.JSON
	out := g.Stdout
	if text {
		fmt.Fprintf(out, "lab %s: %s\n", lab.Name, lab.Description)
		fmt.Fprintf(out, "namespaces: %s* (throwaway)\n", prefix)
	}
	opts := &dataplane.Options{StateDir: g.StateDir}
	defer func() {
		if keep && res.err == nil {
			res.Kept = true
			if text {
				fmt.Fprintf(out, "\nkept. explore with: ip netns exec %s<endpoint> ip addr\n", prefix)
				fmt.Fprintf(out, "remove with:  vmlink lab --down %s\n", prefix)
			}
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		started := time.Now()
		removed, err := dataplane.Down(dctx, inst.Final(), opts)
		res.Removed = removed
		if err != nil && res.err == nil {
			res.err = fmt.Errorf("tear down: %w", err)
		}
		if text && removed != nil {
			fmt.Fprintf(out, "\ntorn down: %d namespaces, %d links removed in %s\n", len(removed.Namespaces), len(removed.Links), time.Since(started).Round(time.Millisecond))
		}
	}()
	for _, ph := range inst.Phases {
		started := time.Now()
		built, err := dataplane.Up(ctx, ph.Topology, opts)
		took := time.Since(started)
		if err != nil {
			res.err, res.OK = err, false
			res.Error = err.Error()
			return res
		}
		po := labPhaseOut{Name: ph.Name, Namespaces: built.Namespaces, Parents: built.Parents, Interfaces: built.Interfaces, OK: true}
		if text {
			fmt.Fprintf(out, "\n== phase %s: built %d objects in %s\n\n", ph.Name, built.Created, took.Round(time.Millisecond))
			printBuilt(out, built, prefix)
		}
		if wait == 0 {
			// From the first phase's build: how fast this machine is.
			wait = dataplane.ProbeWait(took, built.Created)
			res.Wait = wait.String()
			if text {
				fmt.Fprintf(out, "\nprobes wait %s for an answer (derived from this machine's build time, %s per object)\n",
					wait, perObject(took, built.Created))
			}
		}
		reports, err := verifyAll(ctx, built.VerifyTopologies(), wait)
		if err != nil {
			res.err, res.OK = err, false
			res.Error = err.Error()
			res.Phases = append(res.Phases, po)
			return res
		}
		for _, r := range reports {
			po.Verify = append(po.Verify, r)
			if !r.OK {
				po.OK, res.OK = false, false
			}
			if text {
				fmt.Fprintf(out, "\n-- verify %s (switch reflects: %s, %s)\n", r.Parent, yesNo(r.SwitchReflects), r.ReflectsSource)
				if err := r.WriteTable(out); err != nil {
					fmt.Fprintf(g.Stderr, "vmlink: print report: %v\n", err)
				}
			}
		}
		res.Phases = append(res.Phases, po)
		if text {
			verdict := "PASS"
			if !po.OK {
				verdict = "FAIL"
			}
			fmt.Fprintf(out, "\nphase %s: %s\n", ph.Name, verdict)
		}
	}
	return res
}

func perObject(took time.Duration, n int) string {
	if n <= 0 {
		return "-"
	}
	return (took / time.Duration(n)).Round(100 * time.Microsecond).String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// verifyAll runs the judge on every parent at once: parents are separate
// wires, so their probes and captures do not interfere.
func verifyAll(ctx context.Context, tops []verify.Topology, wait time.Duration) ([]*verify.Report, error) {
	reports := make([]*verify.Report, len(tops))
	errs := make([]error, len(tops))
	var wg sync.WaitGroup
	for i, t := range tops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i], errs[i] = verifyParent(ctx, t, wait)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return reports, nil
}

// printBuilt prints the parents and interfaces as two tables.
func printBuilt(w io.Writer, b *dataplane.Built, prefix string) {
	short := func(ns string) string { return strings.TrimPrefix(ns, prefix) }
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARENT\tNETNS\tMAC\tSWITCH\tHAIRPIN\tHOST ADDRESSES\tOUTSIDE")
	for _, p := range b.Parents {
		sw := "(existing wire)"
		if p.Sandbox {
			sw = short(p.Switch) + "/" + p.Bridge
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, orDash(short(p.NetNS)), p.MAC, sw, hairpinWord(p.Hairpin), prefixes(p.Addrs), prefixes(p.Outside))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tINTERFACE\tNETWORK\tKIND\tMODE\tON\tMAC\tADDRESSES")
	for _, it := range b.Interfaces {
		ep := short(it.NetNS)
		if it.Shim {
			ep = "host shim (" + orDash(short(it.NetNS)) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ep, it.Name, it.Network, it.Kind, it.Mode, it.Lower, it.MAC, prefixes(it.Addrs))
	}
	tw.Flush()
}

func hairpinWord(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func prefixes(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}
