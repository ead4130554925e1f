package vm

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// aptSearch is `apt-cache search --names-only '^linux-image-6\.1'` output
// from Debian 12 (trimmed), with the names that must not be picked.
const aptSearch = `linux-image-6.1.0-9-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-54-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-56-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-55-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-56-amd64-unsigned - Linux 6.1 for 64-bit PCs
linux-image-6.1.0-56-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)
linux-image-6.1.0-56-rt-amd64 - Linux 6.1 for 64-bit PCs (signed), PREEMPT_RT
linux-image-6.12-amd64 - Linux for 64-bit PCs (meta-package)
linux-image-6.12.100+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.9+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.117+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.117+deb12-cloud-amd64 - Linux 6.12 for x86-64 cloud (signed)
linux-image-6.12.117+deb12-rt-amd64 - Linux 6.12 for 64-bit PCs (signed), PREEMPT_RT
linux-image-6.12.101+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.10.0-1-amd64 - not this series
`

func TestNewestPackage(t *testing.T) {
	lines := strings.Split(aptSearch, "\n")
	for series, want := range map[string]string{
		"6.1":  "linux-image-6.1.0-56-amd64",
		"6.12": "linux-image-6.12.117+deb12-amd64",
		"5.10": "",
	} {
		got, err := NewestPackage(series, lines)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("series %s: got %q, want %q", series, got, want)
		}
	}
	for _, bad := range []string{"6", "6.1.0", "latest", "6.1|.*"} {
		if _, err := NewestPackage(bad, lines); err == nil {
			t.Errorf("series %q accepted", bad)
		}
	}
}

func TestVersionLess(t *testing.T) {
	sorted := []string{"6.1.0-9", "6.1.0-10", "6.1.0-54", "6.12.9+deb12", "6.12.100+deb12", "6.12.117+deb12"}
	shuffled := []string{"6.12.100+deb12", "6.1.0-54", "6.12.117+deb12", "6.1.0-9", "6.12.9+deb12", "6.1.0-10"}
	slices.SortFunc(shuffled, func(a, b string) int {
		if VersionLess(a, b) {
			return -1
		}
		if VersionLess(b, a) {
			return 1
		}
		return 0
	})
	if !reflect.DeepEqual(shuffled, sorted) {
		t.Fatalf("got %v, want %v", shuffled, sorted)
	}
	if VersionLess("a1", "a1") {
		t.Fatal("a version is less than itself")
	}
}

func TestCachedKernel(t *testing.T) {
	cache := t.TempDir()
	if _, err := CachedKernel(cache, "6.1"); err == nil || !strings.Contains(err.Error(), "vm-kernels") {
		t.Fatalf("empty cache: got %v, want an error telling how to fetch", err)
	}
	// A complete extraction behind the series link is found.
	root := filepath.Join(cache, "6.1.0-99-amd64")
	for _, p := range []string{"boot/vmlinuz-6.1.0-99-amd64", "lib/modules/6.1.0-99-amd64/modules.builtin", completeMarker} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("6.1.0-99-amd64", filepath.Join(cache, "6.1")); err != nil {
		t.Fatal(err)
	}
	k, err := CachedKernel(cache, "6.1")
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.1.0-99-amd64" || k.Vmlinuz != filepath.Join(cache, "6.1", "boot/vmlinuz-6.1.0-99-amd64") {
		t.Fatalf("got %+v", k)
	}
	// An interrupted fetch (no marker) is not used.
	os.Remove(filepath.Join(root, completeMarker))
	if _, err := CachedKernel(cache, "6.1"); err == nil {
		t.Fatal("incomplete extraction used")
	}
}

// fakeBzImage lays out the setup header fields BzImagePayload reads.
func fakeBzImage(payload []byte, size uint32) []byte {
	const sects = 3
	base := (sects + 1) * 512
	img := make([]byte, base+0x100)
	img[bzSetupSects] = sects
	copy(img[bzHeaderMagic:], "HdrS")
	binary.LittleEndian.PutUint32(img[bzPayloadOffset:], 0x100)
	p := binary.LittleEndian.AppendUint32(append([]byte(nil), payload...), size)
	binary.LittleEndian.PutUint32(img[bzPayloadLength:], uint32(len(p)))
	return append(append(img, p...), bytes.Repeat([]byte{0xcc}, 64)...) // trailing signature-like bytes
}

func TestBzImagePayload(t *testing.T) {
	xz := append([]byte("\xfd7zXZ\x00"), "rest"...)
	p, tool, size, err := BzImagePayload(fakeBzImage(xz, 12345))
	if err != nil {
		t.Fatal(err)
	}
	if tool != "xz" || size != 12345 || !bytes.Equal(p, xz) {
		t.Fatalf("got %q %q %d", p, tool, size)
	}
	zst := []byte{0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3}
	if _, tool, _, err := BzImagePayload(fakeBzImage(zst, 1)); err != nil || tool != "zstd" {
		t.Fatalf("zstd payload: %q, %v", tool, err)
	}
	if _, _, _, err := BzImagePayload(fakeBzImage([]byte("LZ4!LZ4!"), 1)); err == nil {
		t.Fatal("unknown compression accepted")
	}
	if _, _, _, err := BzImagePayload([]byte("MZ not a kernel")); err == nil {
		t.Fatal("non-bzImage accepted")
	}
}

func TestTestFiles(t *testing.T) {
	argv := []string{
		"/tmp/go-build1/b001/rtnl.test",
		"-test.paniconexit0",
		"-test.timeout=10m0s",
		"-test.testlogfile=/tmp/go-build1/b001/testlog.txt",
		"-test.coverprofile=/tmp/go-build1/b001/_cover_.out",
		"-test.outputdir=/work/main/rtnl",
		"-test.cpuprofile=cpu.out",
		"-test.gocoverdir=/tmp/go-build1/b001/gocoverdir",
		"-test.run=TestX",
	}
	mkdirs, collect := TestFiles(argv)
	wantMk := []string{"/tmp/go-build1/b001/gocoverdir", "/tmp/go-build1/b001", "/tmp/go-build1/b001", "/work/main/rtnl"}
	wantCol := []string{"/tmp/go-build1/b001/gocoverdir", "/tmp/go-build1/b001/testlog.txt", "/tmp/go-build1/b001/_cover_.out", "/work/main/rtnl/cpu.out"}
	if !reflect.DeepEqual(mkdirs, wantMk) {
		t.Errorf("mkdirs: got %q, want %q", mkdirs, wantMk)
	}
	if !reflect.DeepEqual(collect, wantCol) {
		t.Errorf("collect: got %q, want %q", collect, wantCol)
	}
	if d := TestTimeout(argv); d != 10*time.Minute {
		t.Errorf("TestTimeout: got %v", d)
	}
	if d := TestTimeout([]string{"x.test"}); d != 0 {
		t.Errorf("TestTimeout without the flag: got %v", d)
	}
}

func TestStoreCollected(t *testing.T) {
	dir := t.TempDir()
	allowed := []string{filepath.Join(dir, "testlog.txt"), filepath.Join(dir, "cover")}
	if err := storeCollected(allowed, filepath.Join(dir, "testlog.txt"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := storeCollected(allowed, filepath.Join(dir, "cover", "covcounters.1"), []byte("y")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{filepath.Join(dir, "other"), filepath.Join(dir, "cover", "..", "escape"), "/etc/passwd", filepath.Join(dir, "coverx")} {
		if err := storeCollected(allowed, bad, []byte("z")); err == nil {
			t.Errorf("guest could write %s", bad)
		}
	}
}

func TestGuestEnv(t *testing.T) {
	parse := func(env []string) map[string]string {
		t.Helper()
		m := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			if _, dup := m[k]; dup {
				t.Fatalf("%s twice in %q", k, env)
			}
			m[k] = v
		}
		return m
	}
	host := []string{"HOME=/home/u", "PATH=/host", "VMLINK_DEBUG=1", "VMLINK_EXPECT_FEATURES=vlan,ip", "GOTRACEBACK=all",
		"SECRET=x", "CI=true", "VMLINK_VM_KERNEL=host", "VMLINK_KERNEL_CACHE=/c", "VMLINK_VMTEST_STATS=/s"}
	m := parse(GuestEnv(host, "6.1.0-56-amd64", []string{"CI=false", "EXTRA=1"}))
	for k, want := range map[string]string{
		"VMLINK_EXPECT_FEATURES": "vlan,ip", // the tier's list passes through
		"VMLINK_VM_KERNEL":       "6.1.0-56-amd64",
		"VMLINK_DEBUG":           "1",
		"GOTRACEBACK":            "all",
		"HOME":                   "/root",
		"PATH":                   "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"CI":                     "false", // --env wins
		"EXTRA":                  "1",
	} {
		if m[k] != want {
			t.Errorf("%s=%q, want %q", k, m[k], want)
		}
	}
	for _, k := range []string{"SECRET", "VMLINK_KERNEL_CACHE", "VMLINK_VMTEST_STATS"} {
		if _, ok := m[k]; ok {
			t.Errorf("host variable %s is forwarded", k)
		}
	}
	// Without the host saying otherwise the VM is strict: CI=true and
	// the features the guest has.
	m = parse(GuestEnv([]string{"HOME=/home/u"}, "v", nil))
	if m["CI"] != "true" || m["VMLINK_EXPECT_FEATURES"] != ExpectFeatures {
		t.Errorf("defaults: CI=%q VMLINK_EXPECT_FEATURES=%q", m["CI"], m["VMLINK_EXPECT_FEATURES"])
	}
	for _, f := range []string{"vlan", "ipvlan", "dummy", "tcpdump", "privileged"} {
		if !slices.Contains(strings.Split(ExpectFeatures, ","), f) {
			t.Errorf("ExpectFeatures %q lacks %s", ExpectFeatures, f)
		}
	}
	if slices.Contains(strings.Split(ExpectFeatures, ","), "tshark") {
		t.Error("ExpectFeatures lists tshark, which the guest does not have")
	}
	m = parse(GuestEnv([]string{"CI=false"}, "v", nil))
	if m["CI"] != "false" {
		t.Errorf("the host's CI=false did not pass through: %q", m["CI"])
	}
}

func TestQemuArgs(t *testing.T) {
	o := withDefaults(Options{Accel: "tcg"}, []string{"x.test"})
	args := QemuArgs(&o, "/k/vmlinux", "/t/initrd", "/t/result.sock")
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-accel tcg", "-m 1024", "-smp 2", "-kernel /k/vmlinux", "-initrd /t/initrd", "-no-reboot",
		"-append " + DefaultAppend, "-nic none", "-serial stdio",
		"-chardev socket,id=vmlink0,path=/t/result.sock",
		"virtserialport,bus=vs0.0,chardev=vmlink0,name=vmlink.0",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("qemu command line lacks %q: %s", want, line)
		}
	}
	if strings.Contains(line, "-netdev") || strings.Contains(line, "virtio-net") {
		t.Errorf("the guest must have no network device: %s", line)
	}
	if !strings.Contains(DefaultAppend, "panic=-1") {
		t.Error("without panic=-1 a panicking guest would hang until the timeout")
	}
}

func TestParseLdd(t *testing.T) {
	out := []byte("\tlinux-vdso.so.1 (0x00007ffd)\n" +
		"\tlibbpf.so.1 => /lib/x86_64-linux-gnu/libbpf.so.1 (0x00007f78)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f78)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f78)\n" +
		"\tlibgone.so => not found\n")
	want := []string{"/lib/x86_64-linux-gnu/libbpf.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if got := ParseLdd(out); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestVMErrorMessage(t *testing.T) {
	e := &VMError{Reason: ReasonPanic, Kernel: "6.1.0-56-amd64", Detail: "Kernel panic - not syncing: x", Booted: true,
		Console: []string{"[ 1.0] line a", "[ 1.1] Kernel panic - not syncing: x"}}
	msg := e.Error()
	for _, want := range []string{"6.1.0-56-amd64", "guest kernel panic", "last 2 console lines", "line a"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if Reason(0).String() != "Reason(0)" || ReasonTimeout.String() != "timeout" {
		t.Error("Reason.String")
	}
}
