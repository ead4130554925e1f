package cni

import (
	"testing"

	"github.com/vmlink/vmlink/link"
)

// TestSpecDefaults: the reference plugins' defaults and precedence,
// without a kernel.
func TestSpecDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, conf, args string
		check            func(link.Spec) bool
	}{
		{"macvlan by default, bridge", `{"cniVersion":"1.0.0","name":"n","type":"vmlink"}`, "", func(s link.Spec) bool {
			m, ok := s.(*link.Macvlan)
			return ok && m.EffectiveMode() == link.MacvlanModeBridge
		}},
		{"ipvlan defaults to l2 like the reference", `{"cniVersion":"1.0.0","name":"n","type":"vmlink","kind":"ipvlan"}`, "", func(s link.Spec) bool {
			v, ok := s.(*link.IPVlan)
			return ok && v.Mode == link.IPVlanModeL2 && v.Flag == link.IPVlanFlagUnset
		}},
		{"ipvlan flag", `{"cniVersion":"1.0.0","name":"n","type":"vmlink","kind":"ipvlan","mode":"l3","flag":"private"}`, "", func(s link.Spec) bool {
			v, ok := s.(*link.IPVlan)
			return ok && v.Mode == link.IPVlanModeL3 && v.Flag == link.IPVlanFlagPrivate
		}},
		{"vlan 802.1ad", `{"cniVersion":"1.0.0","name":"n","type":"vmlink","kind":"vlan","vlanId":7,"protocol":"802.1ad"}`, "", func(s link.Spec) bool {
			v, ok := s.(*link.VLAN)
			return ok && v.ID == 7 && v.Protocol == link.VLAN8021AD
		}},
		{"CNI_ARGS MAC over mac", `{"cniVersion":"1.0.0","name":"n","type":"vmlink","mac":"02:00:00:00:00:01"}`, "IgnoreUnknown=1;MAC=02:00:00:00:00:02;K8S_POD_NAME=x", func(s link.Spec) bool {
			return s.Base().Address.String() == "02:00:00:00:00:02"
		}},
		{"runtimeConfig.mac over CNI_ARGS", `{"cniVersion":"1.0.0","name":"n","type":"vmlink","runtimeConfig":{"mac":"02:00:00:00:00:03"}}`, "MAC=02:00:00:00:00:02", func(s link.Spec) bool {
			return s.Base().Address.String() == "02:00:00:00:00:03"
		}},
		{"txqueuelen 0 as the reference", `{"cniVersion":"1.0.0","name":"n","type":"vmlink"}`, "", func(s link.Spec) bool {
			return s.Base().TxQLen != nil && *s.Base().TxQLen == 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConf([]byte(tc.conf), tc.args)
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.Spec("eth0", "p0")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(s) {
				t.Errorf("spec %+v", s)
			}
		})
	}
}

// TestParseAttachment: GC reads back what ADD wrote in the alias.
func TestParseAttachment(t *testing.T) {
	n, c, i, ok := parseAttachment(mark.Alias(attachmentObject("net-1", "abc_123", "eth0")))
	if !ok || n != "net-1" || c != "abc_123" || i != "eth0" {
		t.Errorf("got %q %q %q %v", n, c, i, ok)
	}
	if _, _, _, ok := parseAttachment("vmlink:lab:ep/c1/eth0"); ok {
		t.Error("a lab's alias taken for an attachment")
	}
}
