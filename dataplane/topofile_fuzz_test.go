package dataplane

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"
)

// FuzzParseTopology feeds the topology reader arbitrary files: it must
// refuse or accept, never panic, and what it accepts must validate again
// (also under a lab's name prefix).
func FuzzParseTopology(f *testing.F) {
	// The labs embedded in the binary: the VM runner copies only testdata/.
	labs, err := fs.Glob(labFiles, "labs/*.yaml")
	if err != nil || len(labs) == 0 {
		f.Fatalf("no lab files to seed from: %v", err)
	}
	for _, p := range labs {
		b, err := labFiles.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name: t\n---\nname: u\n"))
	f.Add([]byte("name: t\nnetworks: [{name: n, parent: p1.4095, subnet: 10.0.0.0/31}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := top.Validate(); err != nil {
			t.Fatalf("accepted topology fails validation: %v", err)
		}
		if err := top.WithPrefix("vmlab-1-").Validate(); err != nil && !strings.Contains(err.Error(), "name") {
			t.Fatalf("prefixed topology fails validation: %v", err)
		}
	})
}

func TestParseRefusesSecondDocument(t *testing.T) {
	b, err := labFiles.ReadFile("labs/modes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(bytes.NewReader(append(b, []byte("\n---\nname: other\n")...)))
	if err == nil || !strings.Contains(err.Error(), "---") {
		t.Fatalf("a second YAML document was not refused: %v", err)
	}
}
