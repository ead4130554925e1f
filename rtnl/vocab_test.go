package rtnl

import (
	"strings"
	"testing"
)

// TestVocabularyRoundTrip checks that String and Parse are inverse for every
// valid value and that Parse refuses anything else, saying the fix.
func TestVocabularyRoundTrip(t *testing.T) {
	for _, m := range macvlanModes {
		if got, err := ParseMacvlanMode(m.String()); err != nil || got != m {
			t.Errorf("ParseMacvlanMode(%q) = %v, %v", m, got, err)
		}
	}
	for _, m := range []IPVlanMode{IPVlanModeL2, IPVlanModeL3, IPVlanModeL3S} {
		if got, err := ParseIPVlanMode(m.String()); err != nil || got != m {
			t.Errorf("ParseIPVlanMode(%q) = %v, %v", m, got, err)
		}
	}
	for _, f := range []IPVlanFlags{IPVlanFlagBridge, IPVlanFlagPrivate, IPVlanFlagVEPA} {
		if got, err := ParseIPVlanFlags(f.String()); err != nil || got != f {
			t.Errorf("ParseIPVlanFlags(%q) = %v, %v", f, got, err)
		}
	}
	for in, want := range map[string]VLANProtocol{"802.1Q": VLANProtocol8021Q, "802.1q": VLANProtocol8021Q, "802.1AD": VLANProtocol8021AD, "0x88a8": VLANProtocol8021AD, "33024": VLANProtocol8021Q} {
		if got, err := ParseVLANProtocol(in); err != nil || got != want {
			t.Errorf("ParseVLANProtocol(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "unset", "Bridge", "l4", "0x0800", "802.1x"} {
		if _, err := ParseMacvlanMode(bad); err == nil || !strings.Contains(err.Error(), "use private, vepa, bridge, passthru or source") {
			t.Errorf("ParseMacvlanMode(%q): %v", bad, err)
		}
		if _, err := ParseIPVlanMode(bad); err == nil {
			t.Errorf("ParseIPVlanMode(%q): no error", bad)
		}
		if _, err := ParseIPVlanFlags(bad); err == nil {
			t.Errorf("ParseIPVlanFlags(%q): no error", bad)
		}
		if _, err := ParseVLANProtocol(bad); err == nil {
			t.Errorf("ParseVLANProtocol(%q): no error", bad)
		}
	}

	if _, err := ParseIPVlanFlags("hub"); err == nil || err.Error() != "unknown ipvlan flag: use bridge, private or vepa" {
		t.Errorf("ParseIPVlanFlags(hub): %v", err)
	}
}

// TestIPVlanWireValues pins the conversion between our ipvlan enums (zero
// invalid) and the kernel's numbers (l2 and bridge are 0).
func TestIPVlanWireValues(t *testing.T) {
	for m, w := range map[IPVlanMode]uint16{IPVlanModeL2: 0, IPVlanModeL3: 1, IPVlanModeL3S: 2} {
		if m.wire() != w || ipvlanModeFromWire(w) != m {
			t.Errorf("%v: wire %d", m, m.wire())
		}
	}
	for f, w := range map[IPVlanFlags]uint16{IPVlanFlagBridge: 0, IPVlanFlagPrivate: 1, IPVlanFlagVEPA: 2} {
		if f.wire() != w || ipvlanFlagsFromWire(w) != f {
			t.Errorf("%v: wire %d", f, f.wire())
		}
	}
}
