package cni_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/testenv"
)

// TestKeysTheReferenceLacks: what Debian's 1.1.1 plugins do not know
// (linkInContainer, bcqueuelen) and vmlink's own keys give the kernel
// state they promise.
func TestKeysTheReferenceLacks(t *testing.T) {
	l := newLab(t)
	cases := []struct {
		name  string
		extra map[string]any
		want  func(info map[string]any, lk map[string]any) string
	}{
		{"bcqueuelen", map[string]any{"bcqueuelen": 2000}, func(d, _ map[string]any) string {
			return expect(d["bcqueuelen"], 2000.0)
		}},
		{"passthru nopromisc", map[string]any{"mode": "passthru", "nopromisc": true}, func(d, _ map[string]any) string {
			return expect(d["mode"], "passthru") + expect(d["nopromisc"], true)
		}},
		{"source with macaddr", map[string]any{"mode": "source", "macaddr": []string{"02:00:00:00:0a:01", "02:00:00:00:0a:02"}}, func(d, _ map[string]any) string {
			return expect(d["mode"], "source") + expect(d["macaddr_count"], 2.0)
		}},
		{"macvtap", map[string]any{"kind": "macvtap", "mode": "vepa"}, func(d, lk map[string]any) string {
			return expect(lk["linkinfo"].(map[string]any)["info_kind"], "macvtap") + expect(d["mode"], "vepa")
		}},
	}
	for i, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			c := testenv.NewNetNS(t)
			conf := tutorialConf(t, "vmlink", "1.0.0", l.ipam, cs.extra)
			id := fmt.Sprintf("keys%d", i)
			if r := l.vmlink(t, "ADD", id, c, conf); r.code != 0 {
				t.Fatalf("ADD: exit %d: %s", r.code, r.stdout)
			}
			lk := ipJSON(t, c, "-d", "link", "show", "eth0")[0]
			d := lk["linkinfo"].(map[string]any)["info_data"].(map[string]any)
			if msg := cs.want(d, lk); msg != "" {
				t.Errorf("%s; link: %v", msg, lk)
			}
			if r := l.vmlink(t, "DEL", id, c, conf); r.code != 0 {
				t.Errorf("DEL: exit %d: %s", r.code, r.stdout)
			}
		})
	}
	// Debian's ip (6.1) does not print bclim: read it with package link.
	t.Run("bclim", func(t *testing.T) {
		c := testenv.NewNetNS(t)
		conf := tutorialConf(t, "vmlink", "1.0.0", l.ipam, map[string]any{"bclim": 8})
		if r := l.vmlink(t, "ADD", "bclim", c, conf); r.code != 0 {
			// Before 6.4 the kernel drops bclim silently: refused, and
			// nothing left (no link, no address).
			if e := r.err(t); !strings.Contains(e.Msg, "6.4") || len(linkNames(t, c)) != 0 || len(ipamFiles(t, l.ipam)) != 0 {
				t.Fatalf("ADD: exit %d: %s", r.code, r.stdout)
			}
			return
		}
		h, err := link.Open(c.Name())
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		lk, err := h.Get(context.Background(), "eth0")
		if err != nil {
			t.Fatal(err)
		}
		if lk.Macvlan == nil || lk.Macvlan.BCCutoff == nil || *lk.Macvlan.BCCutoff != 8 {
			t.Errorf("bclim not 8: %+v", lk.Macvlan)
		}
		if r := l.vmlink(t, "DEL", "bclim", c, conf); r.code != 0 {
			t.Errorf("DEL: exit %d: %s", r.code, r.stdout)
		}
	})
	t.Run("linkInContainer", func(t *testing.T) {
		c := testenv.NewNetNS(t)
		c.Run(t, "ip", "link", "add", "cm0", "type", "veth", "peer", "name", "cm1")
		c.SetUp(t, "cm0", "cm1")
		conf := tutorialConf(t, "vmlink", "1.0.0", l.ipam, map[string]any{"master": "cm0", "linkInContainer": true})
		if r := l.vmlink(t, "ADD", "lic", c, conf); r.code != 0 {
			t.Fatalf("ADD: exit %d: %s", r.code, r.stdout)
		}
		lk := ipJSON(t, c, "-d", "link", "show", "eth0")[0]
		if msg := expect(lk["link"], "cm0"); msg != "" {
			t.Errorf("the macvlan's master: %s", msg)
		}
		if r := l.vmlink(t, "DEL", "lic", c, conf); r.code != 0 {
			t.Errorf("DEL: exit %d: %s", r.code, r.stdout)
		}
		if got := linkNames(t, c); !slices.Equal(got, []string{"cm1", "cm0"}) && !slices.Equal(got, []string{"cm0", "cm1"}) {
			t.Errorf("links after DEL: %v", got)
		}
	})
}

func expect(have, want any) string {
	if fmt.Sprint(have) == fmt.Sprint(want) {
		return ""
	}
	return fmt.Sprintf("have %v, want %v; ", have, want)
}

// TestParallelAddsAndGC: 50 ADDs at once against one host-local range get
// 50 distinct addresses and 50 links; GC with half of them valid removes
// exactly the other half and releases their addresses; DEL of the rest
// leaves nothing.
func TestParallelAddsAndGC(t *testing.T) {
	hostTierOnly(t)
	l := newLab(t)
	const n = 50
	conf := tutorialConf(t, "vmlink", "1.1.0", l.ipam, nil)
	cs := make([]*testenv.NetNS, n)
	for i := range cs {
		cs[i] = testenv.NewNetNS(t)
	}
	addrs := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := l.vmlink(t, "ADD", fmt.Sprintf("par%d", i), cs[i], conf)
			if r.code != 0 {
				errs <- fmt.Sprintf("ADD %d: exit %d: %s", i, r.code, r.stdout)
				return
			}
			var res struct {
				IPs []struct{ Address string } `json:"ips"`
			}
			if err := json.Unmarshal(r.stdout, &res); err != nil || len(res.IPs) != 1 {
				errs <- fmt.Sprintf("ADD %d: %s", i, r.stdout)
				return
			}
			addrs[i] = res.IPs[0].Address
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
	distinct := slices.Clone(addrs)
	sort.Strings(distinct)
	if distinct = slices.Compact(distinct); len(distinct) != n {
		t.Fatalf("%d distinct addresses of %d: %v", len(distinct), n, addrs)
	}
	for i, c := range cs {
		if got := linkNames(t, c); len(got) != 1 {
			t.Fatalf("container %d has links %v", i, got)
		}
	}

	// GC with the even attachments valid.
	var m map[string]any
	json.Unmarshal([]byte(conf), &m)
	var valid []any
	for i := 0; i < n; i += 2 {
		valid = append(valid, map[string]any{"containerID": fmt.Sprintf("par%d", i), "ifname": "eth0"})
	}
	m["cni.dev/valid-attachments"] = valid
	gcConf, _ := json.Marshal(m)
	env := l.env(t, "GC", "", nil)
	delete(env, "CNI_IFNAME")
	if r := run(t, l.host, pluginDir(t)+"/vmlink", env, string(gcConf)); r.code != 0 {
		t.Fatalf("GC: exit %d: %s", r.code, r.stdout)
	}
	for i, c := range cs {
		got := linkNames(t, c)
		if i%2 == 0 && len(got) != 1 || i%2 == 1 && len(got) != 0 {
			t.Errorf("after GC container %d (valid %v) has links %v", i, i%2 == 0, got)
		}
	}
	if got := ipamFiles(t, l.ipam); len(got) != n/2 {
		t.Errorf("after GC host-local holds %d addresses, want %d: %v", len(got), n/2, got)
	}
	for i := 0; i < n; i += 2 {
		if r := l.vmlink(t, "DEL", fmt.Sprintf("par%d", i), cs[i], conf); r.code != 0 {
			t.Errorf("DEL %d: exit %d: %s", i, r.code, r.stdout)
		}
	}
	if got := ipamFiles(t, l.ipam); len(got) != 0 {
		t.Errorf("after DEL host-local holds %v", got)
	}
	if got := records(t, stateDir(l.ipam)); len(got) != 0 {
		t.Errorf("after GC and DEL the plugin has records %v", got)
	}
	for i, c := range cs {
		if got := linkNames(t, c); len(got) != 0 {
			t.Errorf("after DEL container %d has links %v", i, got)
		}
	}
}

// sandboxProcess starts a process in a namespace of its own, as a
// runtime's sandbox (pause) process holds a pod's namespace without
// naming it, and returns its namespace path (/proc/PID/ns/net) and a kill
// that destroys the namespace (and the links in it) by ending the
// process. The cleanup kills it too.
func sandboxProcess(t *testing.T) (string, func()) {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	pid := cmd.Process.Pid
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/proc/%d/ns/net", pid)
	// unshare(2) runs after the exec: wait (bounded) until the process
	// is in its own namespace.
	for i := 0; ; i++ {
		if ns, err := os.Readlink(path); err == nil && ns != self {
			break
		}
		if i == 200 {
			kill()
			t.Fatalf("process %d never left the namespace %s", pid, self)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return path, kill
}

// TestGCNamespaceGone: GC releases the addresses of attachments whose
// namespace is gone (destroyed with its link, so no link is left to find)
// from the records ADD left; the valid ones keep theirs until their DEL,
// which then needs nothing but the configuration. Nothing is left behind:
// no allocation, no record.
func TestGCNamespaceGone(t *testing.T) {
	hostTierOnly(t)
	l := newLab(t)
	const n = 6
	conf := tutorialConf(t, "vmlink", "1.1.0", l.ipam, nil)
	paths := make([]string, n)
	kills := make([]func(), n)
	addrs := make([]string, n)
	for i := range n {
		paths[i], kills[i] = sandboxProcess(t)
		path := paths[i]
		env := l.env(t, "ADD", fmt.Sprintf("gone%d", i), nil)
		env["CNI_NETNS"] = path
		r := run(t, l.host, filepath.Join(pluginDir(t), "vmlink"), env, conf)
		if r.code != 0 {
			t.Fatalf("ADD %d: exit %d: %s", i, r.code, r.stdout)
		}
		var res struct {
			IPs []struct{ Address string } `json:"ips"`
		}
		if err := json.Unmarshal(r.stdout, &res); err != nil || len(res.IPs) != 1 {
			t.Fatalf("ADD %d: %s", i, r.stdout)
		}
		addrs[i], _, _ = strings.Cut(res.IPs[0].Address, "/")
	}
	if got := records(t, stateDir(l.ipam)); len(got) != n {
		t.Fatalf("after %d ADDs the plugin has records %v", n, got)
	}
	// The runtime's sandboxes die: their namespaces go, and the
	// macvlans in them with them.
	for _, kill := range kills {
		kill()
	}
	for i := 0; ; i++ {
		gone := 0
		for _, p := range paths {
			if _, err := os.Stat(p); err != nil {
				gone++
			}
		}
		if gone == n {
			break
		}
		if i == 500 {
			t.Fatalf("the sandbox processes did not end")
		}
		time.Sleep(10 * time.Millisecond)
	}

	var m map[string]any
	json.Unmarshal([]byte(conf), &m)
	m["cni.dev/valid-attachments"] = []any{
		map[string]any{"containerID": "gone0", "ifname": "eth0"},
		map[string]any{"containerID": "gone1", "ifname": "eth0"},
	}
	gcConf, _ := json.Marshal(m)
	env := l.env(t, "GC", "", nil)
	delete(env, "CNI_IFNAME")
	if r := run(t, l.host, filepath.Join(pluginDir(t), "vmlink"), env, string(gcConf)); r.code != 0 {
		t.Fatalf("GC: exit %d: %s", r.code, r.stdout)
	}
	got := ipamFiles(t, l.ipam)
	sort.Strings(got)
	want := []string{addrs[0], addrs[1]}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("after GC host-local holds %v, want exactly the valid attachments' %v", got, want)
	}
	if got := records(t, stateDir(l.ipam)); !slices.Equal(got, []string{"macvlan-demo/gone0:eth0", "macvlan-demo/gone1:eth0"}) {
		t.Errorf("after GC the plugin has records %v", got)
	}
	for i := range 2 {
		env := l.env(t, "DEL", fmt.Sprintf("gone%d", i), nil)
		env["CNI_NETNS"] = paths[i]
		if r := run(t, l.host, filepath.Join(pluginDir(t), "vmlink"), env, conf); r.code != 0 {
			t.Errorf("DEL %d with its namespace gone: exit %d: %s", i, r.code, r.stdout)
		}
	}
	if got := ipamFiles(t, l.ipam); len(got) != 0 {
		t.Errorf("after DEL host-local holds %v", got)
	}
	if got := records(t, stateDir(l.ipam)); len(got) != 0 {
		t.Errorf("after DEL the plugin has records %v", got)
	}
}
