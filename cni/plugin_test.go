package cni_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/vmlink/vmlink/testenv"
)

// TestBadConfig: every refused configuration answers CNI error JSON with
// the spec's code, exits non-zero, creates no link and takes no address.
func TestBadConfig(t *testing.T) {
	hostTierOnly(t)
	l := newLab(t)
	c := testenv.NewNetNS(t)
	hostBefore := linkNames(t, l.host)
	const v = "1.0.0"
	type tc struct {
		name  string
		extra map[string]any
		raw   string            // the whole stdin instead
		env   map[string]string // environment overrides
		code  uint
		msg   string // part of msg
	}
	ipamNoType := map[string]any{"subnet": "172.16.123.0/24", "dataDir": l.ipam}
	cases := []tc{
		{name: "unknown kind", extra: map[string]any{"kind": "bond"}, code: 7, msg: "kind"},
		{name: "unknown macvlan mode", extra: map[string]any{"mode": "bridged"}, code: 7, msg: "mode"},
		{name: "unknown ipvlan mode", extra: map[string]any{"kind": "ipvlan", "mode": "l4"}, code: 7, msg: "mode"},
		{name: "vlanId 4095", extra: map[string]any{"kind": "vlan", "mode": nil, "vlanId": 4095}, code: 7, msg: "4094"},
		{name: "vlanId negative", extra: map[string]any{"kind": "vlan", "mode": nil, "vlanId": -1}, code: 7, msg: "vlanId"},
		{name: "mtu above the master's", extra: map[string]any{"mtu": 9000}, code: 7, msg: "MTU 1500"},
		{name: "mtu below the minimum", extra: map[string]any{"mtu": 50}, code: 7, msg: "mtu"},
		{name: "mtu negative", extra: map[string]any{"mtu": -1}, code: 7, msg: "mtu"},
		{name: "master missing", extra: map[string]any{"master": "nosuch0"}, code: 7, msg: "nosuch0"},
		{name: "master loopback", extra: map[string]any{"master": "lo"}, code: 7, msg: "loopback"},
		{name: "bad mac", extra: map[string]any{"mac": "zz:00:00:00:00:01"}, code: 7, msg: "mac"},
		{name: "multicast mac", extra: map[string]any{"mac": "01:00:5e:00:00:01"}, code: 7, msg: "multicast"},
		{name: "nopromisc outside passthru", extra: map[string]any{"nopromisc": true}, code: 7, msg: "passthru"},
		{name: "ipam without type", extra: map[string]any{"ipam": ipamNoType}, code: 7, msg: "ipam.type"},
		{name: "malformed JSON", raw: `{"cniVersion":"1.0.0","name":"x",`, code: 6},
		{name: "unsupported cniVersion 0.2.0", extra: map[string]any{"cniVersion": "0.2.0"}, code: 1, msg: "incompatible"},
		{name: "unsupported cniVersion 9.9.9", extra: map[string]any{"cniVersion": "9.9.9"}, code: 1, msg: "incompatible"},
		{name: "missing cniVersion", extra: map[string]any{"cniVersion": nil}, code: 1, msg: "incompatible"},
		{name: "macaddr outside source mode", extra: map[string]any{"macaddr": []string{"02:00:00:00:00:09"}}, code: 7, msg: "source"},
		{name: "macaddr not a MAC", extra: map[string]any{"mode": "source", "macaddr": []string{"nope"}}, code: 7, msg: "macaddr"},
		{name: "macaddr twice", extra: map[string]any{"mode": "source", "macaddr": []string{"02:00:00:00:00:09", "02:00:00:00:00:09"}}, code: 7, msg: "twice"},
		{name: "flag on macvlan", extra: map[string]any{"flag": "private"}, code: 7, msg: "flag"},
		{name: "unknown ipvlan flag", extra: map[string]any{"kind": "ipvlan", "mode": "l2", "flag": "lol"}, code: 7, msg: "flag"},
		{name: "vlanId on macvlan", extra: map[string]any{"vlanId": 10}, code: 7, msg: "vlanId"},
		{name: "unknown vlan protocol", extra: map[string]any{"kind": "vlan", "mode": nil, "vlanId": 10, "protocol": "802.1x"}, code: 7, msg: "protocol"},
		{name: "bcqueuelen on ipvlan", extra: map[string]any{"kind": "ipvlan", "mode": "l2", "bcqueuelen": 100}, code: 7, msg: "bcqueuelen"},
		{name: "mac on ipvlan", extra: map[string]any{"kind": "ipvlan", "mode": "l2", "mac": "02:00:00:00:00:01"}, code: 7, msg: "mac"},
		{name: "mode on vlan", extra: map[string]any{"kind": "vlan", "vlanId": 10}, code: 7, msg: "mode"},
		{name: "vlan without master", extra: map[string]any{"kind": "vlan", "mode": nil, "vlanId": 10, "master": nil}, code: 7, msg: "master"},
		{name: "bad mac in CNI_ARGS", env: map[string]string{"CNI_ARGS": "IgnoreUnknown=1;MAC=nope"}, code: 7, msg: "mac"},
		{name: "multicast runtimeConfig.mac", extra: map[string]any{"runtimeConfig": map[string]any{"mac": "03:00:00:00:00:01"}}, code: 7, msg: "multicast"},
		{name: "network name with a space", extra: map[string]any{"name": "bad name"}, code: 7, msg: "network name"},
		{name: "interface name too long", env: map[string]string{"CNI_IFNAME": "averyverylongname0"}, code: 4, msg: "too long"},
		{name: "no CNI_NETNS", env: map[string]string{"CNI_NETNS": ""}, code: 4, msg: "CNI_NETNS"},
		{name: "no CNI_COMMAND", env: map[string]string{"CNI_COMMAND": ""}, code: 4, msg: "CNI_COMMAND"},
		{name: "IPAM plugin not in CNI_PATH", extra: map[string]any{"ipam": map[string]any{"type": "nosuch-ipam"}}, code: 999, msg: "nosuch-ipam"},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, cs := range cases {
		t.Run(strings.ReplaceAll(cs.name, " ", "_"), func(t *testing.T) {
			conf := cs.raw
			if conf == "" {
				conf = tutorialConf(t, "vmlink", v, l.ipam, cs.extra)
			}
			env := l.env(t, "ADD", "bad", c)
			for k, val := range cs.env {
				if val == "" {
					delete(env, k)
				} else {
					env[k] = val
				}
			}
			r := run(t, l.host, pluginDir(t)+"/vmlink", env, conf)
			if r.code == 0 {
				t.Fatalf("ADD succeeded: %s", r.stdout)
			}
			e := r.err(t)
			if e.Code != cs.code || !strings.Contains(e.Msg+e.Details, cs.msg) {
				t.Errorf("error %+v, want code %d and %q in msg/details", e, cs.code, cs.msg)
			}
			if got := linkNames(t, c); len(got) != 0 {
				t.Errorf("the container has links %v after a refused ADD", got)
			}
			if got := linkNames(t, l.host); !slices.Equal(got, hostBefore) {
				t.Errorf("host links %v, before %v", got, hostBefore)
			}
			if got := ipamFiles(t, l.ipam); len(got) != 0 {
				t.Errorf("host-local holds %v after a refused ADD", got)
			}
			if got := records(t, stateDir(l.ipam)); len(got) != 0 {
				t.Errorf("the plugin keeps attachment records %v after a refused ADD", got)
			}
		})
	}
}

// TestTutorialRawProtocol runs the tutorial's command line with vmlink's
// type: ADD, CHECK with the result, DEL, and DEL again; then DEL once the
// namespace is gone.
func TestTutorialRawProtocol(t *testing.T) {
	hostTierOnly(t)
	l := newLab(t)
	c := testenv.NewNetNS(t)
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			conf := tutorialConf(t, "vmlink", v, l.ipam, nil)
			r := l.vmlink(t, "ADD", "macvlan-demo", c, conf)
			if r.code != 0 {
				t.Fatalf("ADD: exit %d: %s %s", r.code, r.stdout, r.stderr)
			}
			var res struct {
				CNIVersion string `json:"cniVersion"`
				Interfaces []struct{ Name, Mac, Sandbox string }
				IPs        []struct {
					Interface *int
					Address   string
					Gateway   string
				} `json:"ips"`
			}
			if err := json.Unmarshal(r.stdout, &res); err != nil {
				t.Fatal(err)
			}
			if res.CNIVersion != v || len(res.Interfaces) != 1 || res.Interfaces[0].Sandbox != c.Path() || res.Interfaces[0].Name != "eth0" ||
				len(res.IPs) != 1 || res.IPs[0].Interface == nil || *res.IPs[0].Interface != 0 || res.IPs[0].Gateway != "172.16.123.254" {
				t.Fatalf("result: %s", r.stdout)
			}
			link := ipJSON(t, c, "-d", "link", "show", "eth0")[0]
			if link["address"] != res.Interfaces[0].Mac {
				t.Errorf("result MAC %s, link %v", res.Interfaces[0].Mac, link["address"])
			}
			if v != "0.3.0" && v != "0.3.1" {
				if r := l.checkConf(t, "macvlan-demo", c, withPrevResult(t, conf, resultOf(t, r.stdout))); r.code != 0 {
					t.Errorf("CHECK right after ADD: exit %d: %s", r.code, r.stdout)
				}
			}
			for i := 0; i < 2; i++ {
				if r := l.vmlink(t, "DEL", "macvlan-demo", c, conf); r.code != 0 {
					t.Fatalf("DEL %d: exit %d: %s", i+1, r.code, r.stdout)
				}
			}
			if got := linkNames(t, c); len(got) != 0 {
				t.Errorf("links after DEL: %v", got)
			}
			if got := ipamFiles(t, l.ipam); len(got) != 0 {
				t.Errorf("allocations after DEL: %v", got)
			}
		})
	}
	t.Run("DEL without netns or master", func(t *testing.T) {
		conf := tutorialConf(t, "vmlink", "1.0.0", l.ipam, map[string]any{"master": "gone0"})
		env := l.env(t, "DEL", "gone", nil)
		env["CNI_NETNS"] = "/run/netns/vmlink-no-such-ns"
		if r := run(t, l.host, pluginDir(t)+"/vmlink", env, conf); r.code != 0 {
			t.Fatalf("DEL: exit %d: %s", r.code, r.stdout)
		}
	})
	t.Run("VERSION", func(t *testing.T) {
		r := l.vmlink(t, "VERSION", "", nil, "")
		var vi struct {
			Versions []string `json:"supportedVersions"`
		}
		if r.code != 0 || json.Unmarshal(r.stdout, &vi) != nil || !slices.Equal(vi.Versions, []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}) {
			t.Errorf("VERSION: exit %d: %s", r.code, r.stdout)
		}
	})
	t.Run("STATUS", func(t *testing.T) {
		conf := tutorialConf(t, "vmlink", "1.1.0", l.ipam, nil)
		if r := l.vmlink(t, "STATUS", "", nil, conf); r.code != 0 {
			t.Errorf("STATUS with p0 up: exit %d: %s", r.code, r.stdout)
		}
		conf = tutorialConf(t, "vmlink", "1.1.0", l.ipam, map[string]any{"master": "gone0"})
		if r := l.vmlink(t, "STATUS", "", nil, conf); r.code == 0 || r.err(t).Code != 50 {
			t.Errorf("STATUS without master: exit %d: %s", r.code, r.stdout)
		}
	})
}
