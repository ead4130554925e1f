package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/internal/nsname"
)

// Owners maps a MAC address to the interfaces that carry it, as
// "NETNS/IFNAME" with the namespace named as its user knows it
// ("docker:b1/eth0", "k8s:default/web-0/net1", "ns1/eth0"; "IFNAME" in the
// caller's own namespace). A capture uses it
// to say whose frame it saw: the pcapng comment and the JSON "owner".
type Owners map[MAC]string

// Owner returns who carries m, or "" when nobody known does.
func (o Owners) Owner(m MAC) string { return o[m] }

// add records that ifname in netns ("" for the caller's) carries m; a MAC
// several interfaces share (passthru macvlan and its parent, a bridge and
// its first port) lists them all, sorted.
func (o Owners) add(m MAC, ifname, netns string) {
	if m.IsZero() || m.IsMulticast() {
		return
	}
	name := ifname
	if netns != "" {
		name = netns + "/" + ifname
	}
	cur := o[m]
	if cur == "" {
		o[m] = name
		return
	}
	names := strings.Split(cur, ",")
	for _, n := range names {
		if n == name {
			return
		}
	}
	names = append(names, name)
	sort.Strings(names)
	o[m] = strings.Join(names, ",")
}

// DiscoverOwners reads the interfaces of every network namespace of the
// host (internal/netns.Walk), each named as its user knows it
// (internal/nsname: docker:b1 — asking the Docker API at dockerHost, ""
// for DOCKER_HOST or the default — podman:p1, k8s:ns/pod, NAME). A
// namespace that cannot be entered is skipped and named in the returned
// error; the owners found elsewhere are still returned.
func DiscoverOwners(ctx context.Context, dockerHost string) (Owners, error) {
	o := Owners{}
	var errs []error
	self, err := netns.CurrentInode()
	if err != nil {
		return o, fmt.Errorf("discover MAC owners: %w", err)
	}
	if err := addInterfaces(o, ""); err != nil {
		errs = append(errs, err)
	}
	found, err := netns.Walk(netns.WalkOptions{})
	if err != nil {
		errs = append(errs, err)
	}
	named := nsname.Resolve(ctx, found, nsname.Options{DockerHost: dockerHost})
	for _, n := range named.Namespaces {
		if err := ctx.Err(); err != nil {
			return o, fmt.Errorf("discover MAC owners: %w", err)
		}
		if n.Inode == self {
			continue // the namespace we are in: already listed, without a name
		}
		var h *netns.NS
		if n.Name != "" {
			h, err = netns.Open(n.Name)
		} else {
			h, err = netns.OpenPath(n.Path)
		}
		if err != nil {
			continue // gone meanwhile
		}
		err = h.Do(func() error { return addInterfaces(o, n.Display) })
		h.Close()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("discover MAC owners: %w", errors.Join(errs...))
	}
	return o, nil
}

// addInterfaces lists the interfaces of the calling thread's namespace
// (net.Interfaces asks the kernel over a netlink socket opened right there).
func addInterfaces(o Owners, ns string) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list interfaces in %q: %w", ns, err)
	}
	for _, ifc := range ifs {
		if len(ifc.HardwareAddr) == 6 {
			o.add(MACFrom(ifc.HardwareAddr), ifc.Name, ns)
		}
	}
	return nil
}
