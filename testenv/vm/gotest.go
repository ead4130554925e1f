package vm

import (
	"path/filepath"
	"strings"
	"time"
)

// TestTimeout returns the -test.timeout value in argv, 0 if none.
func TestTimeout(argv []string) time.Duration {
	for _, a := range argv {
		if v, ok := strings.CutPrefix(a, "-test.timeout="); ok {
			d, err := time.ParseDuration(v)
			if err == nil {
				return d
			}
		}
	}
	return 0
}

// fileFlags are go test binary flags naming files the binary writes.
var fileFlags = []string{"testlogfile", "coverprofile", "cpuprofile", "memprofile", "blockprofile", "mutexprofile", "trace"}

// TestFiles finds the files and directories a go test binary will write,
// from its flags: the guest must create their parents (they usually live
// in go test's build directory under /tmp) and the host wants them back
// (-coverprofile, -cpuprofile, -test.gocoverdir, and -test.testlogfile,
// which go test itself only passes without -exec).
// Relative profile paths are relative to -test.outputdir, as in package
// testing.
func TestFiles(argv []string) (mkdirs, collect []string) {
	var outputdir string
	vals := map[string]string{}
	for _, a := range argv {
		a = "-" + strings.TrimLeft(a, "-")
		k, v, ok := strings.Cut(strings.TrimPrefix(a, "-test."), "=")
		if !ok || !strings.HasPrefix(a, "-test.") || v == "" {
			continue
		}
		switch k {
		case "outputdir":
			outputdir = v
		case "gocoverdir":
			mkdirs = append(mkdirs, v)
			collect = append(collect, v)
		default:
			vals[k] = v
		}
	}
	for _, k := range fileFlags {
		v, ok := vals[k]
		if !ok {
			continue
		}
		if !filepath.IsAbs(v) && outputdir != "" && k != "testlogfile" {
			v = filepath.Join(outputdir, v)
		}
		if !filepath.IsAbs(v) {
			continue // relative to the working directory, which exists
		}
		mkdirs = append(mkdirs, filepath.Dir(v))
		collect = append(collect, v)
	}
	return mkdirs, collect
}

// GuestEnv builds the test's environment: a fixed base; CI and
// VMLINK_EXPECT_FEATURES from the host when it sets them (the tiers of
// `make test` do), else CI=true and ExpectFeatures, since the VM is a known
// environment whose skips should be failures; the other VMLINK_* and a few
// Go runtime variables forwarded from the host; then extra (later wins).
func GuestEnv(host []string, kernel string, extra []string) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"TMPDIR=/tmp",
		"USER=root",
		"TERM=dumb",
		"CI=true",
		"VMLINK_EXPECT_FEATURES=" + ExpectFeatures,
	}
	// Variables that describe the host, not the guest, stay behind.
	hostOnly := map[string]bool{"VMLINK_VM_KERNEL": true, "VMLINK_KERNEL_CACHE": true, "VMLINK_VM_INIT": true, "VMLINK_VMTEST_STATS": true}
	for _, kv := range host {
		k, _, _ := strings.Cut(kv, "=")
		if (strings.HasPrefix(k, "VMLINK_") && !hostOnly[k]) || k == "CI" || k == "GOTRACEBACK" || k == "GODEBUG" {
			env = append(env, kv)
		}
	}
	env = append(env, "VMLINK_VM_KERNEL="+kernel)
	env = append(env, extra...)
	// Deduplicate, keeping the last value at the first position.
	last := map[string]string{}
	var order []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := last[k]; !ok {
			order = append(order, k)
		}
		last[k] = kv
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, last[k])
	}
	return out
}
