package dataplane

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/testenv"
)

// A lab killed with -9 after recording its state but before creating its
// first namespace leaves only the state file; `lab --down PREFIX` takes it
// down instead of saying there is no such lab (found by the fault tier).
func TestDownLabOnlyState(t *testing.T) {
	testenv.Require(t, testenv.FeaturePrivileged)
	dir := t.TempDir()
	prefix := LabPrefix(999999999) // no such process, no such namespace
	labs, err := Labs()
	if err != nil {
		t.Fatal(err)
	}
	name := labs[0].WithPrefix(prefix).Final().Name
	path := topoStatePath(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"name":"`+name+`","group":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DownLab(context.Background(), prefix, &Options{StateDir: dir}); err != nil {
		t.Fatalf("DownLab of a lab that has only its state: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("state %s still there after DownLab (%v)", path, err)
	}
	// Nothing left: the same prefix again is no lab.
	if _, err := DownLab(context.Background(), prefix, &Options{StateDir: dir}); err == nil {
		t.Error("DownLab of nothing succeeded")
	}
}

// A lab killed between creating a namespace's name and mounting it leaves a
// bare file in /run/netns; lab --down removes it too.
func TestDownLabBareFile(t *testing.T) {
	testenv.Require(t, testenv.FeaturePrivileged)
	prefix := LabPrefix(999999998)
	path := filepath.Join(netns.Dir, prefix+"host")
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	if _, err := DownLab(context.Background(), prefix, &Options{StateDir: t.TempDir()}); err != nil {
		t.Fatalf("DownLab of a bare namespace file: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still there after DownLab (%v)", path, err)
	}
}
