package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/vmlink/vmlink/dataplane"
)

func init() {
	register(&command{
		Name:    "up",
		Summary: "apply a topology file atomically (all or nothing; idempotent)",
		Run:     func(g *globals, args []string) int { return runUpDown(g, "up", args) },
	})
	register(&command{
		Name:    "down",
		Summary: "remove exactly what 'vmlink up' created for a topology file",
		Run:     func(g *globals, args []string) int { return runUpDown(g, "down", args) },
	})
}

const upDownHelp = `usage: vmlink [-j [-p]] up -f FILE [-v]
       vmlink [-j [-p]] down -f FILE

  up    applies the topology in FILE (YAML): namespaces, sandboxed veth
        parents and their switch, networks (X.N parents created as 802.1Q
        VLANs), endpoints with addresses and default routes, host shims.
        All or nothing: on an error or Ctrl-C everything created so far is
        removed again. Applying an applied file changes nothing.
  down  removes what up created for FILE — links marked with the
        topology's group and alias, the namespaces it created, addresses it
        added — and nothing else, also after a crash.
  -v    print each step as it runs

` + exitTable

func runUpDown(g *globals, verb string, args []string) int {
	fs := newFlags(verb)
	file := fs.String("f", "", "")
	fs.StringVar(file, "file", "", "")
	verbose := fs.Bool("v", false, "")
	jsonOut := fs.Bool("j", g.JSON, "")
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) || (len(pos) == 1 && pos[0] == "help") {
		fmt.Fprint(g.Stdout, upDownHelp)
		return exitOK
	}
	if err != nil {
		return fail(g, usagef("%s: %v", verb, err))
	}
	if len(pos) == 1 && *file == "" {
		*file = pos[0]
	} else if len(pos) > 0 {
		return fail(g, usagef("%s: unexpected %q: give the file with -f FILE", verb, pos[0]))
	}
	if *file == "" {
		return fail(g, usagef("%s: missing -f FILE: the topology file to %s", verb, verbWord(verb)))
	}
	if g.NetNS != "" {
		return fail(g, usagef("%s: -n is not supported: name the host namespace in the file (host: NAME)", verb))
	}
	g.JSON = *jsonOut
	t, err := dataplane.ParseFile(*file)
	if err != nil {
		return fail(g, usagef("%v", err))
	}
	ctx := g.Ctx
	opts := &dataplane.Options{StateDir: g.StateDir}
	if *verbose {
		opts.Progress = func(s string) { fmt.Fprintf(g.Stderr, "  %s\n", s) }
	}
	started := time.Now()
	if verb == "down" {
		removed, err := dataplane.Down(ctx, t, opts)
		if err != nil {
			return fail(g, err)
		}
		if g.JSON {
			writeJSON(g, removed)
			return exitOK
		}
		fmt.Fprintf(g.Stdout, "down %s: removed %d links, %d namespaces, %d addresses in %s\n", t.Name,
			len(removed.Links), len(removed.Namespaces), len(removed.Addrs), time.Since(started).Round(time.Millisecond))
		return exitOK
	}
	built, err := dataplane.Up(ctx, t, opts)
	if err != nil {
		return fail(g, err)
	}
	if g.JSON {
		writeJSON(g, map[string]any{"topology": t.Name, "created": built.Created, "namespaces": built.Namespaces,
			"parents": built.Parents, "interfaces": built.Interfaces})
		return exitOK
	}
	if built.Created == 0 {
		fmt.Fprintf(g.Stdout, "up %s: already applied, nothing changed\n", t.Name)
	} else {
		fmt.Fprintf(g.Stdout, "up %s: created %d objects in %s\n", t.Name, built.Created, time.Since(started).Round(time.Millisecond))
	}
	fmt.Fprintln(g.Stdout)
	printBuilt(g.Stdout, built, "")
	return exitOK
}

func verbWord(verb string) string {
	if verb == "up" {
		return "apply"
	}
	return "remove"
}
