package cni_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/testenv"
)

// attachment is one ADD's container and result.
type attachment struct {
	c      *testenv.NetNS
	id     string
	conf   string
	result map[string]any
	mac    string
	addr   string
}

func (l *lab) add(t *testing.T, id, conf string) *attachment {
	t.Helper()
	c := testenv.NewNetNS(t)
	r := l.vmlink(t, "ADD", id, c, conf)
	if r.code != 0 {
		t.Fatalf("ADD %s: exit %d: %s", id, r.code, r.stdout)
	}
	a := &attachment{c: c, id: id, conf: conf}
	if err := json.Unmarshal(r.stdout, &a.result); err != nil {
		t.Fatal(err)
	}
	a.mac = a.result["interfaces"].([]any)[0].(map[string]any)["mac"].(string)
	a.addr = a.result["ips"].([]any)[0].(map[string]any)["address"].(string)
	t.Cleanup(func() { l.vmlink(t, "DEL", id, c, conf) })
	return a
}

// check runs CHECK with the attachment's result as prevResult, again
// while it answers 11 (try again), for up to 5 s, as a runtime would.
func (l *lab) check(t *testing.T, a *attachment) result {
	t.Helper()
	return l.checkConf(t, a.id, a.c, withPrevResult(t, a.conf, a.result))
}

// checkConf runs CHECK with conf (holding prevResult), again while it
// answers 11.
func (l *lab) checkConf(t *testing.T, id string, c *testenv.NetNS, conf string) result {
	t.Helper()
	for i := 0; ; i++ {
		r := l.vmlink(t, "CHECK", id, c, conf)
		if r.code == 0 || i == 10 || r.err(t).Code != 11 {
			return r
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestCheck: CHECK passes right after ADD (wire included, with a sibling
// on the master), and fails with a precise message after each way the
// attachment can go wrong.
func TestCheck(t *testing.T) {
	l := newLab(t)
	testenv.NewParent(t, testenv.ParentOptions{Host: l.host, Name: "p1"})
	conf := tutorialConf(t, "vmlink", "1.1.0", l.ipam, nil)
	cases := []struct {
		name    string
		break_  func(t *testing.T, a *attachment) func() // returns a stop func, may be nil
		code    uint
		details string
	}{
		{"mode changed", func(t *testing.T, a *attachment) func() {
			a.c.Run(t, "ip", "link", "set", "eth0", "type", "macvlan", "mode", "private")
			return nil
		}, 100, "mode: have private, want bridge"},
		{"MAC changed", func(t *testing.T, a *attachment) func() {
			a.c.Run(t, "ip", "link", "set", "eth0", "address", "02:00:00:00:99:99")
			return nil
		}, 100, "address: have 02:00:00:00:99:99"},
		{"address removed", func(t *testing.T, a *attachment) func() {
			a.c.Run(t, "ip", "addr", "del", a.addr, "dev", "eth0")
			return nil
		}, 100, "is missing from eth0"},
		{"moved to another master", func(t *testing.T, a *attachment) func() {
			a.c.Run(t, "ip", "link", "del", "eth0")
			l.host.Run(t, "ip", "link", "add", "mvx", "link", "p1", "address", a.mac, "netns", a.c.Name(), "type", "macvlan", "mode", "bridge")
			a.c.Run(t, "ip", "link", "set", "mvx", "name", "eth0")
			return nil
		}, 100, "link: have ifindex"},
		{"interface set down", func(t *testing.T, a *attachment) func() {
			a.c.Run(t, "ip", "link", "set", "eth0", "down")
			return nil
		}, 100, "eth0 is down"},
		{"master down", func(t *testing.T, a *attachment) func() {
			l.host.Run(t, "ip", "link", "set", "p0", "down")
			return func() { l.host.Run(t, "ip", "link", "set", "p0", "up") }
		}, 100, "the master of p0 is down"},
		{"another station sends from the pod's MAC", func(t *testing.T, a *attachment) func() {
			mac, _ := net.ParseMAC(a.mac)
			st := l.parent.Switch.Attach(t, testenv.EndpointOptions{MAC: mac})
			return sendGARPs(t, st, mac)
		}, 101, "another station uses this MAC"},
	}
	for i, cs := range cases {
		t.Run(strings.ReplaceAll(cs.name, " ", "_"), func(t *testing.T) {
			a := l.add(t, fmt.Sprintf("chk%d", i), conf)
			l.add(t, fmt.Sprintf("sib%d", i), conf) // a sibling the wire check probes from
			if r := l.check(t, a); r.code != 0 {
				t.Fatalf("CHECK right after ADD: exit %d: %s", r.code, r.stdout)
			}
			if stop := cs.break_(t, a); stop != nil {
				defer stop()
			}
			r := l.check(t, a)
			if r.code == 0 {
				t.Fatalf("CHECK passed after %s", cs.name)
			}
			if e := r.err(t); e.Code != cs.code || !strings.Contains(e.Details+e.Msg, cs.details) {
				t.Errorf("CHECK: %+v, want code %d and %q", e, cs.code, cs.details)
			}
		})
	}
}

// sendGARPs makes station st send a gratuitous ARP from mac every 20 ms
// until the returned stop is called (or 30 s passed).
func sendGARPs(t *testing.T, st *testenv.Endpoint, mac net.HardwareAddr) func() {
	t.Helper()
	var conn *packet.Conn
	if err := st.Do(func() error {
		ifi, err := net.InterfaceByName(st.Interface)
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, 0, nil)
		return err
	}); err != nil {
		t.Fatalf("packet socket in the station: %v", err)
	}
	frame := make([]byte, 42)
	copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:12], mac)
	copy(frame[12:], []byte{0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1})
	copy(frame[22:28], mac)
	copy(frame[28:32], []byte{172, 16, 123, 99})
	copy(frame[38:42], []byte{172, 16, 123, 99})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := time.After(30 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-deadline:
				return
			case <-tick.C:
				_, _ = conn.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}})
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		conn.Close()
	}
}

// TestCheckSettling: CHECK on an IPv6 address still in duplicate address
// detection answers 11 (try again), and passes once DAD is over, without
// anything else done. The trigger is the kernel's own: the address is
// added again with the interface's neighbour retransmit time at 3 s, so
// DAD's one probe keeps it tentative 3 to 4 s.
func TestCheckSettling(t *testing.T) {
	hostTierOnly(t)
	l := newLab(t)
	conf := tutorialConf(t, "vmlink", "1.1.0", l.ipam, map[string]any{"ipam": map[string]any{"type": "static",
		"addresses": []any{map[string]any{"address": "172.16.127.9/24"}, map[string]any{"address": "fd00:127::9/64"}}}})
	a := l.add(t, "settle", conf)
	if r := l.check(t, a); r.code != 0 {
		t.Fatalf("CHECK right after ADD: exit %d: %s\n%s", r.code, r.stdout, a.c.Run(t, "ip", "addr"))
	}
	if err := a.c.WriteSysctl("net/ipv6/neigh/eth0/retrans_time_ms", "3000"); err != nil {
		t.Fatal(err)
	}
	a.c.Run(t, "ip", "addr", "del", "fd00:127::9/64", "dev", "eth0")
	a.c.Run(t, "ip", "addr", "add", "fd00:127::9/64", "dev", "eth0")
	if out := a.c.Run(t, "ip", "-6", "addr", "show", "dev", "eth0", "tentative"); !strings.Contains(out, "fd00:127::9") {
		t.Fatalf("the address is not tentative, the test proves nothing: %s", out)
	}
	r := l.vmlink(t, "CHECK", a.id, a.c, withPrevResult(t, a.conf, a.result))
	if r.code == 0 {
		t.Fatal("CHECK passed on a tentative address")
	}
	if e := r.err(t); e.Code != 11 || !strings.Contains(e.Msg, "fd00:127::9/64 on eth0 is still tentative") {
		t.Errorf("CHECK on a tentative address: %+v, want code 11", e)
	}
	// Settled: DAD ends by itself within 4 s; check (which retries on 11
	// for up to 5 s, as a runtime would) passes.
	if r := l.check(t, a); r.code != 0 {
		t.Errorf("CHECK once DAD is over: exit %d: %s", r.code, r.stdout)
	}
	// Only the result's address counts: the link-local one (not in the
	// result, so not CHECK's business) may still be in its own DAD, which
	// the 3 s retransmit time slows down too.
	if out := a.c.Run(t, "ip", "-6", "addr", "show", "dev", "eth0", "tentative"); strings.Contains(out, "fd00:127::9") {
		t.Errorf("fd00:127::9 still tentative after CHECK passed: %s", out)
	}
}

// TestCheckWireAnyNetNS: CHECK's wire part runs whatever the path of
// CNI_NETNS (a process's /proc/PID/ns/net, or a bind mount outside
// /run/netns, as some runtimes hand it) and with linkInContainer (the
// master, and so the capture, in the container's namespace): each passes
// right after ADD and answers 101 once another station sends from the
// attachment's MAC, which only the wire shows.
func TestCheckWireAnyNetNS(t *testing.T) {
	hostTierOnly(t)
	l := newLab(t)
	conf := tutorialConf(t, "vmlink", "1.1.0", l.ipam, nil)
	// addAt adds id with CNI_NETNS path and returns its CHECK and its MAC.
	addAt := func(t *testing.T, id, path, conf string) (func() result, net.HardwareAddr) {
		env := l.env(t, "ADD", id, nil)
		env["CNI_NETNS"] = path
		plugin := filepath.Join(pluginDir(t), "vmlink")
		r := run(t, l.host, plugin, env, conf)
		if r.code != 0 {
			t.Fatalf("ADD: exit %d: %s", r.code, r.stdout)
		}
		t.Cleanup(func() {
			env["CNI_COMMAND"] = "DEL"
			run(t, l.host, plugin, env, conf)
		})
		var res struct {
			Interfaces []struct{ Mac string } `json:"interfaces"`
		}
		if err := json.Unmarshal(r.stdout, &res); err != nil || len(res.Interfaces) != 1 {
			t.Fatalf("ADD result: %s", r.stdout)
		}
		mac, _ := net.ParseMAC(res.Interfaces[0].Mac)
		cc := withPrevResult(t, conf, resultOf(t, r.stdout))
		return func() result {
			env := maps.Clone(env)
			env["CNI_COMMAND"] = "CHECK"
			for i := 0; ; i++ {
				r := run(t, l.host, plugin, env, cc)
				if r.code == 0 || i == 10 || r.err(t).Code != 11 {
					return r
				}
				time.Sleep(500 * time.Millisecond)
			}
		}, mac
	}
	// wireFails checks, then makes station() send from mac and checks
	// again.
	wireFails := func(t *testing.T, check func() result, station func() *testenv.Endpoint, mac net.HardwareAddr) {
		t.Helper()
		if r := check(); r.code != 0 {
			t.Fatalf("CHECK right after ADD: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		stop := sendGARPs(t, station(), mac)
		defer stop()
		r := check()
		if r.code == 0 {
			t.Fatal("CHECK passed with another station sending from the attachment's MAC: the wire part did not run")
		}
		if e := r.err(t); e.Code != 101 || !strings.Contains(e.Details, "another station uses this MAC") {
			t.Errorf("CHECK: %+v, want code 101", e)
		}
	}

	t.Run("proc path", func(t *testing.T) {
		path, _ := sandboxProcess(t)
		check, mac := addAt(t, "wproc", path, conf)
		l.add(t, "wproc-sib", conf)
		wireFails(t, check, func() *testenv.Endpoint { return l.parent.Switch.Attach(t, testenv.EndpointOptions{MAC: mac}) }, mac)
	})
	t.Run("bind mount", func(t *testing.T) {
		path, _ := sandboxProcess(t)
		bind := filepath.Join(t.TempDir(), "ns")
		if err := os.WriteFile(bind, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(path, bind, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind mount %s: %v", path, err)
		}
		t.Cleanup(func() { unix.Unmount(bind, unix.MNT_DETACH) })
		check, mac := addAt(t, "wbind", bind, conf)
		l.add(t, "wbind-sib", conf)
		wireFails(t, check, func() *testenv.Endpoint { return l.parent.Switch.Attach(t, testenv.EndpointOptions{MAC: mac}) }, mac)
	})
	t.Run("linkInContainer", func(t *testing.T) {
		// The container holds the master cm0; its wire cm1 leads to a
		// namespace standing in for the switch.
		c := testenv.NewNetNS(t)
		sw := testenv.NewNetNS(t)
		c.Run(t, "ip", "link", "add", "cm0", "type", "veth", "peer", "name", "cm1", "netns", sw.Name())
		c.SetUp(t, "cm0")
		sw.SetUp(t, "cm1")
		// The master's own address is the path the wire check probes
		// (the container's only attachment has no sibling).
		c.AddAddr(t, "cm0", netip.MustParsePrefix("172.16.123.1/24"))
		lic := tutorialConf(t, "vmlink", "1.1.0", l.ipam, map[string]any{"master": "cm0", "linkInContainer": true})
		check, mac := addAt(t, "wlic", c.Path(), lic)
		wireFails(t, check, func() *testenv.Endpoint { return &testenv.Endpoint{NetNS: sw, Interface: "cm1"} }, mac)
	})
}

// TestCheckWireNothingToProbe: an attachment alone on a master without an
// address (linkInContainer's usual case) has no path the wire part could
// probe: CHECK passes on the configuration but says on stderr that the
// wire was not proven, rather than passing it silently.
func TestCheckWireNothingToProbe(t *testing.T) {
	hostTierOnly(t)
	l := newLab(t)
	c := testenv.NewNetNS(t)
	c.Run(t, "ip", "link", "add", "cm0", "type", "veth", "peer", "name", "cm1")
	c.SetUp(t, "cm0", "cm1")
	conf := tutorialConf(t, "vmlink", "1.1.0", l.ipam, map[string]any{"master": "cm0", "linkInContainer": true})
	r := l.vmlink(t, "ADD", "lone", c, conf)
	if r.code != 0 {
		t.Fatalf("ADD: exit %d: %s", r.code, r.stdout)
	}
	t.Cleanup(func() { l.vmlink(t, "DEL", "lone", c, conf) })
	a := &attachment{c: c, id: "lone", conf: conf}
	if err := json.Unmarshal(r.stdout, &a.result); err != nil {
		t.Fatal(err)
	}
	r = l.check(t, a)
	if r.code != 0 {
		t.Fatalf("CHECK: exit %d: %s", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, "eth0: not proven on the wire: no sibling attachment and no address on cm0") {
		t.Errorf("CHECK passed without saying the wire was not proven; stderr: %q", r.stderr)
	}
}
