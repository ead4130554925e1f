package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultCacheDir is where extracted kernel packages live unless
// VMLINK_KERNEL_CACHE says otherwise: outside the source tree, shared by
// every checkout on the machine.
const DefaultCacheDir = "/var/cache/vmlink/kernels"

// DefaultSeries returns the kernel series the VM tier runs on: Debian 12's
// stable kernel and its backported successor.
func DefaultSeries() []string { return []string{"6.1", "6.12"} }

// CacheDir returns $VMLINK_KERNEL_CACHE or DefaultCacheDir.
func CacheDir() string {
	if d := os.Getenv("VMLINK_KERNEL_CACHE"); d != "" {
		return d
	}
	return DefaultCacheDir
}

// Kernel is one extracted Debian kernel package in the cache.
type Kernel struct {
	Version    string // uname -r, e.g. "6.1.0-56-amd64"
	Root       string // where the package was extracted with dpkg -x
	Vmlinuz    string // Root/boot/vmlinuz-VERSION
	ModulesDir string // Root/lib/modules/VERSION
}

// completeMarker is written last when a package was extracted entirely, so
// a fetch interrupted half-way is never used.
const completeMarker = ".vmlink-complete"

// OpenKernel opens an extracted package directory (the one dpkg -x wrote
// into: it contains boot/ and lib/modules/).
func OpenKernel(root string) (*Kernel, error) {
	vms, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if err != nil || len(vms) != 1 {
		return nil, fmt.Errorf("open kernel %s: want exactly one boot/vmlinuz-*, found %d", root, len(vms))
	}
	v := strings.TrimPrefix(filepath.Base(vms[0]), "vmlinuz-")
	k := &Kernel{Version: v, Root: root, Vmlinuz: vms[0], ModulesDir: filepath.Join(root, "lib", "modules", v)}
	if _, err := os.Stat(filepath.Join(k.ModulesDir, "modules.builtin")); err != nil {
		return nil, fmt.Errorf("open kernel %s: %w", root, err)
	}
	return k, nil
}

// seriesRe matches a series such as "6.1" or "6.12".
var seriesRe = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

// PackageRegexp returns the pattern of Debian's versioned amd64 image
// packages of a series: linux-image-6.1.0-56-amd64 and
// linux-image-6.12.117+deb12-amd64, but not the meta package
// linux-image-6.12-amd64 nor -cloud, -rt or -unsigned flavours.
func PackageRegexp(series string) (*regexp.Regexp, error) {
	if !seriesRe.MatchString(series) {
		return nil, fmt.Errorf("kernel series %q: want MAJOR.MINOR such as 6.1 or 6.12", series)
	}
	return regexp.Compile(`^linux-image-` + regexp.QuoteMeta(series) + `\.[0-9]+(-[0-9]+|\+deb[0-9]+)-amd64$`)
}

// NewestPackage picks the newest package of series among names (lines of
// `apt-cache search --names-only`, description after " - " allowed), in
// version order (`sort -V`), or "" when none matches.
func NewestPackage(series string, names []string) (string, error) {
	re, err := PackageRegexp(series)
	if err != nil {
		return "", err
	}
	var match []string
	for _, n := range names {
		n, _, _ = strings.Cut(strings.TrimSpace(n), " ")
		if re.MatchString(n) {
			match = append(match, n)
		}
	}
	sort.Slice(match, func(i, j int) bool { return VersionLess(match[i], match[j]) })
	if len(match) == 0 {
		return "", nil
	}
	return match[len(match)-1], nil
}

// VersionLess compares like `sort -V`: runs of digits numerically, the rest
// byte-wise.
func VersionLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(strings.TrimLeft(a[:da], "0")+"0", 10, 64)
			nb, _ := strconv.ParseUint(strings.TrimLeft(b[:db], "0")+"0", 10, 64)
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// FetchOptions tune EnsureKernel.
type FetchOptions struct {
	// Refresh re-resolves the newest package even when the series already
	// has one in the cache.
	Refresh bool
	// Log receives one line per slow step (download, extract); may be nil.
	Log func(format string, args ...any)
}

// EnsureKernel returns the cached kernel for spec, fetching it first when
// needed. spec is a series ("6.1", "6.12": the newest versioned package
// apt knows), an exact version already in the cache ("6.1.0-56-amd64"), or a
// path to a directory dpkg -x extracted a package into.
//
// Fetching runs `apt-cache search`, `apt-get download` (after `apt-get
// update` only when the first attempt fails) and `dpkg -x`, under a lock in
// the cache directory so parallel runners fetch once.
func EnsureKernel(ctx context.Context, cache, spec string, opts FetchOptions) (*Kernel, error) {
	if strings.ContainsRune(spec, '/') {
		return OpenKernel(spec)
	}
	if !seriesRe.MatchString(spec) {
		k, err := OpenKernel(filepath.Join(cache, spec))
		if err != nil {
			return nil, fmt.Errorf("kernel %q is neither a series (6.1), a cached version nor a directory: %w", spec, err)
		}
		return k, nil
	}
	if !opts.Refresh {
		if k, err := openSeries(cache, spec); err == nil {
			return k, nil
		}
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("create kernel cache: %w", err)
	}
	unlock, err := lockDir(ctx, cache)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !opts.Refresh { // another runner may have fetched it while we waited
		if k, err := openSeries(cache, spec); err == nil {
			return k, nil
		}
	}
	return fetchSeries(ctx, cache, spec, opts)
}

// CachedKernel is EnsureKernel without fetching: it fails when spec is not
// in the cache yet.
func CachedKernel(cache, spec string) (*Kernel, error) {
	if strings.ContainsRune(spec, '/') {
		return OpenKernel(spec)
	}
	if seriesRe.MatchString(spec) {
		k, err := openSeries(cache, spec)
		if err != nil {
			return nil, fmt.Errorf("kernel %s is not in the cache %s (run: make vm-kernels, or go run ./cmd/vmtest fetch %s): %w", spec, cache, spec, err)
		}
		return k, nil
	}
	return OpenKernel(filepath.Join(cache, spec))
}

// openSeries follows the CACHE/SERIES symlink a previous fetch left.
func openSeries(cache, series string) (*Kernel, error) {
	dir := filepath.Join(cache, series)
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err != nil {
		return nil, err
	}
	return OpenKernel(dir)
}

func logf(opts FetchOptions, format string, args ...any) {
	if opts.Log != nil {
		opts.Log(format, args...)
	}
}

func fetchSeries(ctx context.Context, cache, series string, opts FetchOptions) (*Kernel, error) {
	updated := false
	pkg, err := resolvePackage(ctx, series)
	if err == nil && pkg == "" {
		// Package lists may be missing on a fresh machine.
		logf(opts, "no linux-image-%s package known to apt: running apt-get update", series)
		if err := aptUpdate(ctx); err != nil {
			return nil, err
		}
		updated = true
		pkg, err = resolvePackage(ctx, series)
	}
	if err != nil {
		return nil, err
	}
	if pkg == "" {
		return nil, fmt.Errorf("fetch kernel %s: apt knows no package matching linux-image-%s.*-amd64 (is this Debian 12 with bookworm-backports or security?)", series, series)
	}
	version := strings.TrimPrefix(pkg, "linux-image-")
	dest := filepath.Join(cache, version)
	if _, err := os.Stat(filepath.Join(dest, completeMarker)); err != nil {
		tmp, err := os.MkdirTemp(cache, ".fetch-")
		if err != nil {
			return nil, fmt.Errorf("fetch kernel %s: %w", pkg, err)
		}
		defer os.RemoveAll(tmp)
		start := time.Now()
		logf(opts, "downloading %s", pkg)
		if err := aptDownload(ctx, tmp, pkg); err != nil {
			if updated {
				return nil, err
			}
			logf(opts, "%v; running apt-get update and retrying", err)
			if err := aptUpdate(ctx); err != nil {
				return nil, err
			}
			if err := aptDownload(ctx, tmp, pkg); err != nil {
				return nil, err
			}
		}
		debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
		if len(debs) != 1 {
			return nil, fmt.Errorf("fetch kernel %s: apt-get download left %d .deb files", pkg, len(debs))
		}
		root := filepath.Join(tmp, "root")
		if err := run(ctx, "", "dpkg", "-x", debs[0], root); err != nil {
			return nil, fmt.Errorf("extract %s: %w", filepath.Base(debs[0]), err)
		}
		if _, err := OpenKernel(root); err != nil {
			return nil, fmt.Errorf("extract %s: %w", filepath.Base(debs[0]), err)
		}
		if err := os.WriteFile(filepath.Join(root, completeMarker), []byte(pkg+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("extract %s: %w", pkg, err)
		}
		os.RemoveAll(dest) // an incomplete earlier attempt
		if err := os.Rename(root, dest); err != nil {
			return nil, fmt.Errorf("store kernel %s: %w", pkg, err)
		}
		logf(opts, "fetched %s into %s in %.1fs", pkg, dest, time.Since(start).Seconds())
	}
	// Point the series at the version atomically: readers see the old or
	// the new link, never none.
	link := filepath.Join(cache, series)
	tmpLink := link + ".new"
	os.Remove(tmpLink)
	if err := os.Symlink(version, tmpLink); err != nil {
		return nil, fmt.Errorf("link kernel series %s: %w", series, err)
	}
	if err := os.Rename(tmpLink, link); err != nil {
		return nil, fmt.Errorf("link kernel series %s: %w", series, err)
	}
	return OpenKernel(dest)
}

func resolvePackage(ctx context.Context, series string) (string, error) {
	if _, err := PackageRegexp(series); err != nil {
		return "", err
	}
	// A broad pattern for apt (its regex dialect is POSIX), the exact one in Go.
	out, err := exec.CommandContext(ctx, "apt-cache", "search", "--names-only", `^linux-image-`+regexp.QuoteMeta(series)+`\.`).Output()
	if err != nil {
		return "", fmt.Errorf("resolve kernel %s: apt-cache search: %w", series, err)
	}
	return NewestPackage(series, strings.Split(string(out), "\n"))
}

func aptUpdate(ctx context.Context) error {
	if err := run(ctx, "", "apt-get", "update", "-q"); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	return nil
}

func aptDownload(ctx context.Context, dir, pkg string) error {
	if err := run(ctx, dir, "apt-get", "download", "-q", pkg); err != nil {
		return fmt.Errorf("apt-get download %s: %w", pkg, err)
	}
	return nil
}

// EnsureHostTools installs what the runner execs when it is missing:
// qemu-system-x86_64 (package qemu-system-x86, without recommends: no GUI),
// xz (xz-utils: 6.12's .ko.xz, 6.1's compressed vmlinux) and zstd (6.12's
// compressed vmlinux).
func EnsureHostTools(ctx context.Context, cache string, logf func(string, ...any)) error {
	need := map[string]string{"qemu-system-x86_64": "qemu-system-x86", "xz": "xz-utils", "zstd": "zstd"}
	var pkgs []string
	for tool, pkg := range need {
		if _, err := exec.LookPath(tool); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	sort.Strings(pkgs)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return fmt.Errorf("create kernel cache: %w", err)
	}
	unlock, err := lockDir(ctx, cache)
	if err != nil {
		return err
	}
	defer unlock()
	// Another runner may have installed them while we waited.
	pkgs = pkgs[:0]
	for tool, pkg := range need {
		if _, err := exec.LookPath(tool); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	sort.Strings(pkgs)
	if logf != nil {
		logf("installing %s", strings.Join(pkgs, " "))
	}
	args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if err := run(ctx, "", "apt-get", args...); err != nil {
		if err := aptUpdate(ctx); err != nil {
			return err
		}
		if err := run(ctx, "", "apt-get", args...); err != nil {
			return fmt.Errorf("apt-get install %s: %w", strings.Join(pkgs, " "), err)
		}
	}
	return nil
}

// run executes a command, returning its stderr's last lines in the error.
func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(out.String(), 5))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// lockDir takes an exclusive flock on DIR/.lock, polling so ctx bounds the
// wait.
func lockDir(ctx context.Context, dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock kernel cache: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock kernel cache: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock kernel cache %s: %w", dir, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
