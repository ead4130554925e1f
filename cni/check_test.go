package cni_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"

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
	var m map[string]any
	json.Unmarshal([]byte(a.conf), &m)
	m["prevResult"] = a.result
	b, _ := json.Marshal(m)
	return l.checkConf(t, a.id, a.c, string(b))
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
	var m map[string]any
	json.Unmarshal([]byte(a.conf), &m)
	m["prevResult"] = a.result
	b, _ := json.Marshal(m)
	r := l.vmlink(t, "CHECK", a.id, a.c, string(b))
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
	if out := a.c.Run(t, "ip", "-6", "addr", "show", "dev", "eth0", "tentative"); out != "" {
		t.Errorf("still tentative after CHECK passed: %s", out)
	}
}
