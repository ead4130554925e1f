package testenv_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNotImportedByProductCode: testenv (and its sandbox core,
// internal/sandbox) is for tests; no product package may depend on it, not
// even indirectly.
// (cmd/vmtest, the VM runner, is test tooling built on testenv/vm.)
func TestNotImportedByProductCode(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool to list dependencies (the VM guest has none; the host tiers run this)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Test files are not included: `go list -deps` without -test.
	cmd := exec.CommandContext(ctx, goTool, "list", "-deps", "-f", "{{.ImportPath}}",
		"./rtnl/...", "./link/...", "./dataplane/...", "./verify/...", "./cni/...", "./cmd/vmlink", "./cmd/vmlink-cni")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list found only %d packages: %s", len(deps), out)
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/vmlink/vmlink/testenv") || p == "github.com/vmlink/vmlink/internal/sandbox" {
			t.Errorf("product code depends on %s", p)
		}
	}
}
