package cni_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/testenv"
)

// TestIPAMRouteAttributes: a result's route priority (metric), table and
// scope (spec 1.1.0) reach the kernel as the reference plugins'
// ConfigureIface applies them, and CHECK compares them. Debian's static
// and host-local (1.1.1) predate those keys and drop them, so the IPAM
// plugin here is the cni module's own test double (plugins/test/noop),
// which returns the result it is given.
func TestIPAMRouteAttributes(t *testing.T) {
	hostTierOnly(t)
	l := newLab(t)
	noop := buildFromCNIModule(t, "plugins/test/noop")
	// Found in CNI_PATH after the plugin's directory and Debian's.
	ipamDir := filepath.Dir(noop)
	res := map[string]any{
		"cniVersion": "1.1.0",
		"ips":        []any{map[string]any{"address": "172.16.126.9/24"}},
		"routes": []any{
			map[string]any{"dst": "10.50.0.0/16", "gw": "172.16.126.1", "priority": 300},
			map[string]any{"dst": "10.51.0.0/16", "gw": "172.16.126.7", "table": 100},
			map[string]any{"dst": "10.52.0.0/16", "gw": "172.16.126.1", "priority": 50, "table": 101},
			// Without a gateway a route is scope link by default; universe
			// is what the result asks.
			map[string]any{"dst": "10.53.0.0/16", "scope": 0},
		},
	}
	rb, _ := json.Marshal(res)
	debug := filepath.Join(t.TempDir(), "noop.json")
	if err := os.WriteFile(debug, []byte(fmt.Sprintf(`{"ReportResult": %q}`, rb)), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := tutorialConf(t, "vmlink", "1.1.0", l.ipam, map[string]any{"ipam": map[string]any{"type": "noop"}, "debugFile": debug})
	c := testenv.NewNetNS(t)
	env := l.env(t, "ADD", "routes", c)
	env["CNI_PATH"] += ":" + ipamDir
	r := run(t, l.host, filepath.Join(pluginDir(t), "vmlink"), env, conf)
	if r.code != 0 {
		t.Fatalf("ADD: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	defer func() {
		env["CNI_COMMAND"] = "DEL"
		if r := run(t, l.host, filepath.Join(pluginDir(t), "vmlink"), env, conf); r.code != 0 {
			t.Errorf("DEL: exit %d: %s", r.code, r.stdout)
		}
	}()

	// The kernel's routes, as ip prints them (table all: 100 and 101 too).
	type route struct {
		dst, gw, table, scope string
		metric                float64
	}
	var have []route
	for _, m := range ipJSON(t, c, "route", "show", "table", "all") {
		rt := route{}
		rt.dst, _ = m["dst"].(string)
		rt.gw, _ = m["gateway"].(string)
		rt.table, _ = m["table"].(string)
		rt.scope, _ = m["scope"].(string)
		rt.metric, _ = m["metric"].(float64)
		if m["dev"] == "eth0" && strings.HasPrefix(rt.dst, "10.5") {
			have = append(have, rt)
		}
	}
	want := []route{
		{dst: "10.50.0.0/16", gw: "172.16.126.1", metric: 300},
		{dst: "10.51.0.0/16", gw: "172.16.126.7", table: "100"},
		{dst: "10.52.0.0/16", gw: "172.16.126.1", table: "101", metric: 50},
		{dst: "10.53.0.0/16"},
	}
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			t.Errorf("route %+v not in the container: %+v", w, have)
		}
	}
	if len(have) != len(want) {
		t.Errorf("routes %+v, want %+v", have, want)
	}

	check := withPrevResult(t, conf, resultOf(t, r.stdout))
	env["CNI_COMMAND"] = "CHECK"
	if r := run(t, l.host, filepath.Join(pluginDir(t), "vmlink"), env, check); r.code != 0 {
		t.Fatalf("CHECK right after ADD: exit %d: %s", r.code, r.stdout)
	}
	// The same route with another metric is not the result's route.
	c.Run(t, "ip", "route", "del", "10.50.0.0/16", "via", "172.16.126.1", "dev", "eth0", "metric", "300")
	c.Run(t, "ip", "route", "add", "10.50.0.0/16", "via", "172.16.126.1", "dev", "eth0", "metric", "301")
	r = run(t, l.host, filepath.Join(pluginDir(t), "vmlink"), env, check)
	if r.code == 0 {
		t.Fatal("CHECK passed with the route's metric changed")
	}
	if e := r.err(t); e.Code != 100 || !strings.Contains(e.Msg, "route 10.50.0.0/16 via 172.16.126.1 dev eth0 metric 300 is missing") {
		t.Errorf("CHECK: %+v", e)
	}
}
