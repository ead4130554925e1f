package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/link"
)

func init() {
	register(&command{
		Name:    "net",
		Summary: "docker-style macvlan/ipvlan networks: create, connect, disconnect, ls, inspect, rm (docker's flags)",
		Run:     runNet,
	})
}

const netHelp = `usage: vmlink [-n NETNS] net COMMAND

  net create [-d macvlan|macvtap|ipvlan] --subnet CIDR [--gateway IP]
             [--ip-range CIDR] [--aux-address NAME=IP] [--ipv6] [--internal]
             [-o parent=IFACE|IFACE.VLAN] [-o macvlan_mode=MODE]
             [-o ipvlan_mode=l2|l3|l3s] [-o ipvlan_flag=bridge|private|vepa]
             [--host-shim] NAME
  net connect [--ip IP] [--ip6 IP] [--mac-address MAC] NETWORK CONTAINER
  net disconnect NETWORK CONTAINER
  net ls [-q]
  net inspect NETWORK...
  net rm NETWORK...

Flags are docker's and repeat as there (one --subnet/--gateway/--ip-range
per family). A CONTAINER is a named network namespace (ip netns): connect
creates it when missing and then removes it with its last network.
-o parent=eth0.10 creates VLAN 10 on eth0 when missing, and removes it with
the last network using it; no parent makes an internal network on a dummy
link. --host-shim gives the host (NETNS with -n) a bridge-mode macvlan on
the parent, with an address from the network and a route to it (to the
--ip-range, plus a host route for each container given an --ip outside it):
the fix for "the host cannot reach its macvlan containers".
State: /run/vmlink/state.json (locked); 'net ls' reconciles it with the
kernel and says what it repaired. A corrupt state file stops every net
command: move it aside and 'net ls' removes what it recorded, by the marks.

` + exitTable

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func runNet(g *globals, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(g.Stdout, netHelp)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	ctx := g.Ctx
	nets := &dataplane.Networks{Host: g.NetNS, StateDir: g.StateDir}
	op, rest := args[0], args[1:]
	var err error
	switch op {
	case "create":
		err = netCreate(ctx, g, nets, rest)
	case "connect":
		err = netConnect(ctx, g, nets, rest)
	case "disconnect":
		err = netDisconnect(ctx, g, nets, rest)
	case "ls", "list":
		err = netList(ctx, g, nets, rest)
	case "inspect":
		err = netInspect(ctx, g, nets, rest)
	case "rm", "remove":
		err = netRemove(ctx, g, nets, rest)
	default:
		err = usagef("net: unknown command %q: use create, connect, disconnect, ls, inspect or rm", op)
	}
	if errors.Is(err, errHelp) {
		fmt.Fprint(g.Stdout, netHelp)
		return exitOK
	}
	if err != nil {
		return fail(g, err)
	}
	return exitOK
}

// parseNetFlags parses a net subcommand's flags and positional arguments:
// -h/--help (or a lone "help") asks for the help, a bad flag is a usage
// error naming the subcommand.
func parseNetFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) || (err == nil && len(pos) == 1 && pos[0] == "help") {
		return nil, errHelp
	}
	if err != nil {
		return nil, usagef("net %s: %v: see 'vmlink net help'", fs.Name(), err)
	}
	return pos, nil
}

func netCreate(ctx context.Context, g *globals, nets *dataplane.Networks, args []string) error {
	spec, err := parseNetCreate(args)
	if err != nil {
		return err
	}
	if err := g.checkNetNS(); err != nil {
		return err
	}
	rec, err := nets.Create(ctx, spec)
	if err != nil {
		return err
	}
	fmt.Fprintln(g.Stdout, rec.ID)
	return nil
}

// parseNetCreate parses docker's `network create` flags into a spec; the
// rules between them (a gateway inside its subnet…) are dataplane's.
func parseNetCreate(args []string) (dataplane.NetworkSpec, error) {
	fs := newFlags("create")
	var subnets, gateways, ranges, aux, opts multi
	driver := fs.String("d", "macvlan", "")
	fs.StringVar(driver, "driver", "macvlan", "")
	fs.Var(&subnets, "subnet", "")
	fs.Var(&gateways, "gateway", "")
	fs.Var(&ranges, "ip-range", "")
	fs.Var(&aux, "aux-address", "")
	fs.Var(&opts, "o", "")
	fs.Var(&opts, "opt", "")
	ipv6 := fs.Bool("ipv6", false, "")
	internal := fs.Bool("internal", false, "")
	shim := fs.Bool("host-shim", false, "")
	fs.Bool("attachable", false, "") // accepted for docker compatibility: every vmlink network is
	var spec dataplane.NetworkSpec
	pos, err := parseNetFlags(fs, args)
	if err != nil {
		return spec, err
	}
	if len(pos) != 1 {
		return spec, usagef("net create: give exactly one network NAME (got %d)", len(pos))
	}
	spec = dataplane.NetworkSpec{Name: pos[0], Driver: *driver, IPv6: *ipv6, Internal: *internal, HostShim: *shim,
		Aux: map[string]netip.Addr{}}
	for _, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return spec, usagef("net create: --subnet %q: not a CIDR prefix such as 10.0.10.0/24", s)
		}
		spec.Subnets = append(spec.Subnets, p)
	}
	for _, s := range gateways {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return spec, usagef("net create: --gateway %q: not an IP address", s)
		}
		spec.Gateways = append(spec.Gateways, a)
	}
	for _, s := range ranges {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return spec, usagef("net create: --ip-range %q: not a CIDR prefix", s)
		}
		spec.IPRanges = append(spec.IPRanges, p)
	}
	for _, s := range aux {
		k, v, ok := strings.Cut(s, "=")
		a, err := netip.ParseAddr(v)
		if !ok || k == "" || err != nil {
			return spec, usagef("net create: --aux-address %q: write NAME=IP, e.g. router=10.0.10.254", s)
		}
		spec.Aux[k] = a
	}
	given := map[string]bool{}
	for _, s := range opts {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return spec, usagef("net create: -o %q: write KEY=VALUE, e.g. parent=eth0.10", s)
		}
		if given[k] {
			return spec, usagef("net create: -o %s given twice: give each option once", k)
		}
		given[k] = true
		if err := spec.Options.Set(k, v); err != nil {
			return spec, usagef("net create: %v", err)
		}
	}
	return spec, nil
}

func netConnect(ctx context.Context, g *globals, nets *dataplane.Networks, args []string) error {
	fs := newFlags("connect")
	ip := fs.String("ip", "", "")
	ip6 := fs.String("ip6", "", "")
	mac := fs.String("mac-address", "", "")
	pos, err := parseNetFlags(fs, args)
	if err != nil {
		return err
	}
	if err := g.checkNetNS(); err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("net connect: give NETWORK and CONTAINER")
	}
	spec := dataplane.ConnectSpec{Network: pos[0], Container: pos[1]}
	for flagName, s := range map[string]string{"--ip": *ip, "--ip6": *ip6} {
		if s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || (flagName == "--ip") != a.Is4() {
			return usagef("net connect: %s %q: not an IPv%s address", flagName, s, map[bool]string{true: "4", false: "6"}[flagName == "--ip"])
		}
		spec.IPs = append(spec.IPs, a)
	}
	if *mac != "" {
		m, err := link.ParseMAC(*mac)
		if err != nil {
			return usagef("net connect: --mac-address %q: %v", *mac, err)
		}
		spec.MAC = m
	}
	_, err = nets.Connect(ctx, spec)
	return err
}

func netDisconnect(ctx context.Context, g *globals, nets *dataplane.Networks, args []string) error {
	fs := newFlags("disconnect")
	fs.Bool("f", false, "")
	fs.Bool("force", false, "")
	pos, err := parseNetFlags(fs, args)
	if err != nil {
		return err
	}
	if err := g.checkNetNS(); err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("net disconnect: give NETWORK and CONTAINER")
	}
	return nets.Disconnect(ctx, pos[0], pos[1])
}

func netList(ctx context.Context, g *globals, nets *dataplane.Networks, args []string) error {
	fs := newFlags("ls")
	quiet := fs.Bool("q", false, "")
	fs.BoolVar(quiet, "quiet", false, "")
	pos, err := parseNetFlags(fs, args)
	if err != nil {
		return err
	}
	if err := g.checkNetNS(); err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("net ls: unexpected %q: takes only -q", pos[0])
	}
	recs, found, err := nets.List(ctx)
	if err != nil {
		return err
	}
	for _, f := range found {
		fmt.Fprintf(g.Stderr, "vmlink: reconciled: %s\n", f)
	}
	if g.JSON {
		out := []map[string]any{}
		for _, r := range recs {
			out = append(out, map[string]any{"Name": r.Name, "ID": shortNetID(r.ID), "Driver": r.Driver, "Scope": "local"})
		}
		writeJSON(g, out)
		return nil
	}
	if *quiet {
		for _, r := range recs {
			fmt.Fprintln(g.Stdout, shortNetID(r.ID))
		}
		return nil
	}
	tw := tabwriter.NewWriter(g.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NETWORK ID\tNAME\tDRIVER\tSCOPE\tPARENT\tMODE\tCONTAINERS")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\tlocal\t%s\t%s\t%d\n", shortNetID(r.ID), r.Name, r.Driver, r.Parent, r.Mode, len(r.Endpoints))
	}
	return tw.Flush()
}

func netInspect(ctx context.Context, g *globals, nets *dataplane.Networks, args []string) error {
	args, err := parseNetFlags(newFlags("inspect"), args)
	if err != nil {
		return err
	}
	if err := g.checkNetNS(); err != nil {
		return err
	}
	if len(args) == 0 {
		return usagef("net inspect: give one or more NETWORK names")
	}
	var out []dockerNetwork
	for _, name := range args {
		r, err := nets.Inspect(ctx, name)
		if err != nil {
			return err
		}
		out = append(out, dockerInspect(r))
	}
	// docker prints inspect indented, always.
	b, err := json.MarshalIndent(out, "", "    ")
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Stdout, "%s\n", b)
	return nil
}

func netRemove(ctx context.Context, g *globals, nets *dataplane.Networks, args []string) error {
	args, err := parseNetFlags(newFlags("rm"), args)
	if err != nil {
		return err
	}
	if err := g.checkNetNS(); err != nil {
		return err
	}
	if len(args) == 0 {
		return usagef("net rm: give one or more NETWORK names")
	}
	// Reconcile first, as net ls does: endpoints whose namespaces are gone
	// are not active, and must not block the removal.
	_, found, err := nets.List(ctx)
	if err != nil {
		return err
	}
	for _, f := range found {
		fmt.Fprintf(g.Stderr, "vmlink: reconciled: %s\n", f)
	}
	var errs []error
	for _, name := range args {
		if err := nets.Remove(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(g.Stdout, name)
	}
	return errors.Join(errs...)
}

// shortNetID is the 12-character id docker prints; a shorter id (a state
// file written by hand or by an older vmlink) is printed whole.
func shortNetID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
