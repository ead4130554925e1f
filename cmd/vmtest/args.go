package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/vmlink/vmlink/testenv/vm"
)

const usageText = `usage:
  vmtest [flags] [--] TESTBINARY [ARGS...]   run a (static) test binary in a VM
  vmtest fetch [--refresh] [SERIES...]       fetch kernels (default: 6.1 6.12) and install qemu
  vmtest check [flags]                       boot the kernel once and check the guest has every
                                             feature in $VMLINK_EXPECT_FEATURES (default: all it can)

As a go test -exec wrapper (build tests with CGO_ENABLED=0; go test runs it
in each package directory, so give an absolute path or an import path):
  CGO_ENABLED=0 go test -exec '/path/to/vmtest --kernel 6.1 --' -tags vm ./...
  CGO_ENABLED=0 go test -exec 'go run github.com/vmlink/vmlink/cmd/vmtest --kernel 6.1 --' ./...

Exit status: the test binary's, 125 when the VM produced no result (boot
failure, kernel panic, missing module, timeout), 2 for usage errors; for
check, 0 when the guest booted and has every expected feature, 1 when it
lacks one, 125 when the VM did not boot.

flags:
`

// listFlag is a repeatable flag that also splits on commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// envFlag is a repeatable KEY=VALUE flag.
type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, " ") }
func (e *envFlag) Set(s string) error {
	if k, _, ok := strings.Cut(s, "="); !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	*e = append(*e, s)
	return nil
}

// config is a parsed command line.
type config struct {
	fetch      bool
	check      bool // boot check (vmtest check)
	guestCheck bool // the guest half of the boot check, inside the VM
	refresh    bool
	series     []string // fetch
	opts       vm.Options
	argv       []string // run: test binary and its arguments
	verbose    bool
	consoleLog string
	stats      string
}

// errUsage marks errors that should print the usage text.
var errUsage = errors.New("usage")

func parseArgs(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	if len(args) > 0 && args[0] == "fetch" {
		fs := flag.NewFlagSet("vmtest fetch", flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.BoolVar(&c.refresh, "refresh", false, "re-resolve the newest package of each series even if one is cached")
		fs.BoolVar(&c.verbose, "v", false, "print progress")
		if err := fs.Parse(args[1:]); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		c.fetch = true
		c.series = fs.Args()
		if len(c.series) == 0 {
			c.series = vm.DefaultSeries()
		}
		return c, nil
	}
	if len(args) > 0 && args[0] == "guest-check" {
		c.guestCheck = true
		c.argv = args[1:]
		return c, nil
	}
	name := "vmtest"
	if len(args) > 0 && args[0] == "check" {
		c.check = true
		name = "vmtest check"
		args = args[1:]
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	var modules, bins listFlag
	var env envFlag
	fs.StringVar(&c.opts.Kernel, "kernel", "6.1", "kernel: a series (6.1, 6.12), a cached version or an extracted package directory")
	fs.DurationVar(&c.opts.Timeout, "timeout", 0, "bound on the whole VM run (default 10m, or the test's -test.timeout plus 30s if longer)")
	fs.IntVar(&c.opts.MemoryMiB, "memory", 1024, "guest memory in MiB")
	fs.IntVar(&c.opts.CPUs, "cpus", 2, "guest CPUs")
	fs.StringVar(&c.opts.Accel, "accel", "auto", "qemu accelerator: tcg, kvm or auto (KVM when /dev/kvm opens, TCG when a KVM boot fails)")
	fs.StringVar(&c.opts.Init, "init", "", "static guest init binary (default: $VMLINK_VM_INIT, vmlink-init next to vmtest, or built with go)")
	fs.StringVar(&c.opts.Append, "append", "", "kernel command line (default \""+vm.DefaultAppend+"\"; for check \""+vm.CheckAppend+"\")")
	fs.StringVar(&c.opts.CPUModel, "cpu", "", "qemu CPU model (default: qemu's own under tcg, host under kvm)")
	fs.Var(&modules, "module", "extra kernel module to load (repeatable, comma-separated)")
	fs.Var(&bins, "bin", "extra host binary to copy into the guest with its libraries (repeatable)")
	fs.Var(&env, "env", "KEY=VALUE for the test (repeatable)")
	fs.BoolVar(&c.opts.FreeNetstamp, "free-netstamp", false, "let the guest switch packet timestamping on and off (crashes 6.12 under TCG with --cpus 2; see the runner's README)")
	fs.BoolVar(&c.verbose, "v", false, "print the guest console and init log to stderr as they come")
	fs.StringVar(&c.consoleLog, "console-log", "", "write the whole guest console to this file")
	fs.StringVar(&c.stats, "stats", "", "append one line of timings to this file (default $VMLINK_VMTEST_STATS)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	c.argv = fs.Args()
	if c.check && len(c.argv) > 0 {
		return nil, fmt.Errorf("%w: vmtest check takes no test binary, got %q", errUsage, c.argv)
	}
	if !c.check && len(c.argv) == 0 {
		fs.Usage()
		return nil, fmt.Errorf("%w: no test binary given", errUsage)
	}
	if c.opts.Timeout < 0 || c.opts.MemoryMiB < 128 || c.opts.CPUs < 1 {
		return nil, fmt.Errorf("%w: --timeout must be positive, --memory at least 128, --cpus at least 1", errUsage)
	}
	if a, _, _ := strings.Cut(c.opts.Accel, ","); a != "tcg" && a != "kvm" && a != "auto" {
		return nil, fmt.Errorf("%w: --accel %q: want tcg, kvm or auto (qemu options after a comma)", errUsage, c.opts.Accel)
	}
	if len(modules) > 0 {
		c.opts.Modules = append(append([]string(nil), vm.DefaultModules()...), modules...)
	}
	if len(bins) > 0 {
		for _, b := range bins {
			if !strings.HasPrefix(b, "/") {
				return nil, fmt.Errorf("%w: --bin %s: want an absolute path", errUsage, b)
			}
		}
		c.opts.HostBinaries = bins
	}
	c.opts.Env = env
	return c, nil
}
