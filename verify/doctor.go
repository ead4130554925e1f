package verify

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/rtnl"
	"github.com/vmlink/vmlink/verify/capture"
	"golang.org/x/sys/unix"
)

// DoctorOptions say where Doctor looks and what it knows besides the
// kernel's state.
type DoctorOptions struct {
	// NetNS holds the parent(s); "" is the caller's namespace.
	NetNS string
	// Parent is the interface to diagnose; "" diagnoses every interface of
	// NetNS that has macvlan, macvtap, ipvlan or VLAN links on it (in any
	// namespace), and the parents of Networks.
	Parent string
	// Networks are the docker-style networks of a state directory (vmlink
	// net): their subnets take part in the overlap check and their
	// definitions shape the fixes.
	Networks []DoctorNetwork
	// VLANSupport tells whether the kernel can create VLAN links: nil when
	// it can, an error wrapping unix.EOPNOTSUPP when it cannot (the
	// project's feature probe, dataplane.Probe(ctx, "8021q")). nil means
	// unknown: an X.N name that does not exist is then reported missing.
	VLANSupport func(context.Context) error
	// SysRoot is where sysfs is mounted; "" means /sys. Tests point it at
	// a fake tree (a wireless parent needs a wireless NIC otherwise).
	SysRoot string
	// Wait is the least the wire probes (reflection, ARP) wait for an
	// answer; 0 means 300 ms. It grows with the slowest answer seen.
	Wait time.Duration
}

// DoctorNetwork is one docker-style network as doctor needs it.
type DoctorNetwork struct {
	Name     string
	Host     string // namespace holding the parent ("" the caller's)
	Parent   string
	Driver   string // macvlan, macvtap, ipvlan
	Mode     string
	Subnets  []netip.Prefix
	Gateways []netip.Addr
	IPRanges []netip.Prefix
	HostShim bool
	// Endpoints are the container interfaces connected to the network.
	Endpoints []DoctorEndpoint
}

// DoctorEndpoint is one container interface of a network.
type DoctorEndpoint struct{ NetNS, Interface string }

// Doctor diagnoses the classic macvlan/VLAN problems from kernel state,
// plus two short probes on the wire (whether the switch reflects, and
// whether it answers the children's MACs as it answers the parent's). An
// error means nothing could be inspected (ErrEnvironment: no privileges, no
// such parent or namespace, nothing with children to look at); a report
// with findings is not an error.
func Doctor(ctx context.Context, o DoctorOptions) (*DoctorReport, error) {
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.Wait <= 0 {
		o.Wait = 300 * time.Millisecond
	}
	spaces, _, err := openSpaces(ctx, o.NetNS, "")
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, s := range spaces {
			s.close()
		}
	}()
	d := &doctor{o: o, spaces: spaces, rep: &DoctorReport{}, seenMAC: map[capture.MAC]bool{}}
	parents, err := d.parents(ctx)
	if err != nil {
		return nil, err
	}
	if len(parents) == 0 && len(d.rep.Findings) == 0 {
		return nil, fmt.Errorf("%w: nothing to inspect: no interface of namespace %s has a macvlan, macvtap, ipvlan or VLAN link on it (%d namespaces searched): name one with --parent",
			ErrEnvironment, nsWord(o.NetNS), len(spaces))
	}
	for _, p := range parents {
		if err := d.inspect(ctx, p); err != nil {
			return nil, err
		}
	}
	d.rep.sort()
	return d.rep, nil
}

type doctor struct {
	o       DoctorOptions
	spaces  []*space
	rep     *DoctorReport
	seenMAC map[capture.MAC]bool
}

// home is the namespace of the parents.
func (d *doctor) home() *space { return d.spaces[0] }

// space returns the opened namespace called name, as Discover names
// endpoints' namespaces.
func (d *doctor) space(name string) *space {
	for _, s := range d.spaces {
		if s.name == name {
			return s
		}
	}
	return nil
}

// parents decides which interfaces to inspect. An X.N name that cannot
// exist because the kernel has no 802.1Q support is a finding, not a
// parent.
func (d *doctor) parents(ctx context.Context) ([]string, error) {
	home := d.home()
	if d.o.Parent != "" {
		if home.byName(d.o.Parent) != nil {
			return []string{d.o.Parent}, nil
		}
		lower, id, ok := link.SplitVLANName(d.o.Parent)
		if ok && home.byName(lower) != nil {
			if d.no8021q(ctx, d.o.NetNS, d.o.Parent, lower, id) {
				d.rep.Parents = append(d.rep.Parents, subject(d.o.NetNS, d.o.Parent))
				return nil, nil
			}
			return nil, fmt.Errorf("%w: no interface %q in namespace %s: create VLAN %d on %s with `%s link add %s link %s type vlan id %d`",
				ErrEnvironment, d.o.Parent, nsWord(d.o.NetNS), id, lower, tool("vmlink", d.o.NetNS), d.o.Parent, lower, id)
		}
		return nil, fmt.Errorf("%w: no interface %q in namespace %s", ErrEnvironment, d.o.Parent, nsWord(d.o.NetNS))
	}
	var out []string
	seen := map[string]bool{}
	addRoot := func(index int32) {
		name := d.root(index)
		if name != "" && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	for si, s := range d.spaces {
		for _, l := range s.links {
			if l.Attrs.Link == nil || l.Attrs.Info == nil || !childKind(l.Attrs.Info.Kind) {
				continue
			}
			in := si
			if l.Attrs.LinkNetNSID != nil {
				in = s.spaceOfNSID(ctx, *l.Attrs.LinkNetNSID, []int{0}, d.spaces)
			}
			if in == 0 {
				addRoot(int32(*l.Attrs.Link))
			}
		}
	}
	for _, n := range d.o.Networks {
		if n.Host != d.o.NetNS {
			continue
		}
		if l := home.byName(n.Parent); l != nil {
			addRoot(l.Index)
			continue
		}
		if lower, id, ok := link.SplitVLANName(n.Parent); ok && home.byName(lower) != nil {
			d.no8021q(ctx, n.Host, n.Parent, lower, id)
		}
	}
	return out, nil
}

func childKind(kind string) bool {
	switch kind {
	case "macvlan", "macvtap", "ipvlan", "vlan":
		return true
	}
	return false
}

// root follows a home link down through the VLAN links it sits on to the
// interface Discover starts from.
func (d *doctor) root(index int32) string {
	home := d.home()
	for range 8 {
		var l *rtnl.LinkMessage
		for i := range home.links {
			if home.links[i].Index == index {
				l = &home.links[i]
			}
		}
		if l == nil {
			return ""
		}
		if l.Attrs.Info == nil || l.Attrs.Info.Kind != "vlan" || l.Attrs.Link == nil || l.Attrs.LinkNetNSID != nil {
			return l.Attrs.Name
		}
		index = int32(*l.Attrs.Link)
	}
	return ""
}

// no8021q reports (and records as a finding) that name, VLAN id on lower,
// cannot exist because the kernel lacks 802.1Q support.
func (d *doctor) no8021q(ctx context.Context, ns, name, lower string, id uint16) bool {
	if d.o.VLANSupport == nil {
		return false
	}
	err := d.o.VLANSupport(ctx)
	switch {
	case err == nil:
		return false
	case !errors.Is(err, unix.EOPNOTSUPP):
		d.rep.skip("802.1Q support", name, "the probe could not tell: %v", err)
		return false
	}
	d.rep.add(Finding{
		ID: FindNo8021Q, Severity: SeverityError, Subject: subject(ns, name),
		What: fmt.Sprintf("%s names VLAN %d on %s, and this kernel has no 802.1Q support: the VLAN link cannot be created", name, id, lower),
		Why:  "VLAN links need the kernel's 8021q module; without it the kernel refuses every VLAN link (\"Unknown device type\"), so nothing on " + name + " can exist (docker's -o parent=" + name + " and vmlink net create fail the same way)",
		Fix: []string{
			"modprobe 8021q   (or boot a kernel built with CONFIG_VLAN_8021Q)",
			fmt.Sprintf("%s link add %s link %s type vlan id %d", tool("vmlink", ns), name, lower, id),
		},
	})
	return true
}

// inspect runs every check on one parent.
func (d *doctor) inspect(ctx context.Context, parent string) error {
	t, err := Discover(ctx, d.o.NetNS, parent)
	if err != nil {
		return err
	}
	pl := d.home().byName(parent)
	if pl == nil {
		return fmt.Errorf("%w: interface %q vanished from namespace %s", ErrEnvironment, parent, nsWord(d.o.NetNS))
	}
	pid := subject(d.o.NetNS, parent)
	d.rep.Parents = append(d.rep.Parents, pid)
	wireOK := d.checkLinkState(pl, pid)
	d.checkWireless(t, pl, pid)
	d.checkHostIsolation(t)
	d.checkMTU(t, pl)
	d.checkOverlap(t)
	d.checkDuplicateMACs(t)
	if !wireOK {
		d.rep.skip("switch reflection and child MACs on the wire", pid, "the parent is down or has no carrier: no frame can pass")
		return nil
	}
	pace := &pacer{floor: d.o.Wait}
	d.checkVEPA(ctx, t, pid, pace)
	d.checkChildMACs(ctx, t, pid, pace)
	return nil
}

// subject names an interface as the user knows it: "eth0" or "ns1/eth0".
func subject(ns, name string) string { return EndpointID(Endpoint{NetNS: ns, Interface: name}) }

// tool is a command prefix that runs inside ns: "vmlink -n ns1", "ip -n ns1".
func tool(cmd, ns string) string {
	if ns == "" {
		return cmd
	}
	return cmd + " -n " + ns
}
