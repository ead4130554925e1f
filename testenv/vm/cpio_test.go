package vm

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// entry is what a test expects to read back.
type entry struct {
	mode   uint32
	data   string // content, or link target
	rdev   [2]uint32
	isLink bool
}

func writeSample(t *testing.T, w io.Writer, withDev bool) {
	t.Helper()
	cw := NewCPIOWriter(w)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(cw.Dir("tmp", 0o1777))
	must(cw.Bytes("/usr/sbin/ip", 0o755, []byte("ELF-ish")))     // parents implicit, leading slash stripped
	must(cw.Bytes("usr/lib/x/libc.so.6", 0o644, []byte("abcd"))) // length a multiple of 4: no data padding
	must(cw.Bytes("empty", 0o600, nil))
	must(cw.Symlink("lib", "usr/lib"))
	must(cw.Symlink("sbin", "usr/sbin"))
	must(cw.Dir("usr", 0o755)) // already there implicitly: allowed
	if withDev {
		must(cw.CharDev("dev/console", 0o600, 5, 1))
	}
	must(cw.Close())
}

func sampleWant(withDev bool) map[string]entry {
	m := map[string]entry{
		"tmp":                 {mode: modeDir | 0o1777},
		"usr":                 {mode: modeDir | 0o755},
		"usr/sbin":            {mode: modeDir | 0o755},
		"usr/sbin/ip":         {mode: modeRegular | 0o755, data: "ELF-ish"},
		"usr/lib":             {mode: modeDir | 0o755},
		"usr/lib/x":           {mode: modeDir | 0o755},
		"usr/lib/x/libc.so.6": {mode: modeRegular | 0o644, data: "abcd"},
		"empty":               {mode: modeRegular | 0o600},
		"lib":                 {mode: modeSymlink | 0o777, data: "usr/lib", isLink: true},
		"sbin":                {mode: modeSymlink | 0o777, data: "usr/sbin", isLink: true},
	}
	if withDev {
		m["dev"] = entry{mode: modeDir | 0o755}
		m["dev/console"] = entry{mode: modeCharDev | 0o600, rdev: [2]uint32{5, 1}}
	}
	return m
}

// readAll reads every entry back. Inode numbers must be unique within one
// archive; across concatenated ones they may repeat (the kernel forgets
// hard-link candidates at each trailer, and ours all have nlink 1).
func readAll(t *testing.T, r io.Reader, uniqueInodes bool) map[string]entry {
	t.Helper()
	got := map[string]entry{}
	cr := NewCPIOReader(r)
	inodes := map[uint32]string{}
	for {
		h, data, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(data)
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if h.IsSymlink() {
			b = []byte(h.LinkTarget)
		}
		if _, dup := got[h.Name]; dup {
			t.Fatalf("%s appears twice", h.Name)
		}
		if prev, ok := inodes[h.Inode]; ok && uniqueInodes {
			t.Fatalf("%s and %s share inode %d", prev, h.Name, h.Inode)
		}
		inodes[h.Inode] = h.Name
		got[h.Name] = entry{mode: h.Mode, data: string(b), rdev: [2]uint32{h.RdevMajor, h.RdevMinor}, isLink: h.IsSymlink()}
	}
	return got
}

func compareEntries(t *testing.T, got, want map[string]entry) {
	t.Helper()
	for n, w := range want {
		g, ok := got[n]
		if !ok {
			t.Errorf("%s missing", n)
			continue
		}
		if g != w {
			t.Errorf("%s: got %+v, want %+v", n, g, w)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("unexpected entry %s", n)
		}
	}
}

func TestCPIORoundTrip(t *testing.T) {
	var buf bytes.Buffer
	writeSample(t, &buf, true)
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not 4-byte aligned", buf.Len())
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("070701")) {
		t.Fatalf("archive starts with %q, want the newc magic", buf.Bytes()[:6])
	}
	if !bytes.Contains(buf.Bytes(), []byte("TRAILER!!!\x00")) {
		t.Fatal("no trailer")
	}
	compareEntries(t, readAll(t, &buf, true), sampleWant(true))
}

// The kernel unpacks concatenated archives (with NUL padding between them)
// one after the other; the run archive relies on that.
func TestCPIOConcatenated(t *testing.T) {
	var buf bytes.Buffer
	writeSample(t, &buf, false)
	buf.Write(make([]byte, 8))
	cw := NewCPIOWriter(&buf)
	if err := cw.Bytes("init", 0o755, []byte("#!init")); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	want := sampleWant(false)
	want["init"] = entry{mode: modeRegular | 0o755, data: "#!init"}
	compareEntries(t, readAll(t, &buf, false), want)
}

// TestCPIOWithCpioTool checks the archive with GNU cpio, an implementation
// that is not ours: it must list and extract exactly what we wrote.
func TestCPIOWithCpioTool(t *testing.T) {
	tool, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio(1) not installed (apt-get install cpio); the round trip through our reader still ran")
	}
	var buf bytes.Buffer
	writeSample(t, &buf, false)
	list := exec.Command(tool, "-it", "--quiet")
	list.Stdin = bytes.NewReader(buf.Bytes())
	out, err := list.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	names := strings.Fields(string(out))
	sort.Strings(names)
	var want []string
	for n := range sampleWant(false) {
		want = append(want, n)
	}
	sort.Strings(want)
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("cpio -t lists %v, want %v", names, want)
	}
	dir := t.TempDir()
	extract := exec.Command(tool, "-id", "--quiet", "--no-absolute-filenames")
	extract.Dir = dir
	extract.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := extract.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "usr/sbin/ip"))
	if err != nil || string(b) != "ELF-ish" {
		t.Fatalf("extracted usr/sbin/ip: %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "lib")); err != nil || l != "usr/lib" {
		t.Fatalf("extracted lib: %q, %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "usr/sbin/ip")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("extracted usr/sbin/ip mode: %v, %v", fi, err)
	}
}

func TestCPIOWriterErrors(t *testing.T) {
	cw := NewCPIOWriter(io.Discard)
	if err := cw.Bytes("a/b", 0o644, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := cw.Bytes("a/b", 0o644, []byte("y")); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate file: got %v", err)
	}
	if err := cw.Symlink("l", "a"); err != nil {
		t.Fatal(err)
	}
	if err := cw.Bytes("l/x", 0o644, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file under a symlink: got %v", err)
	}
	if err := cw.Bytes("/", 0o644, nil); err == nil {
		t.Error("empty name accepted")
	}
	if err := cw.File("short", 0o644, 10, strings.NewReader("abc")); err == nil {
		t.Error("short content accepted")
	}
	if err := cw.Close(); err == nil {
		t.Error("Close after a failed write returned nil")
	}
}

func TestCPIOReaderRejectsGarbage(t *testing.T) {
	_, _, err := NewCPIOReader(strings.NewReader("070707" + strings.Repeat("0", 200))).Next()
	if err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("old-format archive: got %v", err)
	}
}
