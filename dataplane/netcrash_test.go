package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
)

// linkNames lists the links of namespace ns, sorted.
func linkNames(t *testing.T, ns string) []string {
	t.Helper()
	c, err := rtnl.DialNetNS(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ms, err := c.Links(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Attrs.Name)
	}
	slices.Sort(out)
	return out
}

// TestNetworkConnectAfterKill: the states a `net connect` killed with
// SIGKILL leaves, each followed by what a user runs next. Every case ends
// with the container having exactly the interface its record names, and
// nothing left that nothing owns.
func TestNetworkConnectAfterKill(t *testing.T) {
	e, nets := newNetEnv(t)
	ctx := context.Background()
	if _, err := nets.Create(ctx, NetworkSpec{Name: "k", Subnets: []netip.Prefix{pfx("10.63.0.0/24")}, Options: netOpts(t, "parent", "p0")}); err != nil {
		t.Fatal(err)
	}
	forget := func(container string) { // killed after the link, before the state was saved
		t.Helper()
		if err := nets.with(func(st *netState) error { delete(st.Networks["k"].Endpoints, container); return nil }); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("link created, state not saved; connect again", func(t *testing.T) {
		c1 := e.prefix + "c1"
		if _, err := nets.Connect(ctx, ConnectSpec{Network: "k", Container: c1}); err != nil {
			t.Fatal(err)
		}
		forget(c1)
		a, err := nets.Connect(ctx, ConnectSpec{Network: "k", Container: c1})
		if err != nil {
			t.Fatal(err)
		}
		if got := linkNames(t, c1); !slices.Equal(got, []string{a.Interface, "lo"}) || a.Interface != "eth0" {
			t.Fatalf("%s has %v after the retry (recorded %s), want one interface eth0", c1, got, a.Interface)
		}
	})

	t.Run("two interfaces with the old alias; net ls", func(t *testing.T) {
		c2 := e.prefix + "c2"
		a, err := nets.Connect(ctx, ConnectSpec{Network: "k", Container: c2})
		if err != nil {
			t.Fatal(err)
		}
		// What the earlier vmlink left: a second interface carrying the
		// alias without the interface name, unrecorded.
		hc, err := link.Open(e.host)
		if err != nil {
			t.Fatal(err)
		}
		defer hc.Close()
		m := nets.mark()
		if _, err := hc.Create(ctx, &link.Macvlan{Common: link.Common{Name: "eth5", Parent: "p0", Group: m.Group(),
			Alias: m.Alias(legacyEndpointObject("k", c2)), NetNS: &link.Target{Name: c2}}, Mode: link.MacvlanModeBridge}); err != nil {
			t.Fatal(err)
		}
		_, found, err := nets.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := linkNames(t, c2); !slices.Equal(got, []string{a.Interface, "lo"}) {
			t.Fatalf("%s has %v after net ls (findings %v), want only the recorded %s", c2, got, found, a.Interface)
		}
	})

	t.Run("namespace created, not marked; connect again", func(t *testing.T) {
		c3 := e.prefix + "c3"
		h, err := netns.Create(c3)
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		if err := nets.with(func(st *netState) error { st.Pending = append(st.Pending, c3); return nil }); err != nil {
			t.Fatal(err)
		}
		a, err := nets.Connect(ctx, ConnectSpec{Network: "k", Container: c3})
		if err != nil {
			t.Fatal(err)
		}
		if !a.NSCreated {
			t.Fatal("the namespace an interrupted connect created is recorded as the user's: it would leak")
		}
		if err := nets.Disconnect(ctx, "k", c3); err != nil {
			t.Fatal(err)
		}
		if netns.Exists(c3) {
			t.Fatal("disconnect kept the namespace connect created")
		}
	})

	t.Run("namespace file not mounted; connect again", func(t *testing.T) {
		c4 := e.prefix + "c4"
		path := filepath.Join(netns.Dir, c4)
		if err := os.WriteFile(path, nil, 0o444); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { netns.Delete(c4) })
		if _, err := nets.Connect(ctx, ConnectSpec{Network: "k", Container: c4}); err != nil {
			t.Fatalf("connect over an unmounted leftover %s: %v", path, err)
		}
		if !netns.Exists(c4) {
			t.Fatal("no namespace mounted")
		}
	})

	t.Run("temporary state files", func(t *testing.T) {
		tmps := []string{filepath.Join(e.stateDir, "state.json.tmp"), filepath.Join(e.stateDir, "topologies", "x.json.tmp")}
		for _, f := range tmps {
			os.MkdirAll(filepath.Dir(f), 0o755)
			if err := os.WriteFile(f, []byte("{"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := nets.List(ctx); err != nil {
			t.Fatal(err)
		}
		for _, f := range tmps {
			if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s survives: %v", f, err)
			}
		}
	})
}

// TestNetworkStateCorruptOrEmpty: an empty state file records nothing and
// is read as no networks; a corrupt one stops every command with one error
// that says how to repair it, and after that repair (moving it aside) net
// ls removes what its networks had created.
func TestNetworkStateCorruptOrEmpty(t *testing.T) {
	e, nets := newNetEnv(t)
	ctx := context.Background()
	state := filepath.Join(e.stateDir, "state.json")
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if recs, _, err := nets.List(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("List on an empty state file = %v, %v", recs, err)
	}
	if _, err := nets.Create(ctx, NetworkSpec{Name: "z", Subnets: []netip.Prefix{pfx("10.64.0.0/24")}, Options: netOpts(t, "parent", "p0")}); err != nil {
		t.Fatal(err)
	}
	c1 := e.prefix + "c1"
	if _, err := nets.Connect(ctx, ConnectSpec{Network: "z", Container: c1}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte(`{"networks": {"z": `), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := nets.List(ctx)
	var ce *CorruptStateError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "mv "+state+" "+state+".corrupt") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("List on a corrupt state = %v, want a CorruptStateError naming the repair", err)
	}
	if err := os.Rename(state, state+".corrupt"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := nets.List(ctx); err != nil {
		t.Fatal(err)
	}
	if netns.Exists(c1) {
		t.Fatal("after the repair, net ls kept the namespace connect created")
	}
}
