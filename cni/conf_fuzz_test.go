package cni

import (
	"testing"
)

// FuzzParseConf feeds the plugin's configuration reader what a runtime
// could put on stdin and in CNI_ARGS: it must refuse or accept, never
// panic, and an accepted configuration must translate into a link spec
// whose validation answers (the kernel's rules live there).
func FuzzParseConf(f *testing.F) {
	for _, seed := range []struct{ conf, args string }{
		{`{"cniVersion":"0.3.0","name":"macvlan-demo","type":"vmlink","master":"eth0","mode":"bridge","ipam":{"type":"host-local","subnet":"172.16.123.0/24","rangeStart":"172.16.123.200","rangeEnd":"172.16.123.250","gateway":"172.16.123.254","routes":[{"dst":"0.0.0.0/0"}]}}`, ""},
		{`{"cniVersion":"1.1.0","name":"n","type":"vmlink","kind":"ipvlan","master":"p0","mode":"l3s","flag":"private","mtu":1400}`, "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"},
		{`{"cniVersion":"1.0.0","name":"n","type":"vmlink","kind":"vlan","master":"p0","vlanId":4094,"protocol":"802.1ad","linkInContainer":true}`, ""},
		{`{"cniVersion":"1.0.0","name":"n","type":"vmlink","mode":"source","macaddr":["02:00:00:00:00:01"],"bcqueuelen":100,"bclim":-1}`, "MAC=02:00:00:00:00:02"},
		{`{"cniVersion":"1.0.0","name":"n","type":"vmlink","mode":"passthru","nopromisc":true,"runtimeConfig":{"mac":"02:00:00:00:00:03"}}`, ""},
		{`{"ipam":{"subnet":"10.0.0.0/24"}}`, ""},
		{`{`, "MAC=zz"},
	} {
		f.Add([]byte(seed.conf), seed.args)
	}
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		c, err := ParseConf(stdin, cniArgs)
		if err != nil {
			return
		}
		if c.Kind == "" {
			t.Fatal("accepted a configuration without a kind")
		}
		spec, err := c.Spec("eth0", "p0")
		if err != nil {
			return
		}
		_ = spec.Validate()
	})
}
