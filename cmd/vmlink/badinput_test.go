package main

// The bad-input table: wrong command lines for every command, run as the
// built binary with -n into a sandbox namespace. Each must exit with the
// code the exit-status table gives (see exitTable), print exactly one line
// on stderr naming the field, and create nothing: no namespace, no link.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/internal/netns"
)

func TestBadInputTable(t *testing.T) {
	requireLabRoot(t)
	s := newNetNS(t)
	ipRun(t, s, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badMode := file("bad-mode.batch", "link add mv1 link p0 type macvlan mode bridge\nlink add mv2 link p0 type macvlan mode bogus\n")
	badQuote := file("bad-quote.batch", "link add \"mv1 link p0 type macvlan\n")
	loParent := file("lo.yaml", "name: x\nnetworks: [{name: n, parent: lo}]\n")
	twoDocs := file("two.yaml", "name: x\n---\nname: y\n")
	unknownKey := file("key.yaml", "name: x\nbogus_key: 1\n")
	empty := file("empty.yaml", "")
	notPcap := file("not.pcap", "this is not a capture file at all")
	const nonet = "vmltnonet"
	cases := []struct {
		args  []string // after -n SANDBOX unless noNS
		noNS  bool
		code  int
		field string
	}{
		// link
		{args: []string{"link", "add"}, code: exitUsage, field: "add"},
		{args: []string{"link", "add", "averyveryverylongname", "link", "p0", "type", "macvlan"}, code: exitUsage, field: `name "averyveryverylongname"`},
		{args: []string{"link", "add", "a/b", "link", "p0", "type", "macvlan"}, code: exitUsage, field: `name "a/b"`},
		{args: []string{"link", "add", "mv1", "link", "p0", "type", "macvlan", "mode", "bogus"}, code: exitUsage, field: `mode "bogus"`},
		{args: []string{"link", "add", "mv1", "link", "p0", "type", "macvtap", "mode", "l2"}, code: exitUsage, field: `mode "l2"`},
		{args: []string{"link", "add", "v1", "link", "p0", "type", "vlan", "id", "4095"}, code: exitUsage, field: `id "4095"`},
		{args: []string{"link", "add", "v1", "link", "p0", "type", "vlan", "id", "-1"}, code: exitUsage, field: `id "-1"`},
		{args: []string{"link", "add", "v1", "link", "p0", "type", "vlan", "id", "5", "protocol", "802.1x"}, code: exitUsage, field: `protocol "802.1x"`},
		{args: []string{"link", "add", "v1", "link", "p0", "type", "vlan", "id", "5", "reorder_hdr", "maybe"}, code: exitUsage, field: "reorder_hdr"},
		{args: []string{"link", "add", "v1", "link", "p0", "type", "vlan", "id", "5", "egress-qos-map", "1:9"}, code: exitUsage, field: "egress-qos-map"},
		{args: []string{"link", "add", "v1", "link", "p0", "type", "vlan", "id", "5", "ingress-qos-map", "8:1"}, code: exitUsage, field: "ingress-qos-map"},
		{args: []string{"link", "add", "ipv0", "link", "p0", "type", "ipvlan", "mode", "l4"}, code: exitUsage, field: `mode "l4"`},
		{args: []string{"link", "add", "mv1", "link", "p0", "type", "macvlan", "flag", "lazy"}, code: exitUsage, field: `flag "lazy"`},
		{args: []string{"link", "add", "mv1", "link", "p0", "type", "macvlan", "mode", "bridge", "nopromisc"}, code: exitUsage, field: "nopromisc"},
		{args: []string{"link", "add", "mv1", "link", "p0", "type", "macvlan", "mode", "bridge", "nodst"}, code: exitUsage, field: "nodst"},
		{args: []string{"link", "add", "mv1", "link", "p0", "mtu", "10", "type", "macvlan"}, code: exitUsage, field: `mtu "10"`},
		{args: []string{"link", "add", "mv1", "link", "p0", "mtu", "1600", "type", "macvlan"}, code: exitUsage, field: `mtu "1600"`},
		{args: []string{"link", "add", "mv1", "link", "p0", "address", "01:00:00:00:00:01", "type", "macvlan"}, code: exitUsage, field: "address"},
		{args: []string{"link", "add", "mv1", "link", "p0", "address", "zz", "type", "macvlan"}, code: exitUsage, field: "address"},
		{args: []string{"link", "add", "mv1", "link", "lo", "type", "macvlan"}, code: exitUsage, field: `link "lo"`},
		{args: []string{"link", "add", "mv1", "link", "p0", "type", "bogus"}, code: exitUsage, field: "bogus"},
		{args: []string{"link", "add", "mv1", "link", "p0", "type", "macvlan", "bclim", "x"}, code: exitUsage, field: "bclim"},
		{args: []string{"link", "add", "mv1", "link", "p0", "type", "macvlan", "bcqueuelen", "-5"}, code: exitUsage, field: "bcqueuelen"},
		{args: []string{"link", "add", "mv1", "link", "p0", "txqueuelen", "x", "type", "macvlan"}, code: exitUsage, field: "txqueuelen"},
		{args: []string{"link", "add", "mv1", "link", "nosuch", "type", "macvlan"}, code: exitEnvError, field: `link "nosuch"`},
		{args: []string{"link", "del", "nosuch"}, code: exitEnvError, field: "nosuch"},
		{args: []string{"link", "set", "nosuch", "up"}, code: exitEnvError, field: "nosuch"},
		{args: []string{"link", "show", "nosuch"}, code: exitEnvError, field: "nosuch"},
		{args: []string{"link", "replace", "x"}, code: exitUsage, field: "replace"},
		{args: []string{"link", "frob"}, code: exitUsage, field: "frob"},
		{args: []string{"link", "help", "foo"}, code: exitUsage, field: `"foo"`},
		{args: []string{"link", "set", "p0", "mtu", "abc"}, code: exitUsage, field: "mtu"},
		{args: []string{"link", "del", "group", "x"}, code: exitUsage, field: "group"},
		{args: []string{"link", "batch"}, code: exitUsage, field: "batch"},
		{args: []string{"link", "batch", filepath.Join(dir, "missing.batch")}, code: exitUsage, field: "missing.batch"},
		{args: []string{"link", "batch", badMode}, code: exitUsage, field: `mode "bogus"`},
		{args: []string{"link", "batch", badQuote}, code: exitUsage, field: "quote"},
		// net
		{args: []string{"net", "create", "n1"}, code: exitUsage, field: "--subnet"},
		{args: []string{"net", "create", "--subnet", "bogus", "n1"}, code: exitUsage, field: `--subnet "bogus"`},
		{args: []string{"net", "create", "--subnet", "10.9.0.1/24", "n1"}, code: exitUsage, field: "--subnet 10.9.0.1/24"},
		{args: []string{"net", "create", "--subnet", "fd00::/64", "n1"}, code: exitUsage, field: "--ipv6"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "--gateway", "x", "n1"}, code: exitUsage, field: "--gateway"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "--gateway", "10.8.0.1", "n1"}, code: exitUsage, field: "--gateway 10.8.0.1"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "--ip-range", "10.8.0.0/25", "n1"}, code: exitUsage, field: "--ip-range"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "--aux-address", "x", "n1"}, code: exitUsage, field: "--aux-address"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "-o", "novalue", "n1"}, code: exitUsage, field: `-o "novalue"`},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "-o", "parent=lo", "n1"}, code: exitUsage, field: "parent=lo"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "-o", "parent=nosuch0", "n1"}, code: exitEnvError, field: "parent=nosuch0"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "-o", "parent=p0", "-o", "macvlan_mode=bogus", "n1"}, code: exitUsage, field: "macvlan_mode=bogus"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "-d", "bogus", "n1"}, code: exitUsage, field: "-d bogus"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "-d", "ipvlan", "-o", "ipvlan_mode=l9", "n1"}, code: exitUsage, field: "ipvlan_mode=l9"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "-d", "ipvlan", "--host-shim", "n1"}, code: exitUsage, field: "--host-shim"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "-o", "parent=p0", "-o", "foo=bar", "n1"}, code: exitUsage, field: "-o foo"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "-o", "parent=p0", "-o", "parent=p1", "n1"}, code: exitUsage, field: "-o parent"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "--bogus", "n1"}, code: exitUsage, field: "-bogus"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24"}, code: exitUsage, field: "NAME"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "a/b"}, code: exitUsage, field: `"a/b"`},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/31", "-o", "parent=p0", "n1"}, code: exitUsage, field: "--subnet 10.9.0.0/31"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/32", "-o", "parent=p0", "n1"}, code: exitUsage, field: "--subnet 10.9.0.0/32"},
		{args: []string{"net", "create", "--subnet", "10.9.0.0/24", "-o", "parent=p0.4095", "n1"}, code: exitUsage, field: "4095"},
		{args: []string{"net", "connect", nonet, "c1"}, code: exitFailed, field: nonet},
		{args: []string{"net", "connect", "--ip", "x", nonet, "c1"}, code: exitUsage, field: `--ip "x"`},
		{args: []string{"net", "connect", "--ip", "fd00::5", nonet, "c1"}, code: exitUsage, field: `--ip "fd00::5"`},
		{args: []string{"net", "connect", "--ip6", "10.0.0.5", nonet, "c1"}, code: exitUsage, field: `--ip6 "10.0.0.5"`},
		{args: []string{"net", "connect", "--mac-address", "zz", nonet, "c1"}, code: exitUsage, field: "--mac-address"},
		{args: []string{"net", "connect", nonet}, code: exitUsage, field: "CONTAINER"},
		{args: []string{"net", "disconnect", nonet, "c1"}, code: exitFailed, field: nonet},
		{args: []string{"net", "disconnect", nonet}, code: exitUsage, field: "CONTAINER"},
		{args: []string{"net", "rm"}, code: exitUsage, field: "NETWORK"},
		{args: []string{"net", "rm", nonet}, code: exitFailed, field: nonet},
		{args: []string{"net", "inspect", nonet}, code: exitFailed, field: nonet},
		{args: []string{"net", "inspect"}, code: exitUsage, field: "NETWORK"},
		{args: []string{"net", "ls", "extra"}, code: exitUsage, field: `"extra"`},
		{args: []string{"net", "frob"}, code: exitUsage, field: `"frob"`},
		// up, down
		{args: []string{"up"}, noNS: true, code: exitUsage, field: "-f FILE"},
		{args: []string{"up", "-f", filepath.Join(dir, "missing.yaml")}, noNS: true, code: exitUsage, field: "missing.yaml"},
		{args: []string{"up", "-f", loParent}, noNS: true, code: exitUsage, field: "networks[0].parent"},
		{args: []string{"up", "-f", twoDocs}, noNS: true, code: exitUsage, field: "---"},
		{args: []string{"up", "-f", unknownKey}, noNS: true, code: exitUsage, field: "bogus_key"},
		{args: []string{"up", "-f", empty}, noNS: true, code: exitUsage, field: "empty"},
		{args: []string{"up", "-f", loParent}, code: exitUsage, field: "-n"},
		{args: []string{"up", "a", "b"}, noNS: true, code: exitUsage, field: `"a"`},
		{args: []string{"up", "--bogus"}, noNS: true, code: exitUsage, field: "-bogus"},
		{args: []string{"down"}, noNS: true, code: exitUsage, field: "-f FILE"},
		{args: []string{"down", "-f", twoDocs}, noNS: true, code: exitUsage, field: "---"},
		// lab
		{args: []string{"lab", "nope"}, noNS: true, code: exitUsage, field: `"nope"`},
		{args: []string{"lab", "modes", "host-shim"}, noNS: true, code: exitUsage, field: "one lab"},
		{args: []string{"lab", "--bogus"}, noNS: true, code: exitUsage, field: "-bogus"},
		{args: []string{"lab", "--wait", "0"}, noNS: true, code: exitUsage, field: "--wait"},
		{args: []string{"lab", "--wait", "x"}, noNS: true, code: exitUsage, field: "--wait"},
		{args: []string{"lab", "--down", "bogus"}, noNS: true, code: exitUsage, field: `"bogus"`},
		{args: []string{"lab", "--down", "vmlab-999999999"}, noNS: true, code: exitFailed, field: "vmlab-999999999-"},
		{args: []string{"lab", "--down", "vmlab-1-", "--keep"}, noNS: true, code: exitUsage, field: "--keep"},
		{args: []string{"lab"}, code: exitUsage, field: "-n"},
		// verify
		{args: []string{"verify"}, code: exitUsage, field: "--parent"},
		{args: []string{"verify", "--parent", "p0", "--reflects", "maybe"}, code: exitUsage, field: "--reflects"},
		{args: []string{"verify", "--parent", "p0", "--wait", "x"}, code: exitUsage, field: "--wait"},
		{args: []string{"verify", "--parent", "p0", "--wait", "-1s"}, code: exitUsage, field: "--wait"},
		{args: []string{"verify", "--parent", "p0", "--wait", "1000h"}, code: exitUsage, field: "--wait"},
		{args: []string{"verify", "--parent", "p0", "-w", "-"}, code: exitUsage, field: "-w"},
		{args: []string{"verify", "--parent", "p0", "-w", "x", "--no-capture"}, code: exitUsage, field: "--no-capture"},
		{args: []string{"verify", "--parent", "nosuch"}, code: exitEnvError, field: "nosuch"},
		{args: []string{"verify", "--parent", "p0", "--no-capture"}, code: exitEnvError, field: "--parent p0 has no macvlan"},
		{args: []string{"verify", "--parent", "lo"}, code: exitUsage, field: "--parent lo"},
		{args: []string{"verify", "--parent", "p0", "extra"}, code: exitUsage, field: `"extra"`},
		{args: []string{"verify", "--topology", filepath.Join(dir, "missing.yaml")}, noNS: true, code: exitUsage, field: "missing.yaml"},
		{args: []string{"verify", "--bogus"}, code: exitUsage, field: "-bogus"},
		// capture
		{args: []string{"capture"}, code: exitUsage, field: "-i IFACE"},
		{args: []string{"capture", "-i", "p0", "-r", notPcap}, code: exitUsage, field: "-r"},
		{args: []string{"capture", "-i", "p0", "-c", "0"}, code: exitUsage, field: "-c"},
		{args: []string{"capture", "-i", "p0", "--vlan", "5000"}, code: exitUsage, field: "--vlan"},
		{args: []string{"capture", "-i", "p0", "--tpid", "x"}, code: exitUsage, field: "--tpid"},
		{args: []string{"capture", "-i", "p0", "--mac", "zz"}, code: exitUsage, field: "--mac"},
		{args: []string{"capture", "-i", "p0", "--ethertype", "zz"}, code: exitUsage, field: "--ethertype"},
		{args: []string{"capture", "-i", "p0", "--timeout", "x"}, code: exitUsage, field: "--timeout"},
		{args: []string{"capture", "-i", "p0", "--snaplen", "10"}, code: exitUsage, field: "--snaplen"},
		{args: []string{"capture", "-r", notPcap, "--no-promisc"}, code: exitUsage, field: "--no-promisc"},
		{args: []string{"capture", "-i", "p0", "-w", "-", "-j"}, code: exitUsage, field: "-w -"},
		{args: []string{"capture", "-i", "nosuch", "-c", "1"}, code: exitEnvError, field: "nosuch"},
		{args: []string{"capture", "-r", filepath.Join(dir, "missing.pcap")}, code: exitUsage, field: "missing.pcap"},
		{args: []string{"capture", "-r", notPcap}, code: exitUsage, field: "not.pcap"},
		{args: []string{"capture", "-i", "p0", "-c", "1", "-w", filepath.Join(dir, "nodir", "x.pcapng")}, code: exitUsage, field: "-w"},
		{args: []string{"capture", "-i", "p0", "extra"}, code: exitUsage, field: `"extra"`},
		// netns
		{args: []string{"netns", "add"}, code: exitUsage, field: "NAME"},
		{args: []string{"netns", "add", "a/b"}, code: exitUsage, field: `"a/b"`},
		{args: []string{"netns", "add", "a", "b"}, code: exitUsage, field: "NAME"},
		{args: []string{"netns", "del", "vmltnosuchns"}, code: exitEnvError, field: "vmltnosuchns"},
		{args: []string{"netns", "exec", "x"}, code: exitUsage, field: "NAME"},
		{args: []string{"netns", "exec", "vmltnosuchns", "--", "true"}, code: exitEnvError, field: "vmltnosuchns"},
		{args: []string{"netns", "list", "extra"}, code: exitUsage, field: `"extra"`},
		{args: []string{"netns", "frob"}, code: exitUsage, field: `"frob"`},
		// doctor
		{args: []string{"doctor", "--wait", "x"}, code: exitUsage, field: "--wait"},
		{args: []string{"doctor", "extra"}, code: exitUsage, field: `"extra"`},
		{args: []string{"doctor", "--sysfs", filepath.Join(dir, "nosysfs")}, code: exitUsage, field: "--sysfs"},
		{args: []string{"doctor", "--parent", "nosuch0"}, code: exitEnvError, field: "nosuch0"},
		// version, globals
		{args: []string{"version", "extra"}, code: exitUsage, field: `"extra"`},
		{args: []string{"version", "--bogus"}, code: exitUsage, field: "-bogus"},
		{args: []string{"frob"}, code: exitUsage, field: `"frob"`},
		{args: []string{"--bogus"}, noNS: true, code: exitUsage, field: "-bogus"},
		{args: []string{"-n", "vmltnosuchns", "link", "show"}, noNS: true, code: exitEnvError, field: "-n vmltnosuchns"},
		{args: []string{"-n", "a/b", "link", "show"}, noNS: true, code: exitUsage, field: `-n "a/b"`},
	}
	if len(cases) < 80 {
		t.Fatalf("only %d cases", len(cases))
	}
	nsBefore, _ := netns.List()
	linksBefore := normalize(ipLinks(t, s), nil)
	for _, c := range cases {
		args := c.args
		if !c.noNS {
			args = append([]string{"-n", s}, args...)
		}
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cmd := helperCmd(t, args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			_ = cmd.Start()
			code := waitExit(t, cmd, time.Minute)
			if code != c.code {
				t.Errorf("exit %d, want %d: %q", code, c.code, stderr.String())
			}
			checkOneLine(t, stderr.String(), c.field)
			// Other tests may run beside this one: a namespace counts when
			// the command could have made it (a container it names, a lab).
			nsAfter, _ := netns.List()
			for _, n := range nsAfter {
				if !slices.Contains(nsBefore, n) && (slices.Contains(c.args, n) || strings.HasPrefix(n, dataplane.LabPrefix(cmd.Process.Pid))) {
					t.Errorf("namespace %s created", n)
				}
			}
			unchanged(t, s, linksBefore)
		})
	}
}
