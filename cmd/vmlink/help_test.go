package main

import (
	"strings"
	"testing"
)

// Every way of asking for help prints the command's usage on stdout,
// exits 0, and ends with the one exit-status table.
func TestHelpEverywhere(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // a line only that help has
	}{
		{[]string{"help"}, "usage: vmlink"},
		{[]string{"-h"}, "usage: vmlink"},
		{[]string{"link", "-h"}, "link add [link DEV]"},
		{[]string{"link", "--help"}, "link add [link DEV]"},
		{[]string{"link", "help"}, "link add [link DEV]"},
		{[]string{"link", "help", "add"}, "link add [link DEV]"},
		{[]string{"net", "help"}, "net create"},
		{[]string{"net", "create", "--help"}, "net create"},
		{[]string{"net", "connect", "-h"}, "net connect"},
		{[]string{"net", "rm", "--help"}, "net rm"},
		{[]string{"up", "--help"}, "usage: vmlink [-j [-p]] up"},
		{[]string{"down", "help"}, "usage: vmlink [-j [-p]] up"},
		{[]string{"lab", "--help"}, "vmlink lab --down"},
		{[]string{"verify", "help"}, "--parent IFACE"},
		{[]string{"capture", "-h"}, "-r FILE"},
		{[]string{"netns", "help"}, "netns exec NAME"},
		{[]string{"version", "--help"}, "usage: vmlink [-j [-p]] version"},
		{[]string{"doctor", "--help"}, "host-isolation"},
	} {
		code, out, errOut := runVmlink(c.args...)
		if code != exitOK || errOut != "" {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, errOut)
		}
		if !strings.Contains(out, c.want) || !strings.Contains(out, "Exit status (every vmlink command):") ||
			!strings.Contains(out, "130, 143, 129, 141") {
			t.Errorf("%v: help lacks %q or the exit-status table:\n%s", c.args, c.want, out)
		}
	}
	// help TYPE prints that kind's part only.
	code, out, _ := runVmlink("link", "help", "vlan")
	if code != exitOK || !strings.HasPrefix(out, "vlan ARGS") || strings.Contains(out, "macvlan") {
		t.Errorf("link help vlan: exit %d:\n%s", code, out)
	}
}
