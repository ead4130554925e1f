// Package execpkg is run by cmd/vmtest's end-to-end test through
// go test -exec vmtest: it passes only inside the VM.
package execpkg

import (
	"os"
	"testing"
)

func TestInsideVM(t *testing.T) {
	if _, err := os.Stat("/proc/net/vlan/config"); err != nil {
		t.Fatalf("8021q not loaded: %v", err)
	}
	b, err := os.ReadFile("testdata/input.txt")
	if err != nil || string(b) != "payload" {
		t.Fatalf("testdata/input.txt: %q, %v", b, err)
	}
	t.Logf("running on %s", os.Getenv("VMLINK_VM_KERNEL"))
	if os.Getenv("VMTEST_E2E_FAIL") == "1" {
		t.Fatal("failing on purpose (VMTEST_E2E_FAIL=1)")
	}
}
