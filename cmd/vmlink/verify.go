package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/internal/nsname"
	"github.com/vmlink/vmlink/verify"
	"github.com/vmlink/vmlink/verify/capture"
)

func init() {
	register(&command{
		Name:    "verify",
		Summary: "prove on the wire that macvlan modes, VLAN tags and reachability behave as configured",
		Run:     runVerify,
	})
}

const verifyHelp = `usage: vmlink [-n NETNS] verify --parent IFACE [OPTIONS]
       vmlink verify --topology FILE [--parent IFACE] [OPTIONS]

Finds every macvlan, macvtap, ipvlan and VLAN link on IFACE (in NETNS, or
the current namespace) across every network namespace of the host (named
ones in /run/netns, Docker's, bind mounts, every process's), names each as
its user knows it (docker:b1, podman:p1, k8s:NAMESPACE/POD, NAME), treats
IFACE's own addresses as the host stack, detects whether the switch on
IFACE's wire reflects frames, probes every ordered pair of endpoints (ARP,
ICMP echo; NDP and ICMPv6 echo where IPv6 addresses exist) from inside their
namespaces while capturing on IFACE, and compares what happened with what
the macvlan modes and VLANs promise.

With --topology, the topology is the file applied with 'vmlink up -f FILE':
its objects are found by the names the file gives, and every root parent
of the file is verified in turn (--parent picks one of them). With -j each
parent's report is one JSON object on a line of its own.

  --parent IFACE    the parent interface (required without --topology); one
                    without macvlan/VLAN links is nothing to verify (exit 3)
  --reflects R      yes, no or auto (default): whether the switch sends
                    frames back out of the port they came in on (hairpin)
  --wait D          how long one probe waits for each answer, at most 1m
                    (default: derived from the switch round trip, 150ms-1s);
                    the run itself has no deadline of its own
  -w FILE           also write the capture on IFACE as pcapng
  --no-capture      skip the capture and the wire checks
  -j, --json        print the report as JSON
  --junit FILE      write a JUnit XML report (one test case per check)
  --topology FILE   a topology file applied with 'vmlink up -f FILE'
  --network N,...   only endpoints on these networks: Docker networks (asked
                    over the Docker API) or vmlink networks ('vmlink net')
  --container C,... only these containers: b1, docker:b1, podman:p1,
                    k8s:default/web-0, or an id prefix
  --netns NS,...    only endpoints in these namespaces (name, shown name
                    or path)
  --docker-host H   the Docker API socket (default: $DOCKER_HOST, else
                    unix:///var/run/docker.sock); dockerds found running
                    are asked too
  --min-pairs N     fail (exit 1) when fewer than N ordered pairs were probed

` + exitTable

type verifyArgs struct {
	parent, junit, write, topology string
	reflects                       *bool
	wait                           time.Duration
	json, noCapture                bool
	dockerHost                     string
	networks, containers, netns    []string
	minPairs                       int
}

// listFlag collects a repeatable, comma-separated flag.
type listFlag struct{ v *[]string }

func (l listFlag) String() string { return "" }

func (l listFlag) Set(s string) error {
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l.v = append(*l.v, item)
		}
	}
	return nil
}

func parseVerifyArgs(args []string, g *globals) (*verifyArgs, error) {
	a := &verifyArgs{json: g.JSON}
	fs := newFlags("verify")
	jsonFlags(fs, &a.json)
	fs.StringVar(&a.parent, "parent", "", "")
	fs.StringVar(&a.junit, "junit", "", "")
	fs.StringVar(&a.write, "w", "", "")
	fs.StringVar(&a.topology, "topology", "", "")
	reflects := fs.String("reflects", "auto", "")
	wait := fs.String("wait", "", "")
	fs.BoolVar(&a.noCapture, "no-capture", false, "")
	fs.StringVar(&a.dockerHost, "docker-host", "", "")
	fs.Var(listFlag{&a.networks}, "network", "")
	fs.Var(listFlag{&a.containers}, "container", "")
	fs.Var(listFlag{&a.netns}, "netns", "")
	fs.IntVar(&a.minPairs, "min-pairs", 0, "")
	if err := parseFlags(fs, "verify", args, errHelp); err != nil {
		return nil, err
	}
	if a.minPairs < 0 {
		return nil, usagef("verify: --min-pairs %d: use a count of ordered pairs, 0 or more", a.minPairs)
	}
	if a.dockerHost != "" {
		if _, err := nsname.DockerSocket(a.dockerHost); err != nil {
			return nil, usagef("verify: --docker-host: %v", err)
		}
	}
	if a.topology != "" && len(a.networks)+len(a.containers)+len(a.netns) > 0 {
		return nil, usagef("verify: --network, --container and --netns filter what is discovered on --parent: drop --topology")
	}
	if fs.NArg() > 0 {
		return nil, usagef("verify: unexpected argument %q: see 'vmlink verify help'", fs.Arg(0))
	}
	if a.topology != "" && g.NetNS != "" {
		return nil, usagef("verify: -n does not go with --topology: the file names its host namespace (host: NAME)")
	}
	if a.parent == "" && a.topology == "" {
		return nil, usagef("verify: --parent IFACE or --topology FILE is required: name the interface the macvlan/VLAN links sit on, or the applied topology file")
	}
	switch strings.ToLower(*reflects) {
	case "auto", "":
	case "yes", "on", "true":
		v := true
		a.reflects = &v
	case "no", "off", "false":
		v := false
		a.reflects = &v
	default:
		return nil, usagef("verify: --reflects %q: use yes, no or auto", *reflects)
	}
	if *wait != "" {
		d, err := time.ParseDuration(*wait)
		if err != nil || d <= 0 {
			return nil, usagef("verify: --wait %q: use a positive duration like 200ms", *wait)
		}
		if d > maxProbeWait {
			return nil, usagef("verify: --wait %s: one probe's wait is at most %v (it bounds each answer, not the run)", *wait, maxProbeWait)
		}
		a.wait = d
	}
	if a.write != "" && a.noCapture {
		return nil, usagef("verify: -w needs the capture: drop --no-capture")
	}
	if a.write == "-" {
		return nil, usagef("verify: -w - would mix the capture with the report on stdout: write to a file")
	}
	if a.parent == "lo" {
		return nil, usagef("verify: --parent lo: the loopback carries no macvlan or VLAN links: name the Ethernet interface they sit on")
	}
	return a, nil
}

// maxProbeWait bounds --wait: an answer later than a minute is no answer
// on any segment verify judges, and an unanswered pair waits three times.
const maxProbeWait = time.Minute

func runVerify(g *globals, args []string) int {
	a, code, done := startCommand(g, args, verifyHelp, parseVerifyArgs)
	if done {
		return code
	}
	// No deadline of our own: each probe's wait is bounded (--wait, or
	// the pacer's), so the run ends when its pairs are judged, however
	// many; a signal ends it sooner.
	ctx := g.Ctx

	topos, err := verifyTopologies(ctx, g, a)
	if err != nil {
		return fail(g, err)
	}
	if a.write != "" && len(topos) > 1 {
		return fail(g, usagef("verify: -w writes one parent's capture, and %s has %d root parents: pick one with --parent", a.topology, len(topos)))
	}
	var reps []*verify.Report
	for i, topo := range topos {
		if a.reflects != nil {
			topo.Switch.Reflects = a.reflects
			topo.Switch.ReflectsFrom = "given with --reflects"
		}
		opts := verify.Options{Wait: a.wait, NoCapture: a.noCapture, MinPairs: a.minPairs}
		var pw *capture.PcapngWriter
		if a.write != "" {
			f, err := os.Create(a.write)
			if err != nil {
				return fail(g, fmt.Errorf("verify: -w: %w", err))
			}
			defer f.Close()
			pw, err = capture.NewPcapngWriter(f, capture.PcapngOptions{Iface: topo.Parent.Name})
			if err != nil {
				return fail(g, fmt.Errorf("verify: -w: %w", err))
			}
			opts.OnFrame = func(fr *capture.Frame) { _ = pw.WriteFrame(fr, "") }
		}
		rep, err := verify.Run(ctx, topo, opts)
		if err != nil {
			return fail(g, verifyError(err))
		}
		if pw != nil {
			if err := pw.Flush(); err != nil {
				return fail(g, fmt.Errorf("verify: -w: %w", err))
			}
		}
		reps = append(reps, rep)
		if a.json {
			err = rep.WriteJSON(g.Stdout, g.Pretty)
		} else {
			if i > 0 {
				fmt.Fprintln(g.Stdout)
			}
			err = rep.WriteTable(g.Stdout)
		}
		if err != nil {
			return fail(g, fmt.Errorf("verify: write report: %w", err))
		}
	}
	if a.junit != "" {
		f, err := os.Create(a.junit)
		if err != nil {
			return fail(g, fmt.Errorf("verify: --junit: %w", err))
		}
		werr := verify.WriteJUnit(f, reps...)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fail(g, fmt.Errorf("verify: --junit: %w", werr))
		}
	}
	for _, rep := range reps {
		if !rep.OK {
			return exitFailed
		}
	}
	return exitOK
}

// verifyTopologies is what to verify: the parent discovered live, or the
// root parents of an applied topology file (only --parent's when given).
func verifyTopologies(ctx context.Context, g *globals, a *verifyArgs) ([]verify.Topology, error) {
	if a.topology == "" {
		filter := verify.EndpointFilter{Networks: a.networks, Containers: a.containers, NetNS: a.netns}
		nets := &dataplane.Networks{Host: g.NetNS}
		for _, name := range a.networks {
			members, ok, err := nets.Members(name)
			if err != nil {
				return nil, &envError{err: fmt.Errorf("verify: --network %s: %w", name, err)}
			}
			if ok {
				if filter.NetworkMembers == nil {
					filter.NetworkMembers = map[string][]string{}
				}
				filter.NetworkMembers[name] = members
			}
		}
		topo, err := verify.DiscoverWith(ctx, g.NetNS, a.parent, verify.DiscoverOptions{DockerHost: a.dockerHost, Filter: filter})
		if err != nil {
			return nil, verifyError(err)
		}
		if !hasChildren(topo) {
			// An empty matrix would pass: say there is nothing to judge.
			return nil, &envError{fmt.Errorf("verify: --parent %s has no macvlan, macvtap, ipvlan or VLAN links in %s: nothing to verify", a.parent, topo.Search)}
		}
		return []verify.Topology{topo}, nil
	}
	t, err := dataplane.ParseFile(a.topology)
	if err != nil {
		return nil, usagef("verify: %v", err)
	}
	all, err := dataplane.AppliedVerifyTopologies(ctx, t)
	if err != nil {
		return nil, verifyError(err)
	}
	if a.parent == "" {
		if len(all) == 0 {
			return nil, usagef("verify: %s has no interfaces on any parent: nothing to verify", a.topology)
		}
		return all, nil
	}
	var names []string
	for _, vt := range all {
		if vt.Parent.Name == a.parent {
			return []verify.Topology{vt}, nil
		}
		names = append(names, vt.Parent.Name)
	}
	return nil, usagef("verify: %s has no interfaces on parent %q: its parents are %s", a.topology, a.parent, strings.Join(names, ", "))
}

// hasChildren reports whether t has anything on its parent besides the
// host's own stack.
func hasChildren(t verify.Topology) bool {
	for _, ep := range t.Endpoints {
		if ep.Kind != verify.KindHost {
			return true
		}
	}
	return len(t.VLANLinks) > 0
}

// verifyError names the command; exitCode reads verify's error kinds
// (ErrTopology, ErrEnvironment) through the wrapping.
func verifyError(err error) error { return judgeError("verify", err) }

// judgeError prefixes an error of package verify (verify, doctor) with the
// command's name; exitCode maps its kinds to the exit status.
func judgeError(cmd string, err error) error {
	return fmt.Errorf("%s: %w", cmd, err)
}
