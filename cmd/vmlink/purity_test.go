//go:build !vm

// The VM tier copies only test binaries and testdata into the guest, not
// the source tree these tests read; the host tiers run them.

package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// productDirs are the packages that must do everything through netlink and
// sockets: the product never runs ip, tc, ethtool or modprobe.
var productDirs = []string{"rtnl", "link", "dataplane", "verify", "internal", "cmd/vmlink"}

// testOnlyDir is the one directory under productDirs that holds test
// tooling (testenv's core); testenv/imports_test.go proves no product
// package links it.
var testOnlyDir = filepath.Join("internal", "sandbox")

// execAllowed lists the product files that may import os/exec, and why.
var execAllowed = map[string]string{
	// `vmlink netns exec NAME -- CMD` runs the user's command: that is the
	// feature, not a shortcut around netlink.
	"cmd/vmlink/netns.go": "runs the user's command for `netns exec`",
}

// forbiddenImports are packages the product must never link.
var forbiddenImports = map[string]string{
	// Written as a sum so that a grep for imports of the package finds
	// real imports only, not this list.
	"github.com/jsimonetti/rtnetlink/v2" + "/driver": "its vlan/macvlan codecs are wrong on the wire; rtnl registers its own",
	"github.com/vishvananda/netlink":                 "vmlink speaks rtnetlink itself",
	"github.com/vishvananda/netns":                   "internal/netns does this",
	"github.com/google/gopacket/afpacket":            "needs cgo; github.com/gopacket/gopacket is the pure-Go one",
	"github.com/vmlink/vmlink/testenv":               "testenv is for tests only",
	"github.com/vmlink/vmlink/testenv/vm":            "testenv is for tests only",
	"github.com/vmlink/vmlink/internal/sandbox":      "testenv's core is for tests only",
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", dir, err)
	}
	return dir
}

func TestProductNeverExecs(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	files := 0
	for _, d := range productDirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(path string, e os.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil // a package not written yet
				}
				return err
			}
			if e.IsDir() && e.Name() == "testdata" {
				return filepath.SkipDir
			}
			if e.IsDir() && filepath.Join(d, e.Name()) == testOnlyDir {
				return filepath.SkipDir // test tooling: runs ip and tcpdump as references
			}
			if e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			files++
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if p == "os/exec" {
					if _, ok := execAllowed[rel]; !ok {
						t.Errorf("%s imports os/exec: product code must not run other programs (use netlink/sockets)", rel)
					}
				}
				if why, bad := forbiddenImports[p]; bad {
					t.Errorf("%s imports %s: %s", rel, p, why)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", d, err)
		}
	}
	if files < 20 {
		t.Fatalf("parsed only %d product files: the walk is broken", files)
	}
}

// TestLinkedModules checks what is linked into this test binary (the
// vmlink command and its tests): no vishvananda, and the versions
// DESIGN.md pins.
func TestLinkedModules(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info in the test binary")
	}
	pins := map[string]string{
		"github.com/mdlayher/netlink":        "v1.11.2",
		"github.com/jsimonetti/rtnetlink/v2": "v2.2.0",
		"github.com/mdlayher/packet":         "v1.2.0",
	}
	seen := map[string]bool{}
	for _, m := range bi.Deps {
		if strings.Contains(m.Path, "vishvananda") {
			t.Errorf("%s %s is linked: vmlink must not depend on vishvananda", m.Path, m.Version)
		}
		if want, ok := pins[m.Path]; ok {
			seen[m.Path] = true
			if m.Version != want {
				t.Errorf("%s is %s, DESIGN.md pins %s", m.Path, m.Version, want)
			}
		}
	}
	for p := range pins {
		if !seen[p] {
			t.Errorf("%s is not linked into vmlink: the build info lists no such module", p)
		}
	}
}
