package feature

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestModuleAndKind(t *testing.T) {
	for kind, mod := range map[string]string{"vlan": "8021q", "ipvlan": "ipvlan", "macvlan": "macvlan", "macvtap": "macvtap", "dummy": "dummy"} {
		if got := Module(kind); got != mod {
			t.Errorf("Module(%q) = %q, want %q", kind, got, mod)
		}
		if got := Kind(mod); got != kind {
			t.Errorf("Kind(%q) = %q, want %q", mod, got, kind)
		}
		if got := Kind(kind); got != kind {
			t.Errorf("Kind(%q) = %q, want itself", kind, got)
		}
	}
	if Module("bond") != "" || Kind("bonding") != "" {
		t.Error("an unknown kind or module has an answer")
	}
	if err := LinkKind("bond"); err == nil || errors.Is(err, ErrNotSupported) {
		t.Errorf("LinkKind(bond) = %v, want an error that is not ErrNotSupported (cannot tell)", err)
	}
}

// TestTestRunsOnce: concurrent callers all get the one answer of one run.
func TestTestRunsOnce(t *testing.T) {
	want := &NotSupportedError{Kind: "vlan", Module: "8021q", Release: "6.18", Probe: "a link of kind vlan", Err: errors.New("x")}
	tt := NewTest(func() error { return want })
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := tt.Result(); err != want || !errors.Is(err, ErrNotSupported) {
				t.Errorf("Result = %v", err)
			}
		}()
	}
	wg.Wait()
	if tt.Runs() != 1 {
		t.Errorf("probe ran %d times, want 1", tt.Runs())
	}
	if msg := want.Error(); !strings.Contains(msg, "kernel 6.18 has no 8021q (creating a link of kind vlan: EOPNOTSUPP)") {
		t.Errorf("message %q", msg)
	}
}
