package main

import (
	"bytes"
	"strings"
	"testing"
)

// The command-line parsers read what users (and scripts built from
// untrusted names) type: they must refuse or accept, never panic, and a
// refusal is one line.

func FuzzLinkArgs(f *testing.F) {
	for _, s := range []string{
		"add mv1 link p0 type macvlan mode bridge",
		"add v1 link p0 type vlan protocol 802.1ad id 100 reorder_hdr off ingress-qos-map 1:2 egress-qos-map 3:4",
		"add src0 link p0 type macvlan mode source macaddr set 02:00:00:00:00:01 02:00:00:00:00:02",
		"add ipv0 link p0 type ipvlan mode l3 private",
		"set mv1 up mtu 1400 address 02:00:00:00:00:09 netns ns1",
		"set src0 type macvlan macaddr add 02:00:00:00:00:03",
		"del group 7", "show type vlan up", "help macvlan", "batch -",
		"add mv2 link p0 type macvlan mode private bcqueuelen 2000 bclim 8",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, err := parseLinkArgs(strings.Fields(line))
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error spans lines: %q", err)
		}
	})
}

func FuzzLinkBatch(f *testing.F) {
	f.Add([]byte("link add mv1 link p0 type macvlan mode bridge\nlink set mv1 up\n# comment\nlink del mv1\n"))
	f.Add([]byte("add \"a b\" link p0 type macvlan\nadd 'x' link p0 type vlan id 5 # tail\n"))
	f.Add([]byte("link batch x\n"))
	f.Add([]byte("\"unterminated\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := parseBatch(bytes.NewReader(data), "f")
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		for _, l := range lines {
			if l.req == nil || l.no < 1 {
				t.Fatalf("line %+v", l)
			}
		}
	})
}

func FuzzNetCreateFlags(f *testing.F) {
	for _, s := range []string{
		"-d macvlan --subnet 10.0.10.0/24 --gateway 10.0.10.1 --ip-range 10.0.10.128/25 -o parent=eth0.10 -o macvlan_mode=bridge --host-shim n1",
		"--ipv6 --subnet fd00::/64 --subnet 10.0.0.0/24 --aux-address r=10.0.0.254 n2",
		"-d ipvlan -o ipvlan_mode=l3 --internal --subnet 10.1.0.0/16 n3",
		"--help", "-o parent", "--subnet x/31 n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		spec, err := parseNetCreate(strings.Fields(line))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		if spec.Name == "" || spec.Aux == nil {
			t.Fatalf("accepted without a name: %+v", spec)
		}
	})
}
