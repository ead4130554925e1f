package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A batch error names the file's line (not the position inside a run of
// adds), and a mode change to or from passthru, which the kernel refuses
// with a bare EINVAL, is refused first naming the field.
func TestLinkCLIBatchLineAndPassthruChange(t *testing.T) {
	requireRoot(t)
	s := cliSide(t)
	f := filepath.Join(t.TempDir(), "b.batch")
	os.WriteFile(f, []byte("# two adds, the second on a parent that is not there\nlink set mv1 up\nlink add b1 link p0 type macvlan\nlink add b2 link nosuch type macvlan\n"), 0o644)
	code, _, errs := vmlinkRun("-n", s.ns, "link", "batch", f)
	if code != exitEnvError {
		t.Errorf("batch: exit %d, want %d", code, exitEnvError)
	}
	checkOneLine(t, errs, f+":4: ", `link "nosuch"`)
	if strings.Contains(errs, "line 2") || strings.Contains(errs, "lines ") {
		t.Errorf("batch error mixes numberings: %q", errs)
	}
	if _, err := ipCmd(s.ns, "link", "show", "b1"); err == nil {
		t.Error("b1 was created although its batch failed")
	}
	code, _, errs = vmlinkRun("-n", s.ns, "link", "set", "mv1", "type", "macvlan", "mode", "passthru")
	if code != exitUsage {
		t.Errorf("set mode passthru: exit %d, want %d", code, exitUsage)
	}
	checkOneLine(t, errs, `mode "passthru"`, "to or from passthru")
}

// A container's link whose parent lives in the host namespace: vmlink
// prints what ip prints — @ifN and link-netns NAME in text, link_index and
// link_netnsid in JSON — compared with ip's own output.
func TestLinkShowParentInOtherNetNS(t *testing.T) {
	requireRoot(t)
	host, ctr := newNetNS(t), newNetNS(t)
	ipRun(t, host, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
	if code, _, errs := vmlinkRun("-n", host, "link", "add", "mv1", "link", "p0", "netns", ctr, "type", "macvlan", "mode", "bridge"); code != 0 {
		t.Fatalf("add: %s", errs)
	}
	var ipJ, ourJ []map[string]any
	if err := json.Unmarshal([]byte(ipRun(t, ctr, "-d", "-j", "link", "show", "mv1")), &ipJ); err != nil {
		t.Fatal(err)
	}
	code, out, errs := vmlinkRun("-n", ctr, "-j", "link", "show", "mv1")
	if code != 0 {
		t.Fatalf("show -j: %s", errs)
	}
	if err := json.Unmarshal([]byte(out), &ourJ); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"link_index", "link_netnsid"} {
		if ipJ[0][k] == nil || fmt.Sprint(ipJ[0][k]) != fmt.Sprint(ourJ[0][k]) {
			t.Errorf("%s: ip %v, vmlink %v", k, ipJ[0][k], ourJ[0][k])
		}
	}
	if _, ok := ourJ[0]["link"]; ok {
		t.Errorf("vmlink names a parent it cannot see here: %v", ourJ[0]["link"])
	}
	ipText := ipRun(t, ctr, "-d", "link", "show", "mv1")
	code, ourText, _ := vmlinkRun("-n", ctr, "link", "show", "mv1")
	if code != 0 {
		t.Fatal("show failed")
	}
	head := func(s string) string { return strings.Fields(s)[1] } // "mv1@ifN:"
	if head(ipText) != head(ourText) || !strings.HasPrefix(head(ourText), "mv1@if") {
		t.Errorf("name: ip %q, vmlink %q", head(ipText), head(ourText))
	}
	want := "link-netns " + host
	if !strings.Contains(ipText, want) || !strings.Contains(ourText, want) {
		t.Errorf("ip or vmlink lacks %q:\nip:\n%s\nvmlink:\n%s", want, ipText, ourText)
	}
}
