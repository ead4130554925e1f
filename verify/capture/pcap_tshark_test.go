package capture

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Reference tests: tcpdump and tshark read the files we write and decode
// the same frames; what they print is the truth we compare against.

// needTool returns the path of a reference program, or skips the test with
// the reason. A missing tool fails the test instead when CI=true and the
// tier says it has the tool: VMLINK_EXPECT_FEATURES lists it (the host's
// privileged tier has tcpdump and tshark; the VM's guest has tcpdump but no
// tshark, so the tshark tests skip there and run on the host).
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not installed: `apt-get install %s` (or `make deps`) to compare against it", name, pkg)
		if os.Getenv("CI") == "true" && expectedFeature(name) {
			t.Fatal("CI=true and VMLINK_EXPECT_FEATURES lists " + name + ", but " + msg)
		}
		t.Skip(msg)
	}
	return p
}

// expectedFeature reports whether VMLINK_EXPECT_FEATURES (set by each test
// tier of `make test`) lists feature.
func expectedFeature(feature string) bool {
	for _, f := range strings.Split(os.Getenv("VMLINK_EXPECT_FEATURES"), ",") {
		if strings.TrimSpace(f) == feature {
			return true
		}
	}
	return false
}

// tsharkFrame is one frame as tshark reads it.
type tsharkFrame struct {
	src, dst MAC
	stack    []Tag // rebuilt in wire order from frame.protocols
	etype    EtherType
	comment  string
	dir      string // frame.packet_flags_direction: 1 in, 2 out
}

// runTshark reads path with tshark and returns its view of every frame.
func runTshark(t *testing.T, path string) []tsharkFrame {
	t.Helper()
	tshark := needTool(t, "tshark", "tshark")
	fields := []string{"frame.protocols", "eth.src", "eth.dst", "eth.type",
		"vlan.id", "vlan.priority", "vlan.dei", "vlan.etype",
		"ieee8021ad.id", "ieee8021ad.priority", "ieee8021ad.dei",
		"frame.comment", "frame.packet_flags_direction"}
	args := []string{"-n", "-r", path, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(tshark, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	var frames []tsharkFrame
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		col := strings.Split(line, "\t")
		if len(col) != len(fields) {
			t.Fatalf("tshark line with %d fields, want %d: %q", len(col), len(fields), line)
		}
		var tf tsharkFrame
		var err error
		if tf.src, err = ParseMAC(col[1]); err != nil {
			t.Fatal(err)
		}
		if tf.dst, err = ParseMAC(col[2]); err != nil {
			t.Fatal(err)
		}
		list := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		num := func(s string) uint64 {
			v, err := strconv.ParseUint(s, 0, 32)
			if err != nil {
				// tshark prints booleans as True/False in some versions
				switch strings.ToLower(s) {
				case "true":
					return 1
				case "false":
					return 0
				}
				t.Fatalf("tshark number %q: %v", s, err)
			}
			return v
		}
		vid, vpcp, vdei := list(col[4]), list(col[5]), list(col[6])
		sid, spcp, sdei := list(col[8]), list(col[9]), list(col[10])
		// frame.protocols lists the dissectors in wire order: take the
		// next tag of the right kind for each vlan / ieee8021ad. The
		// outer TPID is eth.type; tshark exports no type field for
		// ieee8021ad, so an inner tag's TPID comes from its dissector
		// (vlan after a tag: 0x8100).
		types := list(col[3])
		protos := strings.Split(col[0], ":")
		after := "" // the first protocol after the last tag
		for k, p := range protos {
			var tag Tag
			switch p {
			case "vlan":
				tag = Tag{TPID: EtherType8021Q, VID: uint16(num(vid[0])), PCP: uint8(num(vpcp[0])), DEI: num(vdei[0]) != 0}
				vid, vpcp, vdei = vid[1:], vpcp[1:], vdei[1:]
			case "ieee8021ad":
				tag = Tag{TPID: EtherType8021AD, VID: uint16(num(sid[0])), PCP: uint8(num(spcp[0])), DEI: num(sdei[0]) != 0}
				sid, spcp, sdei = sid[1:], spcp[1:], sdei[1:]
			default:
				continue
			}
			if len(tf.stack) == 0 {
				tag.TPID = EtherType(num(types[0]))
			}
			tf.stack = append(tf.stack, tag)
			after = ""
			for _, q := range protos[k+1:] {
				if q != "ethertype" {
					after = q
					break
				}
			}
		}
		switch {
		case len(tf.stack) == 0:
			tf.etype = EtherType(num(types[0]))
		case after == "arp":
			tf.etype = EtherTypeARP
		case after == "ip":
			tf.etype = EtherTypeIPv4
		case after == "ipv6":
			tf.etype = EtherTypeIPv6
		}
		if et := list(col[7]); len(et) > 0 && protos[len(protos)-1] != "ieee8021ad" {
			if v := EtherType(num(et[len(et)-1])); tf.etype != 0 && v != tf.etype && !v.IsVLAN() {
				t.Fatalf("tshark: vlan.etype %#04x but payload %q", uint16(v), after)
			}
		}
		tf.dir = ""
		if col[12] != "" {
			tf.dir = strconv.FormatUint(num(col[12]), 10)
		}
		tf.comment = col[11]
		frames = append(frames, tf)
	}
	return frames
}

// tsharkFrames are the shared frames tshark understands the same way we
// do: 0x9100 stacks are left out (tshark 4.0 calls 0x9100 a plain vlan and
// reports no TPID for it, so there is nothing to compare).
func tsharkFrames() []testFrame {
	var out []testFrame
	for _, tf := range testFrames() {
		if len(tf.vlans) > 0 && tf.vlans[0].TPID == EtherTypeQinQ {
			continue
		}
		out = append(out, tf)
	}
	return out
}

func TestTsharkAgreesPcap(t *testing.T)   { testTsharkAgrees(t, FormatPcap) }
func TestTsharkAgreesPcapng(t *testing.T) { testTsharkAgrees(t, FormatPcapng) }

func testTsharkAgrees(t *testing.T, format FileFormat) {
	needTool(t, "tshark", "tshark")
	frames := tsharkFrames()
	path := filepath.Join(t.TempDir(), "frames."+format.String())
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var w frameWriter
	if format == FormatPcap {
		w, err = NewPcapWriter(file, 0)
	} else {
		w, err = NewPcapngWriter(file, PcapngOptions{Iface: "h0"})
	}
	if err != nil {
		t.Fatal(err)
	}
	comment := func(i int) string { return fmt.Sprintf("mv%d@ns%d", i, i) }
	dir := func(i int) Direction {
		if i%2 == 0 {
			return DirOutgoing
		}
		return DirBroadcast
	}
	writeTestFrames(t, w, frames, comment, dir)
	if format == FormatPcapng {
		if err := w.(*PcapngWriter).WriteStats(time.Now(), uint64(len(frames)), 0); err != nil {
			t.Fatal(err)
		}
	}
	file.Close()

	ts := runTshark(t, path)
	r, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ours := readAll(t, r)
	if len(ts) != len(frames) || len(ours) != len(frames) {
		t.Fatalf("frames: tshark %d, ours %d, written %d", len(ts), len(ours), len(frames))
	}
	for i, f := range ours {
		want := ts[i]
		name := frames[i].name
		if f.Src != want.src || f.Dst != want.dst {
			t.Errorf("%s: MACs %v > %v, tshark %v > %v", name, f.Src, f.Dst, want.src, want.dst)
		}
		if len(f.VLANs) != len(want.stack) {
			t.Errorf("%s: %d tags, tshark %d (%+v)", name, len(f.VLANs), len(want.stack), want.stack)
			continue
		}
		for j := range f.VLANs {
			if f.VLANs[j] != want.stack[j] {
				t.Errorf("%s: tag %d = %+v, tshark %+v", name, j, f.VLANs[j], want.stack[j])
			}
		}
		if f.EtherType != want.etype {
			t.Errorf("%s: ethertype %#04x, tshark %#04x", name, uint16(f.EtherType), uint16(want.etype))
		}
		if format == FormatPcapng {
			if want.comment != comment(i) || f.Comment != comment(i) {
				t.Errorf("%s: comment ours %q tshark %q, want %q", name, f.Comment, want.comment, comment(i))
			}
			wantDir := map[Direction]string{DirOutgoing: "2", DirBroadcast: "1"}[dir(i)]
			if want.dir != wantDir {
				t.Errorf("%s: tshark direction %q, want %q", name, want.dir, wantDir)
			}
		}
	}
}

// tcpdump prints the same lines as our default output.
func TestTcpdumpAgrees(t *testing.T) {
	tcpdump := needTool(t, "tcpdump", "tcpdump")
	frames := testFrames()
	path := filepath.Join(t.TempDir(), "frames.pcap")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := NewPcapWriter(file, 0)
	writeTestFrames(t, w, frames, nil, nil)
	file.Close()

	cmd := exec.Command(tcpdump, "-nn", "-e", "-r", path)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpdump: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	r, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ours := readAll(t, r)
	if len(lines) != len(frames) || len(ours) != len(frames) {
		t.Fatalf("lines: tcpdump %d, ours %d, frames %d", len(lines), len(ours), len(frames))
	}
	lf := lineFormatter{Location: time.UTC}
	compared := 0
	for i, f := range ours {
		if frames[i].summary == "" {
			continue // tcpdump decodes further than we do (DNS, TCP options)
		}
		got := strings.TrimSuffix(string(lf.appendLine(nil, f)), "\n")
		if got != lines[i] {
			t.Errorf("%s:\n ours    %s\n tcpdump %s", frames[i].name, got, lines[i])
		}
		compared++
	}
	if compared < 10 {
		t.Errorf("only %d lines compared", compared)
	}
}
