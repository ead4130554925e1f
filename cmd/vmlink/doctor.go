package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/verify"
)

func init() {
	register(&command{
		Name:    "doctor",
		Summary: "diagnose the classic macvlan/VLAN problems of a parent, each with its fix",
		Run:     runDoctor,
	})
}

const doctorHelp = `usage: vmlink [-n NETNS] doctor [--parent IFACE] [-j] [OPTIONS]

Diagnoses the classic macvlan/VLAN problems from the kernel's state (and
two short probes on the wire), on IFACE or, without --parent, on every
interface of NETNS (or the current namespace) that has macvlan, macvtap,
ipvlan or VLAN links on it in any namespace, and on the parents of the
networks of 'vmlink net'. Each finding says what is wrong, why, and the
commands that fix it:

  host-isolation        the host has addresses on a parent whose macvlan
                        children it cannot reach (no shim)
  wireless-parent       the parent is wireless: the access point drops
                        frames from the children's MACs (use ipvlan l2)
  parent-down           the parent is down
  no-carrier            the parent is up without carrier
  no-8021q              an X.N parent cannot exist: no 802.1Q in the kernel
  duplicate-mac         a child's MAC is carried in another namespace too
  overlapping-subnets   two address plans overlap on one wire
  mtu-above-parent      a child's MTU is above its lower's
  vepa-no-reflection    vepa children, and the switch does not reflect
  child-mac-unanswered  the wire answers the parent's MAC but not the
                        children's (port security, promiscuous mode refused)

  --parent IFACE   the interface to diagnose (default: all with children)
  --wait D         least wait for a probe's answer (default 300ms)
  --sysfs DIR      where sysfs is mounted (default /sys)
  -j, --json       print the report as JSON: {"parents", "findings":
                   [{"id", "severity", "subject", "what", "why", "fix"}],
                   "skipped": [{"check", "subject", "reason"}]}
Exit status: 0 nothing found, 1 findings, 2 the command line is wrong,
3 nothing could be inspected (no privileges, no such parent or namespace,
no interface with children).

` + exitTable

type doctorArgs struct {
	parent, sysfs string
	wait          time.Duration
	json          bool
}

func parseDoctorArgs(args []string, g *globals) (*doctorArgs, error) {
	a := &doctorArgs{json: g.JSON}
	fs := newFlags("doctor")
	jsonFlags(fs, &a.json)
	fs.StringVar(&a.parent, "parent", "", "")
	fs.StringVar(&a.sysfs, "sysfs", "", "")
	wait := fs.String("wait", "", "")
	if err := parseFlags(fs, "doctor", args, errHelp); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usagef("doctor: unexpected argument %q: name the interface with --parent IFACE", fs.Arg(0))
	}
	if *wait != "" {
		d, err := time.ParseDuration(*wait)
		if err != nil || d <= 0 {
			return nil, usagef("doctor: --wait %q: use a positive duration like 300ms", *wait)
		}
		a.wait = d
	}
	if a.sysfs != "" {
		if st, err := os.Stat(a.sysfs); err != nil || !st.IsDir() {
			return nil, usagef("doctor: --sysfs %q is not a directory: name where sysfs is mounted (default /sys)", a.sysfs)
		}
	}
	return a, nil
}

func runDoctor(g *globals, args []string) int {
	a, code, done := startCommand(g, args, doctorHelp, parseDoctorArgs)
	if done {
		return code
	}
	ctx := g.Ctx
	nets, err := (&dataplane.Networks{StateDir: g.StateDir}).DoctorNetworks()
	if err != nil {
		return fail(g, judgeError("doctor", err))
	}
	rep, err := verify.Doctor(ctx, verify.DoctorOptions{
		NetNS: g.NetNS, Parent: a.parent, Networks: nets, SysRoot: a.sysfs, Wait: a.wait,
		VLANSupport: func(ctx context.Context) error { return dataplane.Probe(ctx, "8021q") },
	})
	if err != nil {
		return fail(g, judgeError("doctor", err))
	}
	if a.json {
		err = rep.WriteJSON(g.Stdout, g.Pretty)
	} else {
		err = rep.WriteTable(g.Stdout)
	}
	if err != nil {
		return fail(g, fmt.Errorf("doctor: write report: %w", err))
	}
	if !rep.OK() {
		return exitFailed
	}
	return exitOK
}
