package vm

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/internal/feature"
)

// fakeModule builds a minimal ELF64 relocatable object with a .modinfo
// section holding the given key=value strings, the way the kernel build
// stores them (NUL-separated).
func fakeModule(t *testing.T, modinfo ...string) []byte {
	t.Helper()
	info := []byte(strings.Join(modinfo, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	infoOff := uint64(ehsize)
	strOff := infoOff + uint64(len(info))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: ehsize, Shentsize: shentsize, Shnum: 3, Shstrndx: 2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, &hdr)
	b.Write(info)
	b.Write(shstr)
	b.Write(make([]byte, shOff-uint64(b.Len())))
	for _, s := range []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: infoOff, Size: uint64(len(info)), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1},
	} {
		binary.Write(&b, binary.LittleEndian, &s)
	}
	return b.Bytes()
}

func TestModinfoDepends(t *testing.T) {
	for _, tc := range []struct {
		info []string
		want []string
	}{
		{[]string{"license=GPL", "depends=mrp,garp", "name=8021q", "vermagic=6.1.0"}, []string{"mrp", "garp"}},
		{[]string{"depends=", "name=llc"}, nil},
		{[]string{"name=old"}, nil},
		{[]string{"depends=hid-generic, virtio"}, []string{"hid_generic", "virtio"}},
	} {
		got, err := ModinfoDepends(fakeModule(t, tc.info...))
		if err != nil {
			t.Fatalf("%v: %v", tc.info, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: got %q, want %q", tc.info, got, tc.want)
		}
	}
	if _, err := ModinfoDepends([]byte("not an ELF")); err == nil {
		t.Error("garbage parsed as a module")
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/net/8021q/8021q.ko":             "8021q",
		"kernel/drivers/hid/hid-generic.ko.xz":  "hid_generic",
		"virtio_pci.ko.zst":                     "virtio_pci",
		"kernel/drivers/char/virtio_console.ko": "virtio_console",
		"macvtap":                               "macvtap",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOrderModules(t *testing.T) {
	// The 802.1Q stack as Debian's 6.1 modules declare it.
	deps := map[string][]string{
		"8021q":  {"mrp", "garp"},
		"garp":   {"stp", "llc"},
		"stp":    {"llc"},
		"bridge": {"stp", "llc"},
		"mrp":    nil,
		"llc":    nil,
		"veth":   nil,
	}
	got, err := OrderModules([]string{"8021q", "veth", "bridge", "llc"}, deps)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"llc", "stp", "garp", "mrp", "8021q", "veth", "bridge"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Whatever the request order, each module comes after its dependencies.
	for _, req := range [][]string{{"bridge", "8021q"}, {"llc", "8021q", "stp"}, {"veth"}} {
		got, err := OrderModules(req, deps)
		if err != nil {
			t.Fatal(err)
		}
		pos := map[string]int{}
		for i, m := range got {
			if _, dup := pos[m]; dup {
				t.Fatalf("%v: %s twice in %v", req, m, got)
			}
			pos[m] = i
		}
		for m, ds := range deps {
			for _, d := range ds {
				if pm, ok := pos[m]; ok && pos[d] > pm {
					t.Errorf("%v: %s before its dependency %s in %v", req, m, d, got)
				}
				if _, ok := pos[m]; ok {
					if _, ok := pos[d]; !ok {
						t.Errorf("%v: dependency %s of %s missing from %v", req, d, m, got)
					}
				}
			}
		}
	}
}

func TestOrderModulesCycle(t *testing.T) {
	_, err := OrderModules([]string{"a"}, map[string][]string{"a": {"b"}, "b": {"c"}, "c": {"a"}})
	if err == nil || !strings.Contains(err.Error(), "cycle a -> b -> c -> a") {
		t.Fatalf("got %v, want a cycle error naming a -> b -> c -> a", err)
	}
}

// fakeKernelModules lays out lib/modules/VERSION like an extracted Debian
// package: plain, gzip and (if xz is installed) xz-compressed modules, and a
// modules.builtin.
func fakeKernelModules(t *testing.T) (dir string, haveXZ bool) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "lib", "modules", "6.1.0-99-amd64")
	write := func(rel string, b []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kernel/net/8021q/8021q.ko", fakeModule(t, "depends=mrp,garp", "name=8021q"))
	write("kernel/net/802/garp.ko", fakeModule(t, "depends=stp,llc"))
	write("kernel/net/802/mrp.ko", fakeModule(t, "depends="))
	write("kernel/net/802/stp.ko", fakeModule(t, "depends=llc"))
	write("kernel/net/llc/llc.ko", fakeModule(t, "depends="))
	write("kernel/drivers/net/broken.ko", fakeModule(t, "depends=nothere"))
	write("kernel/drivers/net/needs-builtin.ko", fakeModule(t, "depends=virtio"))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(fakeModule(t, "depends="))
	zw.Close()
	write("kernel/drivers/net/veth.ko.gz", gz.Bytes())
	if _, err := exec.LookPath("xz"); err == nil {
		cmd := exec.Command("xz", "-c")
		cmd.Stdin = bytes.NewReader(fakeModule(t, "depends="))
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		write("kernel/drivers/net/dummy.ko.xz", out)
		haveXZ = true
	}
	write("modules.builtin", []byte("kernel/drivers/virtio/virtio.ko\nkernel/drivers/char/virtio_console.ko\n"))
	return dir, haveXZ
}

func TestResolveModules(t *testing.T) {
	dir, haveXZ := fakeKernelModules(t)
	ix, err := LoadModuleIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	req := []string{"virtio_console", "8021q", "veth", "needs-builtin"}
	want := []string{"llc", "stp", "garp", "mrp", "8021q", "veth", "needs_builtin"}
	if haveXZ {
		req = append(req, "dummy")
		want = append(want, "dummy")
	} else {
		t.Log("xz not installed: the .ko.xz case is not covered")
	}
	mods, builtin, err := ix.Resolve(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mods {
		got = append(got, m.Name)
		if _, err := elf.NewFile(bytes.NewReader(m.Data)); err != nil {
			t.Errorf("%s: data is not the uncompressed ELF object: %v", m.Name, err)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order: got %v, want %v", got, want)
	}
	if !reflect.DeepEqual(builtin, []string{"virtio_console"}) {
		t.Errorf("built in: got %v, want [virtio_console]", builtin)
	}

	_, _, err = ix.Resolve(context.Background(), []string{"nosuch"})
	if !errors.Is(err, ErrModuleNotFound) {
		t.Errorf("unknown module: got %v, want ErrModuleNotFound", err)
	}
	_, _, err = ix.Resolve(context.Background(), []string{"broken"})
	if !errors.Is(err, ErrModuleNotFound) || !strings.Contains(err.Error(), "needed by broken") {
		t.Errorf("missing dependency: got %v, want ErrModuleNotFound naming broken", err)
	}
}

// TestResolveDefaultModulesOnDebianKernels resolves DefaultModules against
// the real cached kernel packages: every link module the tests need is
// either loaded or built in, and each loaded module comes after all of its
// dependencies, as the kernel's own "depends=" says. It reads the cache
// only (no qemu), so it also runs with -short when the kernels are there.
func TestResolveDefaultModulesOnDebianKernels(t *testing.T) {
	if os.Getenv("VMLINK_VM_KERNEL") != "" {
		t.Skip("inside the VM runner's guest: the kernel cache is on the host")
	}
	for _, series := range DefaultSeries() {
		t.Run(series, func(t *testing.T) {
			k, err := CachedKernel(CacheDir(), series)
			if err != nil {
				if os.Getenv("CI") == "true" && !testing.Short() {
					t.Fatalf("CI=true but kernel %s is not cached (make vm-kernels fetches it): %v", series, err)
				}
				t.Skipf("kernel %s is not cached: %v (run `make vm-kernels`)", series, err)
			}
			ix, err := LoadModuleIndex(k.ModulesDir)
			if err != nil {
				t.Fatal(err)
			}
			mods, builtin, err := ix.Resolve(context.Background(), DefaultModules())
			if err != nil {
				t.Fatal(err)
			}
			pos := map[string]int{}
			for i, m := range mods {
				pos[m.Name] = i
			}
			for _, want := range []string{"8021q", "ipvlan", "dummy", "bridge", "macvlan", "macvtap", "veth"} {
				_, loaded := pos[want]
				if !loaded && !slices.Contains(builtin, want) && !ix.Builtin(want) {
					t.Errorf("%s: neither loaded nor built in", want)
				}
			}
			for i, m := range mods {
				for _, d := range m.Depends {
					j, ok := pos[d]
					if !ok {
						if !ix.Builtin(d) {
							t.Errorf("%s depends on %s, which is neither loaded nor built in", m.Name, d)
						}
						continue
					}
					if j > i {
						t.Errorf("%s (position %d) loads before its dependency %s (position %d)", m.Name, i, d, j)
					}
				}
			}
			names := make([]string, len(mods))
			for i, m := range mods {
				names[i] = m.Name
			}
			t.Logf("%s: load order %v; built in %v", k.Version, names, builtin)
		})
	}
}

// TestDefaultModulesCoverEveryKind: the guest loads the module of every
// link kind vmlink probes for (internal/feature's map, the one map).
func TestDefaultModulesCoverEveryKind(t *testing.T) {
	for _, kind := range []string{"vlan", "macvlan", "macvtap", "ipvlan", "veth", "bridge", "dummy"} {
		mod := feature.Module(kind)
		if mod == "" || !slices.Contains(DefaultModules(), mod) {
			t.Errorf("kind %s: module %q is not in DefaultModules()", kind, mod)
		}
	}
}
