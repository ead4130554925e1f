package link

import "github.com/vmlink/vmlink/rtnl"

// IPVlan is an ipvlan link: `ip link add NAME link PARENT type ipvlan mode
// l3 [bridge|private|vepa]`.
type IPVlan struct {
	Common
	Mode IPVlanMode
	Flag IPVlanFlags
}

// Kind implements Spec.
func (*IPVlan) Kind() string { return "ipvlan" }

func (*IPVlan) needsParent() bool { return true }

// Validate implements Spec.
func (v *IPVlan) Validate() error {
	if err := v.Common.validate("ipvlan", true); err != nil {
		return err
	}
	if err := validateIPVlanOpts("ipvlan", v.Name, v.Mode, v.Flag); err != nil {
		return err
	}
	if v.Address != nil {
		// ipvlan links share the parent's MAC: the kernel refuses another.
		return fieldErr("ipvlan", v.Name, "address", v.Address.String(), "ipvlan links always use the parent's MAC: drop address")
	}
	return nil
}

// validateIPVlanOpts checks a given (non-zero) ipvlan mode and flag.
func validateIPVlanOpts(kind, name string, m IPVlanMode, f IPVlanFlags) error {
	if m != IPVlanModeUnset && !m.Valid() {
		_, err := ParseIPVlanMode("")
		return fieldErr(kind, name, "mode", m.String(), err.Error())
	}
	if f != IPVlanFlagUnset && !f.Valid() {
		_, err := ParseIPVlanFlags("")
		return fieldErr(kind, name, "flag", f.String(), err.Error())
	}
	return nil
}

// ipvlanLinkInfo builds IFLA_LINKINFO creating v.
func ipvlanLinkInfo(v *IPVlan) *rtnl.LinkInfo {
	info := &rtnl.LinkInfo{Kind: "ipvlan"}
	if v.Mode == IPVlanModeUnset && v.Flag == IPVlanFlagUnset {
		// The kind alone, as `ip link add … type ipvlan`: l3, bridge.
		return info
	}
	// iproute2 sends the flags whenever it sends data (0 is bridge); so
	// do we, so the same words make the same request.
	flag := v.Flag
	if flag == IPVlanFlagUnset {
		flag = IPVlanFlagBridge
	}
	d := &rtnl.IPVlan{Flags: &flag}
	if v.Mode != IPVlanModeUnset {
		mode := v.Mode
		d.Mode = &mode
	}
	info.Data = d
	return info
}

// ipvlanChangeInfo builds IFLA_LINKINFO changing the ipvlan link cur.
func ipvlanChangeInfo(cur *Link, c *IPVlanChange) *rtnl.LinkInfo {
	d := &rtnl.IPVlan{}
	if c.Mode != IPVlanModeUnset {
		mode := c.Mode
		d.Mode = &mode
	}
	flag := c.Flag
	if flag == IPVlanFlagUnset && cur.IPVlan != nil && cur.IPVlan.Flag != nil {
		// `ip link set … type ipvlan mode l2` sends flags 0 and so
		// silently turns a private or vepa parent into bridge. We keep
		// the flag the link has unless one is given.
		flag = *cur.IPVlan.Flag
	}
	if flag != IPVlanFlagUnset {
		d.Flags = &flag
	}
	return &rtnl.LinkInfo{Kind: "ipvlan", Data: d}
}

// ipvlanInfo is the IPVlanInfo of a kernel's IFLA_INFO_DATA.
func ipvlanInfo(d *rtnl.IPVlan) *IPVlanInfo {
	ip := &IPVlanInfo{Flag: d.Flags}
	if d.Mode != nil {
		ip.Mode = *d.Mode
	}
	return ip
}

// compareIPVlan lists how an ipvlan link differs from v.
func compareIPVlan(v *IPVlan, l *Link) []string {
	if l.IPVlan == nil {
		return []string{"mode: not reported by the kernel"}
	}
	var d diffs
	want := v.Mode
	if want == IPVlanModeUnset {
		want = IPVlanModeL3
	}
	if l.IPVlan.Mode != want {
		d.add("mode", l.IPVlan.Mode, want)
	}
	wantFlag := v.Flag
	if wantFlag == IPVlanFlagUnset {
		wantFlag = IPVlanFlagBridge
	}
	have := IPVlanFlagBridge
	if l.IPVlan.Flag != nil {
		have = *l.IPVlan.Flag
	}
	if have != wantFlag {
		d.add("flag", have, wantFlag)
	}
	return d
}
