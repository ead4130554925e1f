package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vmlink/vmlink/link"
)

func init() {
	register(&command{
		Name:    "link",
		Summary: "add, change, delete and show VLAN, macvlan, macvtap and ipvlan links (the `ip link` dialect)",
		Run:     runLink,
	})
}

const linkHelp = `usage: vmlink [-n NETNS] [-j [-p]] link COMMAND

  link add [link DEV] [name] NAME [mtu MTU] [address LLADDR] [txqueuelen N]
           [group GROUP] [alias TEXT] [netns {NAME|PID}] [up] type TYPE [ARGS]
  link set [dev] DEV [up|down] [name NEWNAME] [mtu MTU] [address LLADDR]
           [txqueuelen N] [group GROUP] [alias TEXT] [netns {NAME|PID}]
           [type TYPE ARGS]
  link del [dev] DEV [type TYPE]  |  link del group GROUP
  link show [[dev] DEV | group GROUP] [up] [type TYPE]
  link batch FILE          run FILE's lines (ip -batch style: "link add …");
                           consecutive adds go to the kernel pipelined, all
                           or nothing; "-" reads stdin
  link help [TYPE]

TYPE := vlan | macvlan | macvtap | ipvlan | veth | dummy
` + vlanHelp + macvlanHelp + ipvlanHelp + `
Differences from ip: a macvlan/macvtap without mode is created in bridge
mode (the kernel's default would be vepa); an alias given to add is set
(ip's is silently dropped by the kernel); a link added to another netns
under a name this namespace has (eth0 link eth0 netns NS) is created under
a temporary name and renamed there, which older kernels need (in batch
files too); options ip would send and the kernel refuse or ignore are
refused, naming the option (bclim before Linux 6.4: the link is deleted).

` + exitTable

const vlanHelp = `
vlan ARGS := id VLANID [protocol {802.1Q|802.1ad}] [reorder_hdr {on|off}]
             [gvrp {on|off}] [mvrp {on|off}] [loose_binding {on|off}]
             [bridge_binding {on|off}] [ingress-qos-map FROM:TO …]
             [egress-qos-map FROM:TO …]          VLANID := 0-4094
`

const macvlanHelp = `
macvlan|macvtap ARGS := [mode {private|vepa|bridge|passthru|source}]
             [nopromisc (passthru only)] [nodst (source only)]
             [flag {nopromisc|nodst|null}]
             [macaddr {add MAC|del MAC|set [MAC …]|flush} (source only)]
             [bcqueuelen N] [bclim N]            mode defaults to bridge
`

const ipvlanHelp = `
ipvlan ARGS := [mode {l2|l3|l3s}] [bridge|private|vepa]   (defaults: l3 bridge)
`

// helpTopics are what `link help TOPIC` knows besides the kinds with
// options of their own: the subcommands, and kinds without options.
var helpTopics = map[string]bool{"": true, "add": true, "set": true, "change": true, "del": true, "delete": true,
	"show": true, "list": true, "batch": true, "veth": true, "dummy": true, "type": true}

// checkHelpTopic refuses `link help foo` for a foo that is neither a kind
// nor a subcommand, instead of printing everything.
func checkHelpTopic(kind string) error {
	switch kind {
	case "vlan", "macvlan", "macvtap", "ipvlan":
		return nil
	}
	if helpTopics[kind] {
		return nil
	}
	return usagef("link help %q: no such type or command: use vlan, macvlan, macvtap, ipvlan, or add, set, del, show, batch", kind)
}

func printLinkHelp(w io.Writer, kind string) {
	switch kind {
	case "vlan":
		fmt.Fprint(w, strings.TrimPrefix(vlanHelp, "\n"))
	case "macvlan", "macvtap":
		fmt.Fprint(w, strings.TrimPrefix(macvlanHelp, "\n"))
	case "ipvlan":
		fmt.Fprint(w, strings.TrimPrefix(ipvlanHelp, "\n"))
	default:
		fmt.Fprint(w, linkHelp)
	}
}

func runLink(g *globals, args []string) int {
	req, err := parseLinkArgs(args)
	if errors.Is(err, errHelp) {
		printLinkHelp(g.Stdout, helpKind(args))
		return exitOK
	}
	if err != nil {
		return fail(g, err)
	}
	switch req.op {
	case opHelp:
		if err := checkHelpTopic(req.kind); err != nil {
			return fail(g, err)
		}
		printLinkHelp(g.Stdout, req.kind)
		return exitOK
	}
	ctx := g.Ctx
	if err := g.checkNetNS(); err != nil {
		return fail(g, err)
	}
	h, err := link.Open(g.NetNS)
	if err != nil {
		return fail(g, err)
	}
	defer h.Close()
	if req.op == opBatch {
		err = runLinkBatch(ctx, g, h, req.file)
	} else {
		err = execLink(ctx, g, h, req)
	}
	if err != nil {
		return fail(g, err)
	}
	return exitOK
}

// helpKind finds the kind a `… type KIND … help` asks about.
func helpKind(args []string) string {
	for i, a := range args {
		if matches(a, "type") && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// execLink runs one parsed command (not batch).
func execLink(ctx context.Context, g *globals, h *link.Handle, req *linkRequest) error {
	switch req.op {
	case opAdd:
		_, err := h.Create(ctx, req.spec)
		return err
	case opSet:
		return h.Set(ctx, req.dev, req.change)
	case opDel:
		if req.group != nil {
			return h.DeleteGroup(ctx, *req.group)
		}
		if req.kind != "" {
			l, err := h.Get(ctx, req.dev)
			if err != nil {
				return err
			}
			if l.Kind != req.kind {
				return usagef("link del %s: the link is a %s, not a %s: nothing deleted", req.dev, orNone(l.Kind), req.kind)
			}
		}
		return h.Delete(ctx, req.dev)
	case opShow:
		return showLinks(ctx, g, h, req)
	}
	return usagef("link %s: cannot run here", req.op)
}

func orNone(kind string) string {
	if kind == "" {
		return "link without a kind"
	}
	return kind
}

// showLinks prints links like `ip -d link show` (or `ip -d -j link show`).
func showLinks(ctx context.Context, g *globals, h *link.Handle, req *linkRequest) error {
	var links []*link.Link
	if req.dev != "" {
		l, err := h.Get(ctx, req.dev)
		if err != nil {
			return err
		}
		if (req.kind == "" || l.Kind == req.kind) && (req.group == nil || l.Group == *req.group) && (!req.upOnly || l.Up()) {
			links = append(links, l)
		}
	} else {
		var err error
		links, err = h.List(ctx, link.Filter{Kind: req.kind, Group: req.group, Up: req.upOnly})
		if err != nil {
			return err
		}
	}
	descs := make([]*link.Description, len(links))
	var nsNames map[int32]string
	for i, l := range links {
		descs[i] = l.Describe()
		if d := descs[i]; d.LinkNetNSID != nil && !g.JSON {
			if nsNames == nil {
				// Best effort, as ip: without names the id is printed.
				if nsNames, _ = h.NetNSNames(ctx); nsNames == nil {
					nsNames = map[int32]string{}
				}
			}
			d.LinkNetNS = nsNames[*d.LinkNetNSID]
		}
	}
	if g.JSON {
		var (
			b   []byte
			err error
		)
		if g.Pretty {
			b, err = json.MarshalIndent(descs, "", "    ")
		} else {
			b, err = json.Marshal(descs)
		}
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		_, err = fmt.Fprintf(g.Stdout, "%s\n", b)
		return err
	}
	for _, d := range descs {
		if _, err := io.WriteString(g.Stdout, d.Text()); err != nil {
			return err
		}
	}
	return nil
}

// runLinkBatch runs a file of `link …` lines like `ip -batch`: every line is
// parsed first (a bad line stops everything before anything is sent), then
// consecutive add lines go through link.CreateBatch (pipelined, all or
// nothing) and the other lines run one by one, stopping at the first error.
func runLinkBatch(ctx context.Context, g *globals, h *link.Handle, file string) error {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return usagef("link batch: %v", err)
		}
		defer f.Close()
		r = f
	}
	lines, err := parseBatch(r, file)
	if err != nil {
		return err
	}
	var made createdLinks
	defer made.close()
	for i := 0; i < len(lines); {
		if lines[i].req.op != opAdd {
			if err := execLink(ctx, g, h, lines[i].req); err != nil {
				return fmt.Errorf("%s:%d: %w%s", file, lines[i].no, err, made.undo(ctx))
			}
			i++
			continue
		}
		j := i
		var specs []link.Spec
		for j < len(lines) && lines[j].req.op == opAdd {
			specs = append(specs, lines[j].req.spec)
			j++
		}
		if err := h.CreateBatch(ctx, specs); err != nil {
			// Name the file's line, not the position in this run of adds.
			undone := made.undo(ctx)
			var be *link.BatchError
			if errors.As(err, &be) && be.Line >= 1 && be.Line <= j-i {
				return &fileLineError{msg: fmt.Sprintf("%s:%d: %s%s", file, lines[i+be.Line-1].no, be.Msg, undone), err: err}
			}
			return fmt.Errorf("%s: lines %d-%d: %w%s", file, lines[i].no, lines[j-1].no, err, undone)
		}
		made.note(ctx, h, specs)
		i = j
	}
	return nil
}

// createdLinks are the links a batch's add lines created, so that a later
// line failing takes them away again: a batch is all or nothing for the
// links it adds. (A set line's change to a link that existed before is not
// undone.)
type createdLinks struct {
	links   []createdLink
	handles []*link.Handle // opened for other namespaces, closed by close
}

type createdLink struct {
	h     *link.Handle
	index int32
}

// note remembers the links specs created, by ifindex (a later set line may
// rename them), in the namespace each went to.
func (c *createdLinks) note(ctx context.Context, h *link.Handle, specs []link.Spec) {
	for _, s := range specs {
		b := s.Base()
		there := h
		if b.NetNS != nil {
			if b.NetNS.Name == "" {
				continue // a pid or fd target: not ours to reopen
			}
			oh, err := link.Open(b.NetNS.Name)
			if err != nil {
				continue
			}
			c.handles = append(c.handles, oh)
			there = oh
		}
		if l, err := there.Get(ctx, b.Name); err == nil {
			c.links = append(c.links, createdLink{there, l.Index})
		}
	}
}

// undo deletes the noted links, newest first, and says so for the error
// message.
func (c *createdLinks) undo(ctx context.Context) string {
	if len(c.links) == 0 {
		return ""
	}
	ctx = context.WithoutCancel(ctx)
	n := 0
	var failed []string
	for i := len(c.links) - 1; i >= 0; i-- {
		cl := c.links[i]
		all, err := cl.h.List(ctx, link.Filter{})
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		for _, l := range all {
			if l.Index != cl.index {
				continue
			}
			if err := cl.h.Delete(ctx, l.Name); err != nil && !errors.Is(err, link.ErrNotFound) {
				failed = append(failed, err.Error())
			} else {
				n++
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Sprintf("; removed %d links the batch had added, but not all: %s", n, strings.Join(failed, "; "))
	}
	return fmt.Sprintf("; removed the %d links the batch had added", n)
}

func (c *createdLinks) close() {
	for _, h := range c.handles {
		h.Close()
	}
}

// fileLineError is an error re-worded to name a line of the file, with the
// original kept for exitCode.
type fileLineError struct {
	msg string
	err error
}

func (e *fileLineError) Error() string { return e.msg }
func (e *fileLineError) Unwrap() error { return e.err }
