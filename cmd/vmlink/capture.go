package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vmlink/vmlink/link"
	"github.com/vmlink/vmlink/verify/capture"
)

func init() {
	register(&command{
		Name:    "capture",
		Summary: "capture frames with their real VLAN tags, or read a pcap/pcapng (tcpdump -e style)",
		Run:     runCapture,
	})
}

const captureHelp = `usage: vmlink [-n NETNS] capture -i IFACE [OPTIONS]     capture live
       vmlink capture -r FILE [OPTIONS]                 read a pcap or pcapng

  -i IFACE          interface to capture on (in NETNS with -n), usually the
                    parent of the VLAN/macvlan links; the outer VLAN tag the
                    kernel strips is put back with its real TPID
  -r FILE           read FILE (pcap or pcapng, from tcpdump, tshark or us; - is stdin)
  -c COUNT          stop after COUNT frames
  -w FILE           write pcapng (tags in place, direction, and the owner of
                    each source MAC as a packet comment); - streams to stdout
                    (vmlink capture -i h0 -w - | wireshark -k -i -)
  -j                one JSON object per frame
  --vlan N          keep frames with VLAN id N in any tag (0: priority tags)
  --tpid P          keep frames with a tag of type P: 802.1q, 802.1ad or 0xNNNN
  --mac MAC         keep frames from or to MAC
  --ethertype E     keep frames whose payload is E: arp, ipv4, ipv6, lldp or 0xNNNN
  --timeout D       stop after D (e.g. 10s, 2m)
  --snaplen N       bytes kept per frame (default 262144)
  --no-promisc      do not put IFACE into promiscuous mode
  --docker-host H   the Docker API socket naming containers' MACs as
                    docker:NAME/IFACE (default: $DOCKER_HOST, else
                    unix:///var/run/docker.sock)
Filters combine with AND; live they run in the kernel as classic BPF.
Output: one line per frame as tcpdump -e -nn, then a per-VLAN and per-MAC
summary (on stderr with -w or -j). Ctrl-C stops and prints the summary.

` + exitTable

// captureArgs is the parsed command line.
type captureArgs struct {
	iface, read, write, dockerHost string
	count                          int
	json                           bool
	filter                         capture.Filter
	timeout                        time.Duration
	snaplen                        int
	noPromisc                      bool
}

func parseCaptureArgs(args []string, g *globals) (*captureArgs, error) {
	a := &captureArgs{json: g.JSON}
	fs := newFlags("capture")
	jsonFlags(fs, &a.json)
	fs.StringVar(&a.iface, "i", "", "")
	fs.StringVar(&a.read, "r", "", "")
	fs.StringVar(&a.write, "w", "", "")
	count := fs.String("c", "", "")
	vlan := fs.String("vlan", "", "")
	tpid := fs.String("tpid", "", "")
	mac := fs.String("mac", "", "")
	etype := fs.String("ethertype", "", "")
	timeout := fs.String("timeout", "", "")
	snaplen := fs.String("snaplen", "", "")
	fs.BoolVar(&a.noPromisc, "no-promisc", false, "")
	fs.StringVar(&a.dockerHost, "docker-host", "", "")
	if err := parseFlags(fs, "capture", args, errHelp); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usagef("capture: unexpected argument %q: filters are options (--vlan, --mac, --ethertype); see 'vmlink capture help'", fs.Arg(0))
	}
	switch {
	case a.iface == "" && a.read == "":
		return nil, usagef("capture: give -i IFACE to capture live or -r FILE to read a capture")
	case a.iface != "" && a.read != "":
		return nil, usagef("capture: -i and -r exclude each other: capture live with -i, or read a file with -r")
	case a.write == "-" && a.json:
		return nil, usagef("capture: -w - and -j both write to stdout: pick one")
	case a.read != "" && a.noPromisc:
		return nil, usagef("capture: --no-promisc applies to -i only")
	}
	if *count != "" {
		n, err := strconv.Atoi(*count)
		if err != nil || n <= 0 {
			return nil, usagef("capture: -c %q: COUNT must be a positive number of frames", *count)
		}
		a.count = n
	}
	if *vlan != "" {
		v, err := strconv.ParseUint(*vlan, 10, 16)
		if err != nil || v > 4095 {
			return nil, usagef("capture: --vlan %q: use a VLAN id 0-4095 (0 selects priority tags)", *vlan)
		}
		vid := uint16(v)
		a.filter.VLAN = &vid
	}
	if *tpid != "" {
		t, err := parseTPID(*tpid)
		if err != nil {
			return nil, usagef("capture: --tpid %q: use 802.1q, 802.1ad, 0x8100, 0x88a8 or 0x9100", *tpid)
		}
		a.filter.TPID = t
	}
	if *mac != "" {
		m, err := capture.ParseMAC(*mac)
		if err != nil {
			return nil, usagef("capture: --mac %q: use six hex bytes like 02:00:00:00:00:01", *mac)
		}
		a.filter.MAC = &m
	}
	if *etype != "" {
		e, err := capture.ParseEtherType(*etype)
		if err != nil {
			return nil, usagef("capture: --ethertype %q: use arp, ipv4, ipv6, lldp or a number from 0x0600 like 0x88cc", *etype)
		}
		a.filter.EtherType = &e
	}
	if err := a.filter.Validate(); err != nil {
		return nil, usagef("capture: %v", err)
	}
	if *timeout != "" {
		d, err := time.ParseDuration(*timeout)
		if err != nil || d <= 0 {
			return nil, usagef("capture: --timeout %q: use a positive duration like 10s or 2m", *timeout)
		}
		a.timeout = d
	}
	if *snaplen != "" {
		n, err := strconv.Atoi(*snaplen)
		if err != nil || n < 64 || n > 1<<20 {
			return nil, usagef("capture: --snaplen %q: use 64-1048576 bytes", *snaplen)
		}
		a.snaplen = n
	}
	if a.read != "" && a.snaplen != 0 {
		return nil, usagef("capture: --snaplen applies to -i only")
	}
	return a, nil
}

// parseTPID reads --tpid: a VLAN protocol as `ip link … protocol` takes it
// (link.ParseVLANProtocol, the one parser of the vocabulary), or another
// tag type by number: 0x9100, the pre-standard S-tag that no VLAN link
// sends but old switches still put on the wire.
func parseTPID(s string) (capture.EtherType, error) {
	if p, err := link.ParseVLANProtocol(s); err == nil {
		return capture.EtherType(p), nil
	}
	e, err := capture.ParseEtherType(s)
	if err != nil {
		return 0, err
	}
	if !e.IsVLAN() {
		return 0, fmt.Errorf("ethertype %s is not a VLAN tag type", e)
	}
	return e, nil
}

// frameSource is a live capture or a file.
type frameSource interface {
	capture.FrameSource
	Close() error
}

func runCapture(g *globals, args []string) int {
	a, code, done := startCommand(g, args, captureHelp, parseCaptureArgs)
	if done {
		return code
	}
	ctx := g.Ctx
	// Ctrl-C or kill is how a live capture ends, as with tcpdump.
	g.signalEnds = a.read == ""
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}

	var (
		src   frameSource
		live  *capture.Capture
		owner capture.Owners
		err   error
	)
	// The output file first: a path that cannot be written is a wrong
	// command line, said before anything is captured.
	var outFile *os.File
	if a.write != "" && a.write != "-" {
		if outFile, err = os.Create(a.write); err != nil {
			return fail(g, usagef("capture: -w: %v", err))
		}
		defer outFile.Close()
	}
	if a.read != "" {
		r, err := capture.OpenFile(a.read)
		if err != nil {
			return fail(g, usagef("capture: -r: %v", err))
		}
		src = r
	} else {
		live, err = capture.Open(ctx, capture.Options{
			NetNS: g.NetNS, Iface: a.iface, Filter: a.filter, Snaplen: a.snaplen, NoPromisc: a.noPromisc,
		})
		if err != nil {
			return fail(g, err)
		}
		src = live
		// Best effort: a namespace we cannot enter only costs its names.
		owner, _ = capture.DiscoverOwners(ctx, a.dockerHost)
	}
	defer src.Close()

	var (
		tally   *capture.Tally
		loopErr error
		n       int
	)
	summaryTo := g.Stdout
	if a.write != "" {
		summaryTo = g.Stderr
		tally, loopErr = writePcapng(ctx, g, a, outFile, src, live, owner)
	} else {
		if a.json {
			summaryTo = g.Stderr
		}
		tally, loopErr = capture.Dump(ctx, src, g.Stdout, capture.DumpOptions{
			JSON: a.json, Filter: a.filter, Count: a.count, Owners: owner, Live: live != nil,
		})
	}
	n = int(tally.Frames)

	var st capture.Stats
	if live != nil {
		_ = live.Close() // final counters; the kernel drops promiscuous mode
		st, _ = live.Stats()
	}
	var sum strings.Builder
	if a.write == "" && !a.json {
		sum.WriteString("\n")
	}
	fmt.Fprintf(&sum, "%d frames captured", n)
	if live != nil {
		fmt.Fprintf(&sum, ", %d received by filter, %d dropped by kernel", st.KernelPackets, st.KernelDrops)
	}
	sum.WriteString("\n")
	_ = tally.WriteSummary(&sum, owner)
	io.WriteString(summaryTo, sum.String())
	if loopErr != nil {
		return fail(g, loopErr)
	}
	return exitOK
}

// writePcapng copies frames into a pcapng file (or stdout for "-"), each
// with its direction and the owner of its source MAC as a comment. Live,
// every frame is flushed so `-w - | wireshark -k -i -` shows it at once.
func writePcapng(ctx context.Context, g *globals, a *captureArgs, file *os.File, src frameSource, live *capture.Capture, owner capture.Owners) (*capture.Tally, error) {
	tally := &capture.Tally{}
	dst := g.Stdout
	if file != nil {
		dst = file
	}
	name := a.iface
	if g.NetNS != "" && name != "" {
		name = g.NetNS + "/" + name
	}
	pw, err := capture.NewPcapngWriter(dst, capture.PcapngOptions{Iface: name, Filter: a.filter.String(), Snaplen: a.snaplen})
	if err != nil {
		return tally, fmt.Errorf("capture: %w", err)
	}
	match := live == nil && !a.filter.IsZero()
	var loopErr error
	for a.count == 0 || int(tally.Frames) < a.count {
		f, err := src.Next(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				loopErr = err
			}
			break
		}
		if match && !a.filter.Match(f) {
			continue
		}
		tally.Add(f)
		who := owner.Owner(f.Src)
		if who == "" {
			who = f.Comment
		}
		if loopErr = pw.WriteFrame(f, who); loopErr == nil && live != nil {
			loopErr = pw.Flush()
		}
		if loopErr != nil {
			break
		}
	}
	if live != nil {
		_ = live.Close() // the final counters go into the file
		if st, err := live.Stats(); err == nil {
			_ = pw.WriteStats(time.Now(), st.KernelPackets, st.KernelDrops)
		}
	}
	if err := pw.Flush(); err != nil && loopErr == nil {
		loopErr = fmt.Errorf("capture: write %s: %w", a.write, err)
	}
	if file != nil {
		if err := file.Close(); err != nil && loopErr == nil {
			loopErr = fmt.Errorf("capture: write %s: %w", a.write, err)
		}
	}
	return tally, loopErr
}
