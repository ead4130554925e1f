//go:build runtime

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmlink/vmlink/testenv"
	"github.com/vmlink/vmlink/testenv/runtime"
	"github.com/vmlink/vmlink/verify/capture"
)

// The runtime tier (make test-runtime): macvlan networks built by the real
// runtimes, verified by the real CLI, every pair checked against ping.

// verifyJSON is the part of verify's JSON report these tests read.
type verifyJSON struct {
	OK          bool `json:"ok"`
	PairsProbed int  `json:"pairs_probed"`
	PairsTotal  int  `json:"pairs_total"`
	Pairs       []struct {
		From, To string
		FromName string `json:"from_name"`
		ToName   string `json:"to_name"`
		Expected string `json:"expected"`
		Observed string `json:"observed"`
		OK       bool   `json:"ok"`
	} `json:"pairs"`
	Endpoints []struct {
		ID    string   `json:"id"`
		Name  string   `json:"name"`
		MAC   string   `json:"mac"`
		Addrs []string `json:"addrs"`
		NetNS *struct {
			Inode       uint64 `json:"inode"`
			PID         int    `json:"pid"`
			Runtime     string `json:"runtime"`
			ContainerID string `json:"container_id"`
		} `json:"netns"`
	} `json:"endpoints"`
}

// runVerify runs `vmlink -n NS verify ARGS -j` in process and decodes the
// report.
func runVerifyJSON(t *testing.T, ns string, args ...string) (int, *verifyJSON, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"-n", ns, "verify"}, append(args, "-j")...), &out, &errOut)
	if out.Len() == 0 {
		return code, nil, errOut.String()
	}
	var rep verifyJSON
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("verify %v: exit %d, JSON: %v\n%s%s", args, code, err, out.String(), errOut.String())
	}
	return code, &rep, out.String() + errOut.String()
}

// pinger answers whether from reaches the address to: ping truth.
type pinger func(ctx context.Context, from, to string) bool

// checkAgainstPing checks the report's every pair against ping from the
// pair's source to the destination's first IPv4 address, pinging all pairs
// at once, and that the names are the runtime's (want: endpoint names).
func checkAgainstPing(t *testing.T, rep *verifyJSON, want []string, ping pinger) {
	t.Helper()
	var names []string
	addr := map[string]string{}
	for _, ep := range rep.Endpoints {
		names = append(names, ep.Name)
		for _, a := range ep.Addrs {
			if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
				addr[ep.Name] = p.Addr().String()
				break
			}
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Errorf("endpoints %v, want %v", names, want)
	}
	if rep.PairsProbed != len(want)*(len(want)-1) || rep.PairsTotal != rep.PairsProbed {
		t.Errorf("probed %d of %d pairs, want all %d", rep.PairsProbed, rep.PairsTotal, len(want)*(len(want)-1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	truth := make([]bool, len(rep.Pairs))
	var wg sync.WaitGroup
	for i, p := range rep.Pairs {
		wg.Go(func() { truth[i] = ping(ctx, p.FromName, addr[p.ToName]) })
	}
	wg.Wait()
	for i, p := range rep.Pairs {
		ping := "blocked"
		if truth[i] {
			ping = "reachable"
		}
		if p.Observed != ping || p.Expected != ping || !p.OK {
			t.Errorf("%s → %s: verify observed %s (expected %s, ok %v), ping says %s", p.FromName, p.ToName, p.Observed, p.Expected, p.OK, ping)
		}
	}
}

// hostPing pings from a sandbox namespace with iputils' ping.
func hostPing(ctx context.Context, ns *testenv.NetNS, to string) bool {
	_, err := ns.Exec(ctx, "ping", "-c", "1", "-W", "2", to)
	return err == nil
}

// TestRuntimeDockerMacvlan: dockerd in a sandbox "host" with four parents,
// each on a switch of its own, and a macvlan network of each mode created
// by dockerd itself (bridge, private, vepa on a reflecting switch, vepa on
// one that does not reflect), two containers on each. vmlink verify, run
// as the CLI with -n into the sandbox, must find the containers by their
// Docker names (its namespaces live under dockerd's own exec root, not
// /var/run/docker) and agree with ping on every ordered pair, the host
// stack included. Filters narrow it to containers and networks.
func TestRuntimeDockerMacvlan(t *testing.T) {
	host := testenv.NewNetNS(t)
	nets := []struct {
		parent, mode, net string
		hairpin           bool
		a, b              string
	}{
		{"eth0", "bridge", "mac_bridge", false, "b1", "b2"},
		{"eth1", "private", "mac_private", false, "c1", "c2"},
		{"eth2", "vepa", "mac_vepa_refl", true, "d1", "d2"},
		{"eth3", "vepa", "mac_vepa", false, "e1", "e2"},
	}
	for i, n := range nets {
		testenv.NewParent(t, testenv.ParentOptions{Name: n.parent, Host: host, Hairpin: n.hairpin,
			Addrs: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("172.16.1%d.254/24", i))}})
	}
	d := runtime.StartDocker(t, host)
	for i, n := range nets {
		d.CLI(t, "network", "create", "-d", "macvlan", fmt.Sprintf("--subnet=172.16.1%d.0/24", i),
			fmt.Sprintf("--gateway=172.16.1%d.1", i), "-o", "parent="+n.parent, "-o", "macvlan_mode="+n.mode, n.net)
		for j, c := range []string{n.a, n.b} {
			d.CLI(t, "run", "-d", "--name", c, fmt.Sprintf("--ip=172.16.1%d.%d", i, 10+j), "--network", n.net,
				runtime.DockerImage, "sleep", "3600")
		}
	}
	ping := func(ctx context.Context, from, to string) bool {
		if from == "host" {
			return hostPing(ctx, host, to)
		}
		c := strings.TrimSuffix(strings.TrimPrefix(from, "docker:"), "/eth0")
		_, err := d.Exec(ctx, "exec", c, "ping", "-c", "1", "-W", "2", to)
		return err == nil
	}
	for _, n := range nets {
		t.Run(n.net, func(t *testing.T) {
			code, rep, out := runVerifyJSON(t, host.Name(), "--parent", n.parent, "--docker-host", d.Host())
			if rep == nil {
				t.Fatalf("verify: exit %d: %s", code, out)
			}
			if code != exitOK || !rep.OK {
				t.Errorf("verify: exit %d, ok %v:\n%s", code, rep.OK, out)
			}
			checkAgainstPing(t, rep, []string{"docker:" + n.a + "/eth0", "docker:" + n.b + "/eth0", "host"}, ping)
			for _, ep := range rep.Endpoints {
				if ep.Name != "host" && (ep.NetNS == nil || ep.NetNS.Runtime != "docker" || len(ep.NetNS.ContainerID) != 64 || ep.NetNS.Inode == 0 || ep.NetNS.PID == 0) {
					t.Errorf("%s: identity %+v, want docker's container id, an inode and a pid", ep.Name, ep.NetNS)
				}
			}
		})
	}
	// capture names a frame's owner the same way: docker:b1/eth0.
	t.Run("capture-owners", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		owners, err := capture.DiscoverOwners(ctx, d.Host())
		if err != nil {
			t.Logf("DiscoverOwners: %v (other namespaces may vanish meanwhile)", err)
		}
		_, rep, out := runVerifyJSON(t, host.Name(), "--parent", "eth0", "--docker-host", d.Host(), "--no-capture")
		if rep == nil {
			t.Fatalf("verify: %s", out)
		}
		seen := 0
		for _, ep := range rep.Endpoints {
			if ep.Name == "host" {
				continue
			}
			hw, err := net.ParseMAC(ep.MAC)
			if err != nil {
				t.Fatalf("%s: MAC %q: %v", ep.Name, ep.MAC, err)
			}
			if got := owners.Owner(capture.MACFrom(hw)); got != ep.Name {
				t.Errorf("owner of %s = %q, want %q", ep.MAC, got, ep.Name)
			}
			seen++
		}
		if seen != 2 {
			t.Errorf("checked %d container MACs, want 2", seen)
		}
	})
	t.Run("filters", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"--container", "b1"}, []string{"docker:b1/eth0", "host"}},
			{[]string{"--container", "docker:b2"}, []string{"docker:b2/eth0", "host"}},
			{[]string{"--network", "mac_bridge"}, []string{"docker:b1/eth0", "docker:b2/eth0", "host"}},
			{[]string{"--netns", "docker:b2"}, []string{"docker:b2/eth0", "host"}},
		} {
			code, rep, out := runVerifyJSON(t, host.Name(), append([]string{"--parent", "eth0", "--docker-host", d.Host(), "--no-capture"}, tc.args...)...)
			if rep == nil || code != exitOK {
				t.Errorf("%v: exit %d: %s", tc.args, code, out)
				continue
			}
			var got []string
			for _, ep := range rep.Endpoints {
				got = append(got, ep.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%v: endpoints %v, want %v", tc.args, got, tc.want)
			}
		}
		// A network that exists on another parent leaves nothing here.
		if code, _, out := runVerifyJSON(t, host.Name(), "--parent", "eth0", "--docker-host", d.Host(), "--network", "mac_private"); code != exitEnvError || !strings.Contains(out, "--network mac_private left out 2") {
			t.Errorf("--network of another parent: exit %d: %s", code, out)
		}
	})
}

// TestRuntimePodmanMacvlan: a Podman (CNI) macvlan network in a sandbox,
// two containers; verify names them podman:p1 and podman:p2 (not the
// netns-UUID their namespaces are named) and agrees with ping.
func TestRuntimePodmanMacvlan(t *testing.T) {
	p := testenv.NewParent(t, testenv.ParentOptions{Name: "eth0", Addrs: []netip.Prefix{netip.MustParsePrefix("172.16.20.254/24")}})
	pm := runtime.NewPodman(t, p.Host, runtime.PodmanOptions{})
	net := fmt.Sprintf("vmlt-pmac-%d", time.Now().UnixNano()%1000000)
	pm.CLI(t, "network", "create", "-d", "macvlan", "--subnet", "172.16.20.0/24", "-o", "parent=eth0", net)
	for i, c := range []string{"p1", "p2"} {
		pm.Run(t, "--name", c, "--ip", fmt.Sprintf("172.16.20.%d", 10+i), "--network", net, runtime.PodmanImage, "sleep", "3600")
	}
	code, rep, out := runVerifyJSON(t, p.Host.Name(), "--parent", "eth0")
	if rep == nil {
		t.Fatalf("verify: exit %d: %s", code, out)
	}
	if code != exitOK || !rep.OK {
		t.Errorf("verify: exit %d, ok %v:\n%s", code, rep.OK, out)
	}
	checkAgainstPing(t, rep, []string{"host", "podman:p1/eth0", "podman:p2/eth0"}, func(ctx context.Context, from, to string) bool {
		if from == "host" {
			return hostPing(ctx, p.Host, to)
		}
		c := strings.TrimSuffix(strings.TrimPrefix(from, "podman:"), "/eth0")
		_, err := pm.Exec(ctx, "exec", c, "ping", "-c", "1", "-W", "2", to)
		return err == nil
	})
}
