package guest

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmlink/vmlink/testenv/vm/internal/wire"
)

func TestUnstage(t *testing.T) {
	stage, root := t.TempDir(), t.TempDir()
	files := map[string]string{
		"tmp/pkg/testdata/a.txt":     "A",
		"tmp/pkg/testdata/sub/b.bin": "B",
	}
	for rel, c := range files {
		p := filepath.Join(stage, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(stage, "tmp/pkg/testdata/link")); err != nil {
		t.Fatal(err)
	}
	if err := unstage(stage, root); err != nil {
		t.Fatal(err)
	}
	for rel, c := range files {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || string(b) != c {
			t.Errorf("%s: %q, %v", rel, b, err)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "tmp/pkg/testdata/link")); err != nil || l != "a.txt" {
		t.Errorf("symlink: %q, %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp/pkg/testdata/a.txt")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode: %v, %v", fi, err)
	}
	// No stage directory (no testdata) is fine.
	if err := unstage(filepath.Join(stage, "none"), root); err != nil {
		t.Errorf("missing stage: %v", err)
	}
}

// pipePort stands in for the virtio-serial port.
func pipePort(t *testing.T) (*guest, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return &guest{port: w}, r
}

func TestOutputAndCollectFrames(t *testing.T) {
	g, r := pipePort(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cover.out"), []byte("mode: set\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "covdir"), 0o755)
	os.WriteFile(filepath.Join(dir, "covdir", "covcounters.1"), []byte{1, 2, 3}, 0o644)
	go func() {
		io.WriteString(&frameWriter{g, wire.KindStdout}, "=== RUN TestX\n")
		io.WriteString(&frameWriter{g, wire.KindStderr}, "oops\n")
		g.collect([]string{filepath.Join(dir, "cover.out"), filepath.Join(dir, "covdir"), filepath.Join(dir, "missing")})
		g.send(wire.KindExit, wire.EncodeExit(1))
	}()
	want := []struct {
		k       wire.Kind
		payload []byte
	}{
		{wire.KindStdout, []byte("=== RUN TestX\n")},
		{wire.KindStderr, []byte("oops\n")},
		{wire.KindFile, wire.EncodeFile(filepath.Join(dir, "cover.out"), []byte("mode: set\n"))},
		{wire.KindFile, wire.EncodeFile(filepath.Join(dir, "covdir", "covcounters.1"), []byte{1, 2, 3})},
		{wire.KindExit, wire.EncodeExit(1)},
	}
	for i, w := range want {
		f, err := wire.ReadFrame(r)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Kind != w.k || !bytes.Equal(f.Payload, w.payload) {
			t.Fatalf("frame %d: got %v %q, want %v %q", i, f.Kind, f.Payload, w.k, w.payload)
		}
	}
}
