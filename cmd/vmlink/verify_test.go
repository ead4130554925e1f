package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestVerifyUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"verify"}, exitUsage, "--parent IFACE is required"},
		{[]string{"verify", "--parent", "h0", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"verify", "--parent", "h0", "--reflects", "maybe"}, exitUsage, "--reflects"},
		{[]string{"verify", "--parent", "h0", "--wait", "-1s"}, exitUsage, "--wait"},
		{[]string{"verify", "--parent", "h0", "-w", "-"}, exitUsage, "-w -"},
		{[]string{"verify", "--parent", "h0", "-w", "x.pcapng", "--no-capture"}, exitUsage, "-w needs the capture"},
		{[]string{"verify", "--topology", "lab.yaml"}, exitUsage, "--topology is not available"},
		{[]string{"verify", "--bogus"}, exitUsage, "bogus"},
		{[]string{"verify", "help"}, exitOK, ""},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, errOut.String())
		}
		if !strings.Contains(errOut.String(), tc.msg) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, errOut.String(), tc.msg)
		}
	}
	var out bytes.Buffer
	run([]string{"verify", "help"}, &out, &out)
	if !strings.Contains(out.String(), "--parent IFACE") {
		t.Errorf("help: %s", out.String())
	}
}

// A parent that does not exist is the environment's fault: exit 3.
func TestVerifyMissingParent(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the links of every namespace under /run/netns: needs root; run without -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to read namespaces under /run/netns")
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"verify", "--parent", "vmlt-nosuch0"}, &out, &errOut); code != exitEnvError {
		t.Fatalf("exit %d, want %d: %s", code, exitEnvError, errOut.String())
	}
	if !strings.Contains(errOut.String(), `no interface "vmlt-nosuch0"`) {
		t.Fatalf("stderr %q", errOut.String())
	}
}
