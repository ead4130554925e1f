package dataplane

import (
	"errors"
	"strings"
	"testing"
)

const goodTopology = `
name: demo
host: h
parents:
  - name: p0
    sandbox: {switch: sw, hairpin: true}
    addresses: [10.1.0.1/24]
networks:
  - {name: n1, parent: p0, mode: bridge, subnets: [10.1.0.0/24, "fd00:1::/64"], gateways: [10.1.0.254]}
  - {name: n2, parent: p0.20, mode: vepa, subnets: [10.2.0.0/24]}
endpoints:
  - {name: c1, interfaces: [{network: n1}, {network: n2}]}
  - {name: c2, netns: other, interfaces: [{network: n1, addresses: [10.1.0.1/24]}]}
`

func TestParseValid(t *testing.T) {
	_, err := Parse(strings.NewReader(goodTopology))
	// c2 takes the parent's host address: the allocation step (not Parse)
	// refuses that, so Parse accepts the file.
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
}

func TestParseRefusals(t *testing.T) {
	base := "name: x\nparents: [{name: p0, sandbox: {switch: sw}}]\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", base + "networkz: []\n", "field networkz not found"},
		{"lo parent", "name: x\nnetworks: [{name: n, parent: lo}]\n", "loopback"},
		{"bad mode", base + "networks: [{name: n, parent: p0, mode: bridged}]\n", `networks[0].mode "bridged": unknown macvlan mode: use private, vepa, bridge, passthru or source`},
		{"bad driver", base + "networks: [{name: n, parent: p0, driver: bond}]\n", "not supported"},
		{"passthru twice", base + "networks: [{name: a, parent: p0, mode: passthru}, {name: b, parent: p0, mode: passthru}]\n", "passthru takes the parent alone"},
		{"passthru shared", base + "networks: [{name: a, parent: p0, mode: passthru}, {name: b, parent: p0}]\n", "taken by passthru"},
		{"passthru mac", base + "networks: [{name: a, parent: p0, mode: passthru}]\nendpoints: [{name: e, interfaces: [{network: a, mac: '02:00:00:00:00:01'}]}]\n", "takes the parent's MAC"},
		{"addr outside", base + "networks: [{name: a, parent: p0, subnets: [10.0.0.0/24]}]\nendpoints: [{name: e, interfaces: [{network: a, addresses: [10.0.1.2/24]}]}]\n", "outside every subnet"},
		{"bare address", base + "networks: [{name: a, parent: p0}]\nendpoints: [{name: e, interfaces: [{network: a, addresses: [10.0.1.2]}]}]\n", "missing prefix length"},
		{"gateway outside", base + "networks: [{name: a, parent: p0, subnets: [10.0.0.0/24], gateways: [10.0.1.1]}]\n", "outside every subnet"},
		{"overlapping subnets", base + "networks: [{name: a, parent: p0, subnets: [10.0.0.0/16, 10.0.1.0/24]}]\n", "overlaps"},
		{"host bits", base + "networks: [{name: a, parent: p0, subnets: [10.0.0.1/24]}]\n", "host bits"},
		{"unknown network", base + "endpoints: [{name: e, interfaces: [{network: nope}]}]\n", "no such network"},
		{"netns shared", base + "networks: [{name: a, parent: p0}]\nendpoints: [{name: e, netns: n, interfaces: [{network: a}]}, {name: f, netns: n, interfaces: [{network: a}]}]\n", "already used by endpoint e"},
		{"source macs elsewhere", base + "networks: [{name: a, parent: p0}]\nendpoints: [{name: e, interfaces: [{network: a, source_macs: ['02:00:00:00:00:01']}]}]\n", "source_macs: network a: a list of source MACs is only valid in source mode, not bridge"},
		{"nopromisc outside passthru", base + "networks: [{name: a, parent: p0, mode: vepa, nopromisc: true}]\n", "networks[0].nopromisc: only valid in passthru mode, not vepa"},
		{"nodst outside source", base + "networks: [{name: a, parent: p0, nodst: true}]\n", "networks[0].nodst: only valid in source mode, not bridge"},
		{"nopromisc on ipvlan", base + "networks: [{name: a, parent: p0, driver: ipvlan, nopromisc: true}]\n", "not an ipvlan option"},
		{"lo parent declared", "name: x\nparents: [{name: lo}]\n", `parents[0].name "lo": a loopback device cannot be a parent`},
		{"lo VLAN parent", "name: x\nnetworks: [{name: n, parent: lo.5}]\n", `networks[0].parent "lo.5": VLAN parent lo: a loopback device cannot be a parent`},
		{"bad source mac", base + "networks: [{name: a, parent: p0, mode: source}]\nendpoints: [{name: e, interfaces: [{network: a, source_macs: ['02:00:00:00:00']}]}]\n", "source_macs[0] \"02:00:00:00:00\": not a MAC address"},
		{"bad topology name", "name: 'a b'\n", "use letters"},
		{"long ifname", base + "networks: [{name: a, parent: p0}]\nendpoints: [{name: e, interfaces: [{network: a, name: abcdefghijklmnop}]}]\n", "interfaces[0].name"},
		{"shim on ipvlan", base + "networks: [{name: a, parent: p0, driver: ipvlan}]\nhost_shims: [{network: a, name: s, addresses: [10.0.0.1/32]}]\n", "a host shim is a macvlan"},
		{"empty", "", "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestFieldErrorNamesTheField(t *testing.T) {
	_, err := Parse(strings.NewReader("name: x\nnetworks: [{name: n, parent: p0, mode: bridged}]\n"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "networks[0].mode" || fe.Value != "bridged" {
		t.Fatalf("err = %#v, want a FieldError on networks[0].mode", err)
	}
}

func TestWithPrefix(t *testing.T) {
	topo, err := Parse(strings.NewReader(goodTopology))
	if err != nil {
		t.Fatal(err)
	}
	p := topo.WithPrefix("vmlt-1-")
	if p.Name != "vmlt-1-demo" || p.Host != "vmlt-1-h" || p.Parents[0].Sandbox.Switch != "vmlt-1-sw" ||
		p.Endpoints[0].netns() != "vmlt-1-c1" || p.Endpoints[1].netns() != "vmlt-1-other" {
		t.Fatalf("WithPrefix = %+v", p)
	}
	if topo.Host != "h" || topo.Parents[0].Sandbox.Switch != "sw" {
		t.Fatal("WithPrefix changed the original")
	}
	if p.Parents[0].Name != "p0" || p.Endpoints[0].Interfaces[0].name(0) != "eth0" {
		t.Fatal("WithPrefix renamed interfaces: only namespaces get the prefix")
	}
}

func TestSplitVLANParent(t *testing.T) {
	for _, c := range []struct {
		in   string
		base string
		id   uint16
		ok   bool
	}{
		{"eth0.10", "eth0", 10, true},
		{"bond0.4094", "bond0", 4094, true},
		{"eth0.4095", "", 0, false},
		{"eth0", "", 0, false},
		{"eth0.", "", 0, false},
		{".10", "", 0, false},
		{"eth0.x", "", 0, false},
	} {
		base, id, ok := splitVLANParent(c.in)
		if base != c.base || id != c.id || ok != c.ok {
			t.Errorf("splitVLANParent(%q) = %q, %d, %v; want %q, %d, %v", c.in, base, id, ok, c.base, c.id, c.ok)
		}
	}
}

func TestMarkGroup(t *testing.T) {
	a, b := Mark{"lab"}, Mark{"lab2"}
	if a.Group() != (Mark{"lab"}).Group() {
		t.Fatal("Group is not stable")
	}
	if a.Group() == b.Group() {
		t.Fatal("two names, one group")
	}
	for _, m := range []Mark{a, b, {""}, {"x"}} {
		if g := m.Group(); g < 0x10000000 || g > 0x7fffffff {
			t.Fatalf("Group(%q) = %#x, outside 0x10000000–0x7fffffff", m.Topology, g)
		}
	}
	if !a.Owns(a.Group(), "vmlink:lab:ep/c1/eth0") || !a.Owns(a.Group(), "") {
		t.Fatal("Owns refuses its own links")
	}
	if a.Owns(a.Group(), "vmlink:lab2:ep/c1/eth0") || a.Owns(a.Group()+1, "vmlink:lab:x") || a.Owns(a.Group(), "user link") {
		t.Fatal("Owns claims a foreign link")
	}
}

func TestLabsParse(t *testing.T) {
	labs, err := Labs()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range labs {
		names = append(names, l.Name)
		for _, ph := range l.Phases {
			tp := ph.Topology.WithPrefix("vmlab-1-")
			if err := tp.Validate(); err != nil {
				t.Errorf("lab %s phase %s: %v", l.Name, ph.Name, err)
			}
			if err := tp.clone().assignAddresses(); err != nil {
				t.Errorf("lab %s phase %s: addresses: %v", l.Name, ph.Name, err)
			}
		}
	}
	if got := strings.Join(names, ","); got != "host-shim,modes,vlan-trunk" {
		t.Fatalf("labs = %s", got)
	}
	hs, _ := LookupLab("host-shim")
	if len(hs.Phases) != 2 || len(hs.Phases[0].Topology.HostShims) != 0 || len(hs.Phases[1].Topology.HostShims) != 1 {
		t.Fatalf("host-shim phases = %+v", hs.Phases)
	}
	vt, _ := LookupLab("vlan-trunk")
	if vt.Needs != "8021q" {
		t.Fatalf("vlan-trunk needs %q, want 8021q", vt.Needs)
	}
	if _, err := LookupLab("nope"); err == nil || !strings.Contains(err.Error(), "modes") {
		t.Fatalf("LookupLab(nope) = %v, want the list of labs", err)
	}
}

// TestParseAcceptsIPStyleMACs: a MAC written as `ip` accepts it
// (2:0:0:0:0:1) is as good in a topology file as on the command line.
func TestParseAcceptsIPStyleMACs(t *testing.T) {
	topo, err := Parse(strings.NewReader("name: x\nparents: [{name: p0, sandbox: {switch: sw}}]\nnetworks: [{name: a, parent: p0, mode: source}]\n" +
		"endpoints: [{name: e, interfaces: [{network: a, mac: '2:0:0:0:0:1', source_macs: ['2:0:0:0:0:2']}]}]\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if m, err := parseMAC(topo.Endpoints[0].Interfaces[0].MAC); err != nil || m.String() != "02:00:00:00:00:01" {
		t.Errorf("parseMAC = %v, %v", m, err)
	}
}
