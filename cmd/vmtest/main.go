// Command vmtest runs a Go test binary inside a qemu VM booted on a Debian
// kernel, for kernel features the host lacks (8021q, ipvlan, dummy). It is
// meant as a go test -exec wrapper:
//
//	CGO_ENABLED=0 go test -exec 'vmtest --kernel 6.1 --' -tags vm ./...
//
// The test binary must be static (CGO_ENABLED=0): the guest has no libc
// beyond what the copied iproute2 binaries need. vmtest exits with the
// test's exit status, or 125 when the VM produced no result. All logic
// lives in package github.com/vmlink/vmlink/testenv/vm.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vmlink/vmlink/testenv/vm"
)

const (
	exitUsage  = 2
	exitNoTest = 125 // the VM produced no result: never a pass
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	start := time.Now()
	c, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "vmtest: %v\n", err)
		return exitUsage
	}
	// go test sends SIGQUIT when its own timeout fires; qemu is killed on
	// any of these and the console tail is still printed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	defer stop()
	logf := func(format string, args ...any) {}
	if c.verbose {
		logf = func(format string, args ...any) { fmt.Fprintf(stderr, "vmtest: "+format+"\n", args...) }
	}
	if c.fetch {
		return fetch(ctx, c, stderr, logf)
	}
	if c.guestCheck {
		return guestCheck(ctx, stdout, stderr)
	}
	c.opts.Stdout, c.opts.Stderr, c.opts.Log = stdout, stderr, logf
	if c.verbose {
		c.opts.Console = prefixWriter{stderr, "vmtest: console: "}
	}
	if c.consoleLog != "" {
		f, err := os.Create(c.consoleLog)
		if err != nil {
			fmt.Fprintf(stderr, "vmtest: --console-log: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		if c.opts.Console != nil {
			c.opts.Console = io.MultiWriter(c.opts.Console, f)
		} else {
			c.opts.Console = f
		}
	}
	if c.check {
		return check(ctx, c, stderr)
	}
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "vmtest: %v\n", err)
		return exitNoTest
	}
	res, err := vm.Run(ctx, c.opts, c.argv, dir)
	total := time.Since(start)
	name := filepath.Base(c.argv[0])
	if err != nil {
		fmt.Fprintf(stderr, "vmtest: FAIL %s: %v\n", name, err)
		fmt.Fprintf(stderr, "vmtest: %s: no result (VM failure), total %.2fs\n", name, total.Seconds())
		writeStats(c, fmt.Sprintf("binary=%s dir=%s kernel=%s exit=%d vmfail=1 total=%.2f", name, dir, kernelOf(err, c.opts.Kernel), exitNoTest, total.Seconds()))
		return exitNoTest
	}
	fmt.Fprintf(stderr, "vmtest: %s on %s: exit %d, boot-to-test %.2fs, test %.2fs, total %.2fs\n",
		name, res.Kernel, res.ExitCode, res.BootToTest.Seconds(), res.Test.Seconds(), total.Seconds())
	writeStats(c, fmt.Sprintf("binary=%s dir=%s kernel=%s exit=%d vmfail=0 boot=%.2f test=%.2f prepare=%.2f total=%.2f",
		name, dir, res.Kernel, res.ExitCode, res.BootToTest.Seconds(), res.Test.Seconds(), res.Prepare.Seconds(), total.Seconds()))
	return res.ExitCode
}

func kernelOf(err error, fallback string) string {
	var ve *vm.VMError
	if errors.As(err, &ve) && ve.Kernel != "" {
		return ve.Kernel
	}
	return fallback
}

// writeStats appends one line per run for the make target's summary.
func writeStats(c *config, line string) {
	path := c.stats
	if path == "" {
		path = os.Getenv("VMLINK_VMTEST_STATS")
	}
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line) // one short write: O_APPEND keeps parallel runners' lines whole
}

func fetch(ctx context.Context, c *config, stderr io.Writer, logf func(string, ...any)) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	cache := vm.CacheDir()
	if err := vm.EnsureHostTools(ctx, cache, logf); err != nil {
		fmt.Fprintf(stderr, "vmtest fetch: %v\n", err)
		return 1
	}
	for _, s := range c.series {
		k, err := vm.EnsureKernel(ctx, cache, s, vm.FetchOptions{Refresh: c.refresh, Log: logf})
		if err != nil {
			fmt.Fprintf(stderr, "vmtest fetch: %v\n", err)
			return 1
		}
		// Extract the PVH vmlinux now rather than in the first (possibly
		// parallel) runs.
		_, how := k.BootImage(ctx)
		fmt.Fprintf(stderr, "vmtest: kernel %s: %s (%s), boots from %s\n", s, k.Version, k.Root, how)
	}
	return 0
}

// prefixWriter prefixes each Write (one console line) for --v output.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := fmt.Fprintf(p.w, "%s%s", p.prefix, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// check boots the kernel once with vmtest itself as the test (run as
// "vmtest guest-check" in the guest). The first line of a boot failure is
// what CI shows: "VM boot failed on kernel 6.1: ...", then the kernel's
// last console lines.
func check(ctx context.Context, c *config, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "vmtest check: %v\n", err)
		return exitNoTest
	}
	series := c.opts.Kernel
	res, err := vm.BootCheck(ctx, c.opts, self)
	var ve *vm.VMError
	switch {
	case errors.As(err, &ve):
		fmt.Fprintf(stderr, "VM boot failed on kernel %s: %v\n", series, err)
		return exitNoTest
	case err != nil:
		fmt.Fprintf(stderr, "VM check failed on kernel %s: %v\n", series, err)
		return 1
	}
	if c.verbose {
		fmt.Fprint(stderr, res.Output)
	}
	fmt.Fprintf(stderr, "vmtest: kernel %s (%s) boots: boot-to-test %.2fs, guest has %s\n",
		series, res.Kernel, res.BootToTest.Seconds(), guestHas(res.Output))
	return 0
}

// guestHas lists the features the guest check passed, from its lines
// "guest check: NAME: ok".
func guestHas(out string) string {
	var ok []string
	for _, l := range strings.Split(out, "\n") {
		rest, found := strings.CutPrefix(l, "guest check: ")
		if !found {
			continue
		}
		if name, status, _ := strings.Cut(rest, ": "); strings.HasPrefix(status, "ok") {
			ok = append(ok, name)
		}
	}
	if len(ok) == 0 {
		return "no checked features"
	}
	return strings.Join(ok, ",")
}

// guestCheck is the guest half of check; it only makes sense as the test
// binary of a VM run.
func guestCheck(ctx context.Context, stdout, stderr io.Writer) int {
	if os.Getenv("VMLINK_VM_KERNEL") == "" {
		fmt.Fprintln(stderr, "vmtest guest-check: runs inside the VM only (use vmtest check)")
		return exitUsage
	}
	var features []string
	if f := os.Getenv("VMLINK_EXPECT_FEATURES"); f != "" {
		features = strings.Split(f, ",")
	}
	if err := vm.GuestCheck(ctx, stdout, features); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
