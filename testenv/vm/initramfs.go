package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmlink/vmlink/testenv/vm/internal/wire"
)

// DefaultHostBinaries returns the binaries copied into every guest, with the shared
// libraries they need, when the host has them: the reference tools tests
// compare our code against (iproute2's ip, bridge and tc; nsenter to run
// them inside a namespace; tcpdump). More with Options.HostBinaries.
func DefaultHostBinaries() []string {
	return []string{"/usr/sbin/ip", "/usr/sbin/bridge", "/usr/sbin/tc", "/usr/bin/nsenter", "/usr/bin/tcpdump"}
}

// Guest paths of what the runner puts into the initramfs.
const (
	guestModulesDir = "/vmlink/modules"
	guestBinDir     = "/vmlink/bin"
)

// baseFormat changes whenever the layout of the base archive changes, so
// stale cached archives are not reused.
const baseFormat = "vmlink-base-3"

// Base is the per-kernel part of the initramfs: modules, host binaries and
// the skeleton file system. It is cached in the kernel's directory and
// shared by every run on that kernel.
type Base struct {
	Path    string        `json:"-"`       // the cpio archive
	Modules []wire.Module `json:"modules"` // load order
	Builtin []string      `json:"builtin"` // requested but built in
	Files   []string      `json:"files"`   // archive names, to avoid duplicates later
	Missing []string      `json:"missing"` // default host binaries not on this host
}

// BaseOptions say what goes into the base archive.
type BaseOptions struct {
	Modules      []string // module names; dependencies are added
	HostBinaries []string // absolute paths; their ldd libraries are added
	// OptionalBinaries may be missing on the host (they are reported in
	// Base.Missing); HostBinaries entries may not.
	OptionalBinaries []string
	// ModuleParams override ModuleParams per module name.
	ModuleParams map[string]string
}

// params returns the load parameters of module name.
func (o *BaseOptions) params(name string) string {
	if p, ok := o.ModuleParams[name]; ok {
		return p
	}
	return defaultModuleParams[name]
}

// BuildBase returns the cached base archive for k and opts, building it
// first if needed. Concurrent callers may both build; the rename into place
// is atomic and the content identical.
func BuildBase(ctx context.Context, k *Kernel, opts BaseOptions) (*Base, error) {
	key, err := baseKey(k, opts)
	if err != nil {
		return nil, err
	}
	cpioPath := filepath.Join(k.Root, "vmlink-base-"+key+".cpio")
	metaPath := filepath.Join(k.Root, "vmlink-base-"+key+".json")
	if b, err := os.ReadFile(metaPath); err == nil {
		var base Base
		if json.Unmarshal(b, &base) == nil {
			if _, err := os.Stat(cpioPath); err == nil {
				// Mark it used, so removeStaleBases keeps it.
				now := time.Now()
				os.Chtimes(cpioPath, now, now)
				base.Path = cpioPath
				return &base, nil
			}
		}
	}
	ix, err := LoadModuleIndex(k.ModulesDir)
	if err != nil {
		return nil, err
	}
	mods, builtin, err := ix.Resolve(ctx, opts.Modules)
	if err != nil {
		return nil, fmt.Errorf("build initramfs for %s: %w", k.Version, err)
	}
	tmp, err := os.CreateTemp(k.Root, ".base-*.cpio")
	if err != nil {
		return nil, fmt.Errorf("build initramfs for %s: %w", k.Version, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	w := NewCPIOWriter(tmp)
	base := &Base{Builtin: builtin}
	if err := writeSkeleton(w); err != nil {
		return nil, err
	}
	for _, m := range mods {
		p := guestModulesDir + "/" + m.Name + ".ko"
		if err := w.Bytes(p, 0o644, m.Data); err != nil {
			return nil, err
		}
		base.Modules = append(base.Modules, wire.Module{Name: m.Name, Path: p, Params: opts.params(m.Name)})
	}
	hc := &hostCopier{w: w, seen: map[string]bool{}}
	for _, bin := range opts.HostBinaries {
		if err := hc.addBinary(ctx, bin); err != nil {
			return nil, err
		}
	}
	for _, bin := range opts.OptionalBinaries {
		if _, err := os.Stat(bin); errors.Is(err, fs.ErrNotExist) {
			base.Missing = append(base.Missing, bin)
			continue
		}
		if err := hc.addBinary(ctx, bin); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("build initramfs: %w", err)
	}
	for n := range w.entries {
		base.Files = append(base.Files, n)
	}
	meta, err := json.Marshal(base)
	if err != nil {
		return nil, fmt.Errorf("build initramfs: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return nil, fmt.Errorf("store initramfs: %w", err)
	}
	if err := os.Rename(tmp.Name(), cpioPath); err != nil {
		return nil, fmt.Errorf("store initramfs: %w", err)
	}
	if err := writeFileAtomic(metaPath, meta); err != nil {
		return nil, fmt.Errorf("store initramfs: %w", err)
	}
	base.Path = cpioPath
	removeStaleBases(k.Root, key)
	return base, nil
}

// removeStaleBases deletes base archives of other keys (an older iproute2,
// another module list) unused for a day (BuildBase touches the one it
// returns); younger ones may belong to runs with other options.
func removeStaleBases(dir, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, "vmlink-base-*"))
	for _, p := range old {
		if strings.Contains(filepath.Base(p), keep) {
			continue
		}
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			os.Remove(p)
		}
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// baseKey identifies the content of a base archive: the format, the module
// list and the host binaries with their size and modification time (an
// upgrade of iproute2 rebuilds the archive).
func baseKey(k *Kernel, opts BaseOptions) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%q\n%v\n%v\n", baseFormat, k.Version, opts.Modules, defaultModuleParams, opts.ModuleParams) // fmt sorts map keys
	for _, list := range [][]string{opts.HostBinaries, {"--"}, opts.OptionalBinaries} {
		for _, b := range list {
			fmt.Fprintf(h, "%s", b)
			if fi, err := os.Stat(b); err == nil {
				fmt.Fprintf(h, " %d %d", fi.Size(), fi.ModTime().UnixNano())
			}
			fmt.Fprintln(h)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// writeSkeleton adds what any Linux userland expects: the mount points the
// init uses, /dev/console for the kernel to open as init's stdio before
// devtmpfs is mounted, and minimal /etc files (os/user and iproute2 read
// them). Debian's merged /usr layout comes from the host binaries' paths.
func writeSkeleton(w *CPIOWriter) error {
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "root", "etc", "var", "vmlink"} {
		perm := uint32(0o755)
		if d == "tmp" {
			perm = 0o1777
		}
		if err := w.Dir(d, perm); err != nil {
			return err
		}
	}
	if err := w.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := w.Symlink("var/run", "../run"); err != nil {
		return err
	}
	if err := w.Symlink("var/tmp", "../tmp"); err != nil {
		return err
	}
	files := map[string]string{
		// tcpdump drops privileges to its own user after opening the
		// capture.
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\ntcpdump:x:104:110::/nonexistent:/usr/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":    "root:x:0:\ntcpdump:x:110:\nnogroup:x:65534:\n",
		"etc/hosts":    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"etc/hostname": "vmlink-vm\n",
	}
	for _, n := range []string{"etc/passwd", "etc/group", "etc/hosts", "etc/hostname"} {
		if err := w.Bytes(n, 0o644, []byte(files[n])); err != nil {
			return err
		}
	}
	return nil
}

// hostCopier copies host files into an archive at the same path, recreating
// the symlinks on the way (Debian's /lib -> usr/lib, /sbin -> usr/sbin,
// libfoo.so.1 -> libfoo.so.1.2.3) so that the dynamic loader finds the
// libraries where ldd found them.
type hostCopier struct {
	w    *CPIOWriter
	seen map[string]bool
	skip map[string]bool // names already in an earlier archive
}

func (hc *hostCopier) addBinary(ctx context.Context, bin string) error {
	if !filepath.IsAbs(bin) {
		return fmt.Errorf("copy %s into the guest: path must be absolute", bin)
	}
	if err := hc.addPath(bin); err != nil {
		return err
	}
	libs, err := sharedLibraries(ctx, bin)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := hc.addPath(l); err != nil {
			return err
		}
	}
	return nil
}

// addPath adds path, resolving symlinks component by component: each
// symlink met is added as a symlink, and the walk restarts from its target,
// until a regular file is reached.
func (hc *hostCopier) addPath(p string) error {
	orig := p
	for hops := 0; hops < 40; hops++ {
		p = filepath.Clean(p)
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		resolved := false
		for i := range parts {
			prefix := "/" + strings.Join(parts[:i+1], "/")
			fi, err := os.Lstat(prefix)
			if err != nil {
				return fmt.Errorf("copy %s into the guest: %w", orig, err)
			}
			if fi.Mode()&fs.ModeSymlink == 0 {
				continue
			}
			target, err := os.Readlink(prefix)
			if err != nil {
				return fmt.Errorf("copy %s into the guest: %w", orig, err)
			}
			if err := hc.once(prefix, func(name string) error { return hc.w.Symlink(name, target) }); err != nil {
				return err
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(prefix), target)
			}
			p = filepath.Join(append([]string{target}, parts[i+1:]...)...)
			resolved = true
			break
		}
		if resolved {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("copy %s into the guest: %w", orig, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("copy %s into the guest: %s is not a regular file", orig, p)
		}
		return hc.once(p, func(name string) error {
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("copy %s into the guest: %w", orig, err)
			}
			defer f.Close()
			return hc.w.File(name, uint32(fi.Mode().Perm()), fi.Size(), f)
		})
	}
	return fmt.Errorf("copy %s into the guest: too many levels of symbolic links", orig)
}

func (hc *hostCopier) once(p string, add func(name string) error) error {
	name := strings.TrimPrefix(p, "/")
	if hc.seen[name] || hc.skip[name] {
		return nil
	}
	hc.seen[name] = true
	return add(name)
}

// sharedLibraries returns what a dynamic ELF executable loads, as ldd
// reports it (the interpreter included); nil for a static one.
func sharedLibraries(ctx context.Context, bin string) ([]string, error) {
	static, err := IsStatic(bin)
	if err != nil {
		return nil, err
	}
	if static {
		return nil, nil
	}
	out, err := exec.CommandContext(ctx, "ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("list shared libraries of %s with ldd: %w", bin, err)
	}
	return ParseLdd(out), nil
}

// ParseLdd extracts library paths from ldd output:
//
//	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)
//	/lib64/ld-linux-x86-64.so.2 (0x...)
//	linux-vdso.so.1 (0x...)            (virtual, skipped)
func ParseLdd(out []byte) []string {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if _, after, ok := strings.Cut(l, "=> "); ok {
			l = after
		}
		f := strings.Fields(l)
		if len(f) > 0 && strings.HasPrefix(f[0], "/") {
			libs = append(libs, f[0])
		}
	}
	return libs
}

// IsStatic reports whether an ELF executable needs no dynamic loader, i.e.
// it was built with CGO_ENABLED=0 (or linked statically). The guest has
// only the libraries of the copied host binaries, so a test binary should
// be static.
func IsStatic(bin string) (bool, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return false, fmt.Errorf("inspect %s: %w", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// RunArchive is the per-run part of the initramfs.
type RunArchive struct {
	Init     string         // static init binary on the host; becomes /init
	Binary   string         // the test binary on the host
	Manifest *wire.Manifest // Argv[0] is filled in by WriteRunArchive
	// Testdata is a directory copied to the same path in the guest (the
	// test's testdata/ next to its working directory); "" for none.
	Testdata string
	// SkipFiles are archive names the base already has.
	SkipFiles []string
}

// MaxTestdata bounds the testdata/ tree copied into the guest (it lives in
// guest RAM).
const MaxTestdata = 256 << 20

// WriteRunArchive writes the per-run archive to w.
func WriteRunArchive(ctx context.Context, w io.Writer, ra *RunArchive) error {
	cw := NewCPIOWriter(w)
	add := func(guest, host string) error {
		f, err := os.Open(host)
		if err != nil {
			return fmt.Errorf("add %s to the initramfs: %w", host, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("add %s to the initramfs: %w", host, err)
		}
		return cw.File(guest, 0o755, fi.Size(), f)
	}
	if err := add("init", ra.Init); err != nil {
		return err
	}
	guestBin := guestBinDir + "/" + filepath.Base(ra.Binary)
	if err := add(guestBin, ra.Binary); err != nil {
		return err
	}
	// A dynamic test binary (built without CGO_ENABLED=0) gets its
	// libraries too; most are already there for ip.
	hc := &hostCopier{w: cw, seen: map[string]bool{}, skip: map[string]bool{}}
	for _, n := range ra.SkipFiles {
		hc.skip[n] = true
	}
	libs, err := sharedLibraries(ctx, ra.Binary)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := hc.addPath(l); err != nil {
			return err
		}
	}
	if ra.Testdata != "" {
		if err := addTree(cw, ra.Testdata, wire.StageDir+ra.Testdata); err != nil {
			return err
		}
	}
	m := *ra.Manifest
	m.Argv = append([]string{guestBin}, m.Argv[1:]...)
	mb, err := json.MarshalIndent(&m, "", "\t")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := cw.Bytes(wire.ManifestPath, 0o644, mb); err != nil {
		return err
	}
	return cw.Close()
}

// addTree copies the directory tree at host into the archive under guest:
// directories, regular files and symlinks (as links); anything else is
// skipped.
func addTree(cw *CPIOWriter, host, guest string) error {
	var total int64
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copy %s into the guest: %w", host, err)
		}
		rel, err := filepath.Rel(host, p)
		if err != nil {
			return err
		}
		name := filepath.Join(guest, rel)
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("copy %s into the guest: %w", p, err)
		}
		switch {
		case d.IsDir():
			return cw.Dir(name, uint32(fi.Mode().Perm()))
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("copy %s into the guest: %w", p, err)
			}
			return cw.Symlink(name, t)
		case fi.Mode().IsRegular():
			total += fi.Size()
			if total > MaxTestdata {
				return fmt.Errorf("copy %s into the guest: more than %d MiB; the guest keeps it in RAM", host, MaxTestdata>>20)
			}
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("copy %s into the guest: %w", p, err)
			}
			defer f.Close()
			return cw.File(name, uint32(fi.Mode().Perm()), fi.Size(), f)
		}
		return nil
	})
}
