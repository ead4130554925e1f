package main

import (
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
