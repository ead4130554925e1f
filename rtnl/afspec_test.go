package rtnl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAFSpecFromKernelDumps decodes IFLA_AF_SPEC of every kernel dump in
// testdata/dumps and checks the IPv6 address generation mode against what
// ip -d -j printed for the same link.
func TestAFSpecFromKernelDumps(t *testing.T) {
	names := map[uint8]string{0: "eui64", 1: "none", 2: "stable_secret", 3: "random"}
	files, err := filepath.Glob(filepath.Join("testdata", "dumps", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dumps: %v", err)
	}
	seen := 0
	for _, path := range files {
		g := readCapture(t, path)
		js, err := os.ReadFile(strings.TrimSuffix(path, ".txt") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var ref []map[string]any
		if err := json.Unmarshal(js, &ref); err != nil || len(ref) != 1 {
			t.Fatalf("%s.json: %v", g.name, err)
		}
		var m LinkMessage
		if err := m.UnmarshalBinary(g.body); err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		var af AFSpec
		if err := af.UnmarshalBinary(m.Attrs.AFSpec); err != nil {
			t.Fatalf("%s: IFLA_AF_SPEC: %v", g.name, err)
		}
		want, _ := ref[0]["inet6_addr_gen_mode"].(string)
		got := ""
		if af.INET6AddrGenMode != nil {
			got = names[*af.INET6AddrGenMode]
		}
		if got != want {
			t.Errorf("%s: inet6_addr_gen_mode %q, ip prints %q", g.name, got, want)
		}
		if want != "" {
			seen++
		}
	}
	if seen == 0 {
		t.Error("no dump has an inet6_addr_gen_mode: nothing was compared")
	}
	var af AFSpec
	if err := af.UnmarshalBinary([]byte{0x08, 0x00, 0x0a}); err == nil {
		t.Error("a truncated IFLA_AF_SPEC decoded")
	}
}
