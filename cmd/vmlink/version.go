package main

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/dataplane"
)

func init() {
	register(&command{
		Name:    "version",
		Summary: "print the version, the commit, the Go version and the kernel features vmlink detects",
		Run:     runVersion,
	})
}

const versionHelp = `usage: vmlink [-j [-p]] version

Prints vmlink's module version and the commit it was built from, the Go
version, the running kernel, and whether the kernel has each link kind
vmlink creates (probed: yes, no, or unknown without CAP_NET_ADMIN).

` + exitTable

// versionFeatures are the kernel features version reports, by the names
// dataplane.Probe knows.
var versionFeatures = []string{"8021q", "macvlan", "macvtap", "ipvlan"}

type versionInfo struct {
	Version  string            `json:"version"`
	Commit   string            `json:"commit,omitempty"`
	Time     string            `json:"commit_time,omitempty"`
	Modified bool              `json:"modified,omitempty"`
	Go       string            `json:"go"`
	Platform string            `json:"platform"`
	Kernel   string            `json:"kernel"`
	Features map[string]string `json:"features"`
}

func runVersion(g *globals, args []string) int {
	fs := newFlags("version")
	jsonFlags(fs, &g.JSON)
	if err := parseFlags(fs, "version", args, errHelp); errors.Is(err, errHelp) {
		fmt.Fprint(g.Stdout, versionHelp)
		return exitOK
	} else if err != nil {
		return fail(g, err)
	}
	if fs.NArg() > 0 {
		return fail(g, usagef("version: unexpected argument %q: takes only -j", fs.Arg(0)))
	}
	v := versionInfo{Version: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Features: map[string]string{}}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		v.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	for _, f := range versionFeatures {
		err := dataplane.Probe(g.Ctx, f)
		var fe *dataplane.FeatureError
		switch {
		case err == nil:
			v.Features[f] = "yes"
		case errors.As(err, &fe):
			v.Features[f] = "no"
		default:
			v.Features[f] = "unknown"
		}
	}
	if g.JSON {
		writeJSON(g, v)
		return exitOK
	}
	commit := v.Commit
	if commit == "" {
		commit = "unknown"
	} else if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(g.Stdout, "vmlink %s\ncommit: %s\ngo: %s %s\nkernel: %s\n", v.Version, commit, v.Go, v.Platform, v.Kernel)
	var feats []string
	for _, f := range versionFeatures {
		feats = append(feats, f+" "+v.Features[f])
	}
	fmt.Fprintf(g.Stdout, "features: %s\n", strings.Join(feats, ", "))
	return exitOK
}
