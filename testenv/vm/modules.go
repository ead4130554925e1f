package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultModules returns the modules the guest loads for vmlink's tests: the
// link kinds the host kernel lacks or has (8021q and its GARP/MRP/STP/LLC
// stack, dummy, ipvlan, macvlan, macvtap with tap, veth, bridge) and the
// virtio console that carries the result channel. Dependencies the list does
// not name are added from each module's .modinfo "depends=" field; modules a
// kernel has built in (virtio_console on Debian's 6.12) are skipped.
func DefaultModules() []string {
	return []string{
		// Result channel first: virtio-pci and virtio-serial are modules on
		// Debian's 6.1 and built in on 6.12.
		"virtio_pci", "virtio_console",
		"llc", "stp", "garp", "mrp", "8021q",
		"dummy", "ipvlan", "macvlan", "tap", "macvtap", "veth", "bridge",
	}
}

// defaultModuleParams are the parameters the guest loads modules with. dummy
// would otherwise create a dummy0 in the initial namespace on load, which
// a test creating its own dummy0 would collide with.
var defaultModuleParams = map[string]string{"dummy": "numdummies=0"}

// ErrModuleNotFound is returned (wrapped) when a requested module is neither
// in the kernel package nor built in.
var ErrModuleNotFound = errors.New("module not found")

// ModuleIndex knows where the modules of one extracted kernel package are
// and which modules that kernel has built in.
type ModuleIndex struct {
	dir     string            // lib/modules/VERSION
	files   map[string]string // module name -> path of its .ko[.xz|.zst|.gz]
	builtin map[string]bool
}

// ModuleName normalises a module or file name the way the kernel does
// (KBUILD_MODNAME): no directory, no .ko suffix, dashes become underscores.
func ModuleName(s string) string {
	s = filepath.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// LoadModuleIndex indexes lib/modules/VERSION of an extracted kernel package:
// the .ko files under kernel/ and the names in modules.builtin.
func LoadModuleIndex(modulesDir string) (*ModuleIndex, error) {
	ix := &ModuleIndex{dir: modulesDir, files: map[string]string{}, builtin: map[string]bool{}}
	root := filepath.Join(modulesDir, "kernel")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.Contains(d.Name(), ".ko") {
			ix.files[ModuleName(d.Name())] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index kernel modules in %s: %w", root, err)
	}
	if len(ix.files) == 0 {
		return nil, fmt.Errorf("index kernel modules in %s: no .ko files", root)
	}
	f, err := os.Open(filepath.Join(modulesDir, "modules.builtin"))
	if err != nil {
		return nil, fmt.Errorf("index built-in modules: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			ix.builtin[ModuleName(l)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.builtin: %w", err)
	}
	return ix, nil
}

// Builtin reports whether the kernel has module name built in.
func (ix *ModuleIndex) Builtin(name string) bool { return ix.builtin[ModuleName(name)] }

// Path returns the (possibly compressed) file of module name.
func (ix *ModuleIndex) Path(name string) (string, bool) {
	p, ok := ix.files[ModuleName(name)]
	return p, ok
}

// ModuleFile is a module ready to go into the initramfs.
type ModuleFile struct {
	Name    string
	Depends []string
	Data    []byte // the uncompressed ELF object, signature included
}

// Resolve returns the requested modules and all their dependencies,
// uncompressed, ordered so that each comes after what it depends on, and the
// requested names that are built in. A module that is neither a file nor
// built in is an error wrapping ErrModuleNotFound.
func (ix *ModuleIndex) Resolve(ctx context.Context, names []string) ([]ModuleFile, []string, error) {
	loaded := map[string]*ModuleFile{}
	deps := map[string][]string{}
	var builtin []string
	var request []string
	var visit func(name, from string) error
	visit = func(name, from string) error {
		if _, ok := loaded[name]; ok {
			return nil
		}
		p, ok := ix.files[name]
		if !ok {
			if ix.builtin[name] {
				if from == "" {
					builtin = append(builtin, name)
				}
				return nil
			}
			if from != "" {
				return fmt.Errorf("module %s (needed by %s): %w in %s and not built in", name, from, ErrModuleNotFound, ix.dir)
			}
			return fmt.Errorf("module %s: %w in %s and not built in", name, ErrModuleNotFound, ix.dir)
		}
		data, err := readModuleFile(ctx, p)
		if err != nil {
			return err
		}
		d, err := ModinfoDepends(data)
		if err != nil {
			return fmt.Errorf("read dependencies of %s: %w", p, err)
		}
		loaded[name] = &ModuleFile{Name: name, Depends: d, Data: data}
		var real []string // dependencies that are files, not built in
		for _, dep := range d {
			if err := visit(dep, name); err != nil {
				return err
			}
			if _, ok := loaded[dep]; ok {
				real = append(real, dep)
			}
		}
		deps[name] = real
		return nil
	}
	for _, n := range names {
		n = ModuleName(n)
		if err := visit(n, ""); err != nil {
			return nil, nil, err
		}
		if _, ok := loaded[n]; ok {
			request = append(request, n)
		}
	}
	order, err := OrderModules(request, deps)
	if err != nil {
		return nil, nil, err
	}
	out := make([]ModuleFile, 0, len(order))
	for _, n := range order {
		out = append(out, *loaded[n])
	}
	return out, builtin, nil
}

// OrderModules returns every module reachable from request through deps, each
// after all of its dependencies (a depth-first topological order). Request
// order is kept where dependencies allow, so the result is deterministic. A
// dependency cycle is an error: the kernel could not load such modules
// either.
func OrderModules(request []string, deps map[string][]string) ([]string, error) {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var out []string
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		switch state[n] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("order modules: dependency cycle %s -> %s", strings.Join(path, " -> "), n)
		}
		state[n] = visiting
		ds := append([]string(nil), deps[n]...)
		sort.Strings(ds)
		for _, d := range ds {
			if err := visit(d, append(path, n)); err != nil {
				return err
			}
		}
		state[n] = done
		out = append(out, n)
		return nil
	}
	for _, n := range request {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ModinfoDepends returns the "depends=" list from a module's .modinfo
// section (what `modinfo -F depends` prints), read with debug/elf so no
// kmod is needed on the host.
func ModinfoDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("parse module ELF: %w", err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, errors.New("module has no .modinfo section")
	}
	b, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("read .modinfo: %w", err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("depends="))
		if !ok {
			continue
		}
		var out []string
		for _, d := range strings.Split(string(v), ",") {
			if d = strings.TrimSpace(d); d != "" {
				out = append(out, ModuleName(d))
			}
		}
		return out, nil
	}
	return nil, nil // old modules without the field have no dependencies
}

// readModuleFile returns the uncompressed module. Debian's 6.12 ships
// .ko.xz; the standard library has no xz reader and none is pinned, so xz
// (and zstd) are decompressed by the host tool at image-build time. The
// guest then loads plain ELF objects, whatever CONFIG_MODULE_DECOMPRESS says.
func readModuleFile(ctx context.Context, p string) ([]byte, error) {
	var tool string
	switch {
	case strings.HasSuffix(p, ".ko"):
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read module: %w", err)
		}
		return b, nil
	case strings.HasSuffix(p, ".ko.gz"):
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("read module: %w", err)
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", p, err)
		}
		b, err := io.ReadAll(z)
		if err != nil {
			return nil, fmt.Errorf("decompress %s: %w", p, err)
		}
		return b, nil
	case strings.HasSuffix(p, ".ko.xz"):
		tool = "xz"
	case strings.HasSuffix(p, ".ko.zst"):
		tool = "zstd"
	default:
		return nil, fmt.Errorf("read module %s: unknown compression", p)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, "-dc", p)
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("decompress %s with %s (install it: apt-get install %s): %w: %s",
			p, tool, map[string]string{"xz": "xz-utils", "zstd": "zstd"}[tool], err, strings.TrimSpace(stderr.String()))
	}
	return b, nil
}
