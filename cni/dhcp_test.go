package cni_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv"
)

// busybox is Debian's busybox-static: its udhcpd is the DHCP server.
const busybox = "/bin/busybox"

// startProcess starts cmd in ns and stops it by its PID when the test
// ends, however it ends.
func startProcess(t *testing.T, ns *testenv.NetNS, cmd *exec.Cmd) {
	t.Helper()
	if err := ns.Start(cmd); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := cmd.Wait(); err != nil && cmd.ProcessState == nil {
			t.Errorf("wait for %s (pid %d): %v", cmd.Path, pid, err)
		}
	})
}

// waitFor polls cond every 50 ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestIPAMDHCP: IPAM dhcp as the reference plugins use it. Debian's dhcp
// daemon runs in the plugin's namespace on a socket of its own (its
// -socketpath, and the configuration's daemonSocketPath), busybox's udhcpd
// serves the master's segment from a station on the switch. ADD gets a
// lease (the daemon runs its client on the container's interface, so the
// plugin makes the link before it asks the IPAM plugin), CHECK passes, and
// DEL releases the lease.
func TestIPAMDHCP(t *testing.T) {
	hostTierOnly(t)
	l := newLab(t)
	for _, f := range []string{busybox, filepath.Join(refDir, "dhcp")} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("no %s: install busybox-static and containernetworking-plugins", f)
		}
	}
	dir := t.TempDir()
	server := l.parent.Switch.Attach(t, testenv.EndpointOptions{Addrs: []netip.Prefix{netip.MustParsePrefix("172.16.130.1/24")}})
	leases := filepath.Join(dir, "udhcpd.leases")
	udhcpdConf := filepath.Join(dir, "udhcpd.conf")
	if err := os.WriteFile(leases, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(udhcpdConf, []byte(fmt.Sprintf(`start 172.16.130.100
end 172.16.130.150
interface %s
lease_file %s
pidfile %s
option subnet 255.255.255.0
option router 172.16.130.1
option lease 600
`, server.Interface, leases, filepath.Join(dir, "udhcpd.pid"))), 0o644); err != nil {
		t.Fatal(err)
	}
	udhcpd := exec.Command(busybox, "udhcpd", "-f", udhcpdConf)
	var serverLog strings.Builder
	udhcpd.Stdout, udhcpd.Stderr = &serverLog, &serverLog
	startProcess(t, server.NetNS, udhcpd)

	sock := filepath.Join(dir, "dhcp.sock")
	daemon := exec.Command(filepath.Join(refDir, "dhcp"), "daemon", "-socketpath", sock, "-pidfile", filepath.Join(dir, "dhcp.pid"), "-timeout", "10s")
	var daemonLog strings.Builder
	daemon.Stdout, daemon.Stderr = &daemonLog, &daemonLog
	startProcess(t, l.host, daemon)
	if !waitFor(5*time.Second, func() bool { _, err := os.Stat(sock); return err == nil }) {
		t.Fatalf("the dhcp daemon made no socket %s: %s", sock, daemonLog.String())
	}
	defer func() {
		if t.Failed() {
			t.Logf("dhcp daemon:\n%s\nudhcpd:\n%s", daemonLog.String(), serverLog.String())
		}
	}()

	conf := tutorialConf(t, "vmlink", "1.0.0", l.ipam, map[string]any{"ipam": map[string]any{"type": "dhcp", "daemonSocketPath": sock}})
	c := testenv.NewNetNS(t)
	r := l.vmlink(t, "ADD", "dhcp", c, conf)
	if r.code != 0 {
		t.Fatalf("ADD: exit %d: %s", r.code, r.stdout)
	}
	deleted := false
	defer func() {
		if !deleted {
			l.vmlink(t, "DEL", "dhcp", c, conf)
		}
	}()
	var res struct {
		IPs []struct {
			Address string `json:"address"`
			Gateway string `json:"gateway"`
		} `json:"ips"`
		Interfaces []struct {
			Mac string `json:"mac"`
		} `json:"interfaces"`
	}
	if err := json.Unmarshal(r.stdout, &res); err != nil || len(res.IPs) != 1 || len(res.Interfaces) != 1 {
		t.Fatalf("ADD result: %s", r.stdout)
	}
	addr, err := netip.ParsePrefix(res.IPs[0].Address)
	if err != nil || !netip.MustParsePrefix("172.16.130.0/24").Contains(addr.Addr()) || addr.Addr().As4()[3] < 100 || addr.Addr().As4()[3] > 150 ||
		res.IPs[0].Gateway != "172.16.130.1" {
		t.Fatalf("ADD result is not udhcpd's lease: %s", r.stdout)
	}
	if out := c.Run(t, "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(out, addr.String()) {
		t.Errorf("the lease %s is not on eth0: %s", addr, out)
	}
	if out := c.Run(t, "ip", "route", "show", "default"); !strings.Contains(out, "via 172.16.130.1 dev eth0") {
		t.Errorf("no default route via the lease's router: %s", out)
	}
	if out, err := c.Exec(t.Context(), "ping", "-c", "1", "-W", "3", "172.16.130.1"); err != nil {
		t.Errorf("the container cannot reach the DHCP server on its lease: %v: %s", err, out)
	}
	// The server's view: the lease is the container's MAC's.
	if !waitFor(5*time.Second, func() bool { return strings.Contains(dumpLeases(t, server, udhcpd, leases), res.Interfaces[0].Mac) }) {
		t.Errorf("udhcpd has no lease for %s: %s", res.Interfaces[0].Mac, dumpLeases(t, server, udhcpd, leases))
	}

	prev := resultOf(t, r.stdout)
	a := &attachment{c: c, id: "dhcp", conf: conf, result: prev}
	if r := l.checkConf(t, a.id, c, withPrevResult(t, conf, prev)); r.code != 0 {
		t.Errorf("CHECK: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}

	if r := l.vmlink(t, "DEL", "dhcp", c, conf); r.code != 0 {
		t.Fatalf("DEL: exit %d: %s", r.code, r.stdout)
	}
	deleted = true
	if got := linkNames(t, c); len(got) != 0 {
		t.Errorf("after DEL: links %v", got)
	}
	// DHCPRELEASE: udhcpd ends the lease at once.
	if !waitFor(5*time.Second, func() bool {
		for _, line := range strings.Split(dumpLeases(t, server, udhcpd, leases), "\n") {
			if strings.HasPrefix(line, res.Interfaces[0].Mac) {
				return strings.HasSuffix(strings.TrimSpace(line), "expired")
			}
		}
		return false
	}) {
		t.Errorf("udhcpd still holds the lease after DEL: %s", dumpLeases(t, server, udhcpd, leases))
	}
}

// dumpLeases makes udhcpd write its leases (SIGUSR1) and lists them.
func dumpLeases(t *testing.T, server *testenv.Endpoint, udhcpd *exec.Cmd, file string) string {
	t.Helper()
	_ = udhcpd.Process.Signal(syscall.SIGUSR1)
	time.Sleep(100 * time.Millisecond)
	out, _ := server.Exec(t.Context(), busybox, "dumpleases", "-f", file)
	return out
}
