package dataplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
)

// DefaultStateDir is where vmlink keeps what the kernel cannot hold: which
// namespaces a topology created, which addresses it added to links it does
// not own, and the docker-style networks. Under /run so a reboot — which
// also wipes every namespace and link — wipes it too.
const DefaultStateDir = "/run/vmlink"

// lockState takes the exclusive lock every vmlink process holds while it
// changes state, so two processes never interleave their writes. The lock
// dies with the process, so a crash never leaves it held.
func lockState(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("state lock %s: %w", f.Name(), err)
	}
	removeStaleTemps(dir)
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// removeStaleTemps removes the ".tmp" files writeFileAtomic leaves when it
// is killed between writing and renaming. Only a holder of the lock writes
// state, so once the lock is ours every one of them is stale.
func removeStaleTemps(dir string) {
	for _, pattern := range []string{"*.tmp", filepath.Join("topologies", "*.tmp")} {
		tmps, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, t := range tmps {
			os.Remove(t)
		}
	}
}

// topoState is a topology's entry: what Up must remember beyond the marks
// on the links. It is written before each change it records.
type topoState struct {
	Name string `json:"name"`
	Host string `json:"host,omitempty"`
	// Group is the topology's link group, for `ip link show group N`.
	Group uint32 `json:"group"`
	// Namespaces Up created (or was about to create).
	Namespaces []string `json:"namespaces,omitempty"`
	// Addrs Up added to links it does not own (an existing parent), and
	// such addresses another topology added that this one declares too:
	// the last topology declaring one removes it.
	Addrs []addrRecord `json:"addrs,omitempty"`
	// Sysctls Up changed in namespaces it does not own, with the value
	// before, which Down puts back.
	Sysctls []sysctlRecord `json:"sysctls,omitempty"`
	// Uses are the addresses the topology's endpoints and shims hold, by
	// wire (host namespace and root parent): another topology on the same
	// wire may not hand them out again.
	Uses []addrUse `json:"uses,omitempty"`
}

type addrUse struct {
	Host   string `json:"host,omitempty"`
	Parent string `json:"parent"` // the root parent whose wire the frames cross
	Addr   string `json:"addr"`
	Owner  string `json:"owner"` // "endpoint c1" or "host shim s0"
}

// wireConflicts returns, for each of uses, a topology other than self in
// the state directory that uses the same address on the same wire.
func wireConflicts(dir, self string, uses []addrUse) ([]string, error) {
	others, err := otherTopologies(dir, self)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range others {
		st, err := loadTopoState(dir, name)
		if err != nil {
			return nil, err
		}
		for _, u := range uses {
			for _, o := range st.Uses {
				if o.Host != "" && !netns.Exists(o.Host) {
					continue // a stale record: its wire is gone
				}
				if u.Host == o.Host && u.Parent == o.Parent && u.Addr == o.Addr {
					out = append(out, fmt.Sprintf("%s of %s on %s is topology %s's %s already", u.Addr, u.Owner, u.Parent, name, o.Owner))
				}
			}
		}
	}
	return out, nil
}

// otherTopologies names the topologies recorded in the state directory
// dir, but self.
func otherTopologies(dir, self string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "topologies", "*.json"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".json"); name != self {
			names = append(names, name)
		}
	}
	return names, nil
}

type sysctlRecord struct {
	NetNS string `json:"netns"`
	Path  string `json:"path"` // under /proc/sys, e.g. net/ipv4/ip_forward
	Old   string `json:"old"`
}

// otherDeclares reports whether a topology other than self, in the same
// state directory, records the address r.
func otherDeclares(dir, self string, r addrRecord) (bool, error) {
	others, err := otherTopologies(dir, self)
	if err != nil {
		return false, err
	}
	for _, name := range others {
		st, err := loadTopoState(dir, name)
		if err != nil {
			return false, err
		}
		if slices.Contains(st.Addrs, r) {
			return true, nil
		}
	}
	return false, nil
}

type addrRecord struct {
	NetNS  string `json:"netns,omitempty"`
	Link   string `json:"link"`
	Prefix string `json:"prefix"`
}

func topoStatePath(dir, name string) string {
	return filepath.Join(dir, "topologies", name+".json")
}

func loadTopoState(dir, name string) (*topoState, error) {
	b, err := os.ReadFile(topoStatePath(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return &topoState{Name: name}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var s topoState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read state %s: %w (delete the file if the topology is gone)", topoStatePath(dir, name), err)
	}
	return &s, nil
}

// save writes the state atomically (temporary file, fsync, rename), or
// removes the file when nothing is left to remember.
func (s *topoState) save(dir string) error {
	path := topoStatePath(dir, s.Name)
	if len(s.Namespaces) == 0 && len(s.Addrs) == 0 && len(s.Sysctls) == 0 && len(s.Uses) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove state: %w", err)
		}
		return nil
	}
	return writeFileAtomic(path, s)
}

func writeFileAtomic(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return nil
}

func (s *topoState) addNS(name string) bool {
	if slices.Contains(s.Namespaces, name) {
		return false
	}
	s.Namespaces = append(s.Namespaces, name)
	return true
}

func (s *topoState) removeNS(name string) {
	s.Namespaces = slices.DeleteFunc(s.Namespaces, func(n string) bool { return n == name })
}

func (s *topoState) addAddr(r addrRecord) bool {
	if slices.Contains(s.Addrs, r) {
		return false
	}
	s.Addrs = append(s.Addrs, r)
	return true
}

func (s *topoState) addSysctl(r sysctlRecord) bool {
	for _, o := range s.Sysctls {
		if o.NetNS == r.NetNS && o.Path == r.Path {
			return false // the first recorded value is the one from before
		}
	}
	s.Sysctls = append(s.Sysctls, r)
	return true
}

func (s *topoState) removeSysctl(r sysctlRecord) {
	s.Sysctls = slices.DeleteFunc(s.Sysctls, func(o sysctlRecord) bool { return o == r })
}

// restore puts a sysctl's value from before back; a namespace that is gone
// has nothing to restore.
func (r sysctlRecord) restore() error {
	if r.NetNS != "" && !netns.Exists(r.NetNS) {
		return nil
	}
	return NamedNS(r.NetNS).writeSysctl(r.Path, r.Old)
}

func (s *topoState) removeAddr(r addrRecord) {
	s.Addrs = slices.DeleteFunc(s.Addrs, func(a addrRecord) bool { return a == r })
}
