package rtnl

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestVocabularyRoundTrip checks that String and Parse are inverse for every
// valid value, that JSON carries iproute2's words, and that invalid values
// neither print as valid ones nor marshal.
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

	type doc struct {
		Mode     MacvlanMode
		IPVlan   IPVlanMode
		Flag     IPVlanFlags
		Protocol VLANProtocol
	}
	in := doc{MacvlanModePassthru, IPVlanModeL2, IPVlanFlagVEPA, VLANProtocol8021AD}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Mode":"passthru","IPVlan":"l2","Flag":"vepa","Protocol":"802.1ad"}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Errorf("json round trip = %+v, %v", out, err)
	}
	if _, err := json.Marshal(doc{}); err == nil {
		t.Error("zero values marshalled: unset is not a mode")
	}
	if err := json.Unmarshal([]byte(`{"Mode":"bridged"}`), &out); err == nil || !strings.Contains(err.Error(), `"bridged"`) {
		t.Errorf("unmarshal of a bad mode: %v, want the value named", err)
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
