package main

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv/vm"
)

func TestParseArgsExecForm(t *testing.T) {
	// What go test -exec 'vmtest --kernel 6.12 --timeout 20m --' runs.
	argv := []string{"/tmp/go-build1/b001/rtnl.test", "-test.paniconexit0", "-test.timeout=10m0s", "-test.v=true"}
	c, err := parseArgs(append([]string{"--kernel", "6.12", "--timeout", "20m", "--"}, argv...), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.fetch || c.opts.Kernel != "6.12" || c.opts.Timeout != 20*time.Minute {
		t.Errorf("got %+v", c)
	}
	if !reflect.DeepEqual(c.argv, argv) {
		t.Errorf("argv %q, want %q: the test binary's flags must pass through untouched", c.argv, argv)
	}
	if c.opts.Modules != nil || c.opts.HostBinaries != nil {
		t.Errorf("defaults changed without flags: %+v", c.opts)
	}
}

func TestParseArgsDefaultsAndLists(t *testing.T) {
	c, err := parseArgs([]string{"-module", "vxlan,tun", "--module=nlmon", "--bin", "/usr/sbin/tc", "--env", "A=1", "--env=B=x=y", "-v", "x.test"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.Kernel != "6.1" || c.opts.CPUs != 2 || c.opts.MemoryMiB != 1024 || c.opts.Accel != "auto" || c.opts.Timeout != 0 {
		t.Errorf("defaults: %+v", c.opts)
	}
	for _, m := range append(vm.DefaultModules(), "vxlan", "tun", "nlmon") {
		if !slices.Contains(c.opts.Modules, m) {
			t.Errorf("module %s missing from %v", m, c.opts.Modules)
		}
	}
	if !reflect.DeepEqual(c.opts.HostBinaries, []string{"/usr/sbin/tc"}) || !reflect.DeepEqual([]string(c.opts.Env), []string{"A=1", "B=x=y"}) {
		t.Errorf("bins %q env %q", c.opts.HostBinaries, c.opts.Env)
	}
	if !c.verbose || !reflect.DeepEqual(c.argv, []string{"x.test"}) {
		t.Errorf("verbose %v argv %q", c.verbose, c.argv)
	}
}

func TestParseArgsFreeNetstamp(t *testing.T) {
	c, err := parseArgs([]string{"x.test"}, &bytes.Buffer{})
	if err != nil || c.opts.FreeNetstamp {
		t.Fatalf("default: FreeNetstamp %v, %v; the guest must hold timestamping on unless asked", c.opts.FreeNetstamp, err)
	}
	c, err = parseArgs([]string{"--free-netstamp", "--", "x.test", "-test.v"}, &bytes.Buffer{})
	if err != nil || !c.opts.FreeNetstamp || !reflect.DeepEqual(c.argv, []string{"x.test", "-test.v"}) {
		t.Fatalf("--free-netstamp: %+v, %v", c.opts, err)
	}
}

func TestParseArgsFetch(t *testing.T) {
	c, err := parseArgs([]string{"fetch"}, &bytes.Buffer{})
	if err != nil || !c.fetch || !reflect.DeepEqual(c.series, vm.DefaultSeries()) {
		t.Fatalf("fetch: %+v, %v", c, err)
	}
	c, err = parseArgs([]string{"fetch", "--refresh", "6.12"}, &bytes.Buffer{})
	if err != nil || !c.refresh || !reflect.DeepEqual(c.series, []string{"6.12"}) {
		t.Fatalf("fetch --refresh 6.12: %+v, %v", c, err)
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kernel", "6.1", "--"}, "no test binary"},
		{[]string{}, "no test binary"},
		{[]string{"--accel", "hvf", "x.test"}, "--accel"},
		{[]string{"--cpus", "0", "x.test"}, "--cpus"},
		{[]string{"--memory", "64", "x.test"}, "--memory"},
		{[]string{"--timeout", "-1s", "x.test"}, "--timeout"},
		{[]string{"--env", "NOEQUALS", "x.test"}, "KEY=VALUE"},
		{[]string{"--bin", "tc", "x.test"}, "absolute"},
		{[]string{"--nosuchflag", "x.test"}, "nosuchflag"},
	} {
		_, err := parseArgs(tc.args, &bytes.Buffer{})
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want a usage error mentioning %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseArgs([]string{"-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: got %v", err)
	}
}

func TestRunUsageExitCode(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--accel", "bad", "x.test"}, &out, &errb); code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr %s", code, exitUsage, errb.String())
	}
	if !strings.HasPrefix(errb.String(), "vmtest: ") {
		t.Errorf("stderr %q: want one vmtest: line", errb.String())
	}
}

func TestParseArgsCheck(t *testing.T) {
	c, err := parseArgs([]string{"check", "--kernel", "6.12", "--timeout", "2m", "-v"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.check || c.fetch || c.opts.Kernel != "6.12" || c.opts.Timeout != 2*time.Minute || !c.verbose || len(c.argv) != 0 {
		t.Errorf("got %+v", c)
	}
	if c.opts.Append != "" {
		t.Errorf("--append defaults to %q; want empty so the run picks its own default", c.opts.Append)
	}
	if _, err := parseArgs([]string{"check", "x.test"}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
		t.Errorf("check with a test binary: %v, want a usage error", err)
	}
	c, err = parseArgs([]string{"guest-check"}, &bytes.Buffer{})
	if err != nil || !c.guestCheck {
		t.Errorf("guest-check: %+v, %v", c, err)
	}
}
