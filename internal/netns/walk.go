package netns

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ID identifies a network namespace on this host: the nsfs device and the
// namespace's inode, as stat(2) of any of its files reports them.
type ID struct {
	Dev, Inode uint64
}

// ID returns the namespace's identity.
func (n *NS) ID() (ID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(n.fd, &st); err != nil {
		return ID{}, err
	}
	return ID{Dev: st.Dev, Inode: st.Ino}, nil
}

// Source says where a namespace was found. A namespace found in several
// places keeps the most telling one, in this order.
type Source uint8

const (
	sourceInvalid Source = iota
	SourceNamed          // a name under Dir (ip netns, Podman, CNI's cni-…)
	SourceDocker         // a file in a dockerd's <exec-root>/netns
	SourceMount          // an nsfs bind mount elsewhere (containerd, other runtimes)
	SourceProcess        // only some process's /proc/PID/ns/net
)

func (s Source) String() string {
	switch s {
	case SourceNamed:
		return Dir
	case SourceDocker:
		return "docker"
	case SourceMount:
		return "bind mounts"
	case SourceProcess:
		return "processes"
	}
	return fmt.Sprintf("Source(%d)", uint8(s))
}

// Found is one network namespace of the host and everywhere it was seen.
type Found struct {
	ID
	// Source is the most telling place it was found (see Source).
	Source Source
	// Path opens it: Dir/NAME, a file under a Docker netns dir, a bind
	// mount, or /proc/PID/ns/net of its first process.
	Path string
	// Name is its name under Dir, "" when it has none.
	Name string
	// Files are the nsfs files naming it outside /proc (named, Docker's,
	// other bind mounts), sorted.
	Files []string
	// PIDs are the processes in it, ascending.
	PIDs []int
}

// WalkOptions tune Walk.
type WalkOptions struct {
	// DockerNetnsDirs are directories holding Docker's container
	// namespaces besides those Walk finds itself (/var/run/docker/netns
	// and every running dockerd's --exec-root/netns).
	DockerNetnsDirs []string
	// Proc is the proc file system, "/proc" when empty (tests point it
	// elsewhere).
	Proc string
}

// DefaultDockerExecRoot is dockerd's --exec-root when none is given.
const DefaultDockerExecRoot = "/var/run/docker"

// Walk lists every network namespace on the host, once each (deduplicated
// by device and inode), wherever it is found: named under Dir, Docker's
// under each dockerd's exec root (the default and those on running
// dockerds' command lines), nsfs bind mounts in /proc/self/mountinfo, and
// every process's /proc/PID/ns/net. Namespaces that vanish while Walk
// looks are left out. The result is sorted by Source, then Path.
func Walk(opts WalkOptions) ([]Found, error) {
	proc := opts.Proc
	if proc == "" {
		proc = "/proc"
	}
	w := &walker{byID: map[ID]*Found{}}
	var errs []error

	names, err := os.ReadDir(Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list %s: %w", Dir, err))
	}
	for _, e := range names {
		if f := w.add(filepath.Join(Dir, e.Name()), SourceNamed); f != nil && f.Name == "" {
			f.Name = e.Name()
		}
	}

	procs, err := readProcs(proc)
	if err != nil {
		errs = append(errs, err)
	}
	dirs := append([]string{filepath.Join(DefaultDockerExecRoot, "netns")}, opts.DockerNetnsDirs...)
	for _, p := range procs {
		if root, ok := dockerdExecRoot(p.cmdline); ok {
			dirs = append(dirs, filepath.Join(root, "netns"))
		}
	}
	seenDir := map[string]bool{}
	for _, d := range dirs {
		if seenDir[d] {
			continue
		}
		seenDir[d] = true
		ents, err := os.ReadDir(d)
		if err != nil {
			continue // no such dockerd, or not ours to read
		}
		for _, e := range ents {
			w.add(filepath.Join(d, e.Name()), SourceDocker)
		}
	}

	mounts, err := nsfsMounts(filepath.Join(proc, "self/mountinfo"))
	if err != nil {
		errs = append(errs, err)
	}
	for _, m := range mounts {
		w.add(m, SourceMount)
	}

	for _, p := range procs {
		if f := w.add(filepath.Join(proc, strconv.Itoa(p.pid), "ns/net"), SourceProcess); f != nil {
			f.PIDs = append(f.PIDs, p.pid)
		}
	}

	out := make([]Found, 0, len(w.byID))
	for _, f := range w.byID {
		sort.Strings(f.Files)
		sort.Ints(f.PIDs)
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		return out[i].Path < out[j].Path
	})
	return out, errors.Join(errs...)
}

type walker struct {
	byID map[ID]*Found
}

// add records the namespace at path (nil when path is no namespace).
func (w *walker) add(path string, src Source) *Found {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		return nil
	}
	id := ID{Dev: st.Dev, Inode: st.Ino}
	f := w.byID[id]
	if f == nil {
		f = &Found{ID: id, Source: src, Path: path}
		w.byID[id] = f
	} else if src < f.Source {
		f.Source, f.Path = src, path
	}
	if src != SourceProcess && !contains(f.Files, path) {
		f.Files = append(f.Files, path)
	}
	return f
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// proc is one process: its pid and NUL-separated command line.
type proc struct {
	pid     int
	cmdline []string
}

func readProcs(procDir string) ([]proc, error) {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procDir, e.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		out = append(out, proc{pid: pid, cmdline: strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")})
	}
	return out, nil
}

// dockerdExecRoot returns the exec root of a dockerd command line:
// --exec-root DIR or --exec-root=DIR, else the default.
func dockerdExecRoot(argv []string) (string, bool) {
	if len(argv) == 0 || filepath.Base(argv[0]) != "dockerd" {
		return "", false
	}
	if v, ok := FlagValue(argv[1:], "--exec-root"); ok {
		return v, true
	}
	return DefaultDockerExecRoot, true
}

// FlagValue returns the value of a long flag in argv, written "--f V" or
// "--f=V" (the last one wins, as with Go's and Cobra's flag parsers).
func FlagValue(argv []string, flag string) (string, bool) {
	var v string
	found := false
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			break
		}
		if a == flag && i+1 < len(argv) {
			v, found = argv[i+1], true
			i++
		} else if rest, ok := strings.CutPrefix(a, flag+"="); ok {
			v, found = rest, true
		}
	}
	return v, found
}

// nsfsMounts returns the mount points of network namespace files (nsfs
// mounts whose root is "net:[INODE]") in a mountinfo file.
func nsfsMounts(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if mp, ok := parseNsfsMount(sc.Text()); ok {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// parseNsfsMount reads one mountinfo line ("36 35 0:4 net:[4026532246]
// /run/netns/x rw shared:5 - nsfs nsfs rw") and returns its mount point
// when it is a network namespace.
func parseNsfsMount(line string) (string, bool) {
	fields := strings.Fields(line)
	sep := -1
	for i, f := range fields {
		if f == "-" {
			sep = i
			break
		}
	}
	if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != "nsfs" || !strings.HasPrefix(fields[3], "net:[") {
		return "", false
	}
	return UnescapeMountinfo(fields[4]), true
}

// UnescapeMountinfo undoes the octal escapes of a /proc/*/mountinfo
// path field (\040 for a space).
func UnescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
