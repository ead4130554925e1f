package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// version names the Go it was built with, the running kernel, and a
// yes/no/unknown for each link kind the feature probe knows.
func TestVersion(t *testing.T) {
	code, out, errOut := runVmlink("-j", "version")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var v versionInfo
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version -j is not JSON: %v: %s", err, out)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if v.Go != runtime.Version() || v.Kernel != unix.ByteSliceToString(u.Release[:]) || v.Version == "" {
		t.Errorf("version -j: %+v", v)
	}
	for _, f := range versionFeatures {
		if s := v.Features[f]; s != "yes" && s != "no" && s != "unknown" {
			t.Errorf("feature %s: %q", f, s)
		}
	}
	code, out, _ = runVmlink("version")
	if code != exitOK || !strings.HasPrefix(out, "vmlink ") || !strings.Contains(out, "features: 8021q ") {
		t.Errorf("version: exit %d:\n%s", code, out)
	}
}
