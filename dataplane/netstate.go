package dataplane

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vmlink/vmlink/rtnl"
)

// netMark marks every link and namespace the docker-style networks of the
// default state directory create (see Networks.mark).
var netMark = Mark{Topology: "net"}

// NetworkRecord is a network as the state file keeps it.
type NetworkRecord struct {
	Name    string    `json:"name"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"` // namespace holding the parent
	Driver  string    `json:"driver"`
	Mode    string    `json:"mode"`
	// Flag is an ipvlan network's ipvlan_flag; "" is the kernel's bridge.
	Flag     string            `json:"flag,omitempty"`
	Parent   string            `json:"parent"`
	Options  map[string]string `json:"options,omitempty"`
	IPv6     bool              `json:"ipv6"`
	Internal bool              `json:"internal"`
	// ParentCreated: vmlink created Parent (an X.N VLAN or the internal
	// dummy) and removes it with the last network using it.
	ParentCreated bool                 `json:"parent_created,omitempty"`
	IPAM          []IPAMConfig         `json:"ipam"`
	Endpoints     map[string]*Attached `json:"endpoints,omitempty"`
	Shim          *Attached            `json:"shim,omitempty"`
}

// IPAMConfig is one subnet of a network.
type IPAMConfig struct {
	Subnet  netip.Prefix          `json:"subnet"`
	IPRange netip.Prefix          `json:"ip_range,omitzero"`
	Gateway netip.Addr            `json:"gateway,omitzero"`
	Aux     map[string]netip.Addr `json:"aux,omitempty"`
}

// Attached is an endpoint (container namespace) on a network.
type Attached struct {
	NetNS      string         `json:"netns"`
	Interface  string         `json:"interface"`
	MAC        string         `json:"mac"`
	Addrs      []netip.Prefix `json:"addresses"`
	EndpointID string         `json:"endpoint_id"`
	// NSCreated: connect created the namespace; it goes with its last
	// network.
	NSCreated bool `json:"ns_created,omitempty"`
}

type netState struct {
	Networks map[string]*NetworkRecord `json:"networks"`
	// Pending are namespaces connect is creating: written before the
	// namespace exists, so a kill before its mark is set still leaves a
	// record for the next reconcile.
	Pending []string `json:"pending_namespaces,omitempty"`
}

// Networks manages docker-style networks in the namespace Host ("" is the
// caller's), with their state in StateDir/state.json under the state lock.
type Networks struct {
	Host     string
	StateDir string
}

func (n *Networks) dir() string {
	if n.StateDir == "" {
		return DefaultStateDir
	}
	return n.StateDir
}

// mark is the ownership mark of this state directory's networks. The
// default directory (the CLI's) keeps the plain "net" mark; any other (an
// API user's, a test's) gets its own, "net@" and a hash of its path, so
// that reconciling one state never takes another state's links for
// orphans: `net ls` removes marked links no network of its state claims,
// in every named namespace. ('@' cannot appear in a topology name.)
func (n *Networks) mark() Mark {
	dir := n.dir()
	if dir == DefaultStateDir {
		return netMark
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	h := fnv.New32a()
	h.Write([]byte(dir))
	return Mark{Topology: fmt.Sprintf("%s@%08x", netMark.Topology, h.Sum32())}
}

func (n *Networks) statePath() string { return filepath.Join(n.dir(), "state.json") }

// with runs fn under the lock with the state loaded, and saves it when fn
// succeeds (or when save is forced by fn returning errSaveAnyway).
func (n *Networks) with(fn func(st *netState) error) error {
	unlock, err := lockState(n.dir())
	if err != nil {
		return err
	}
	defer unlock()
	st, err := n.load()
	if err != nil {
		return err
	}
	ferr := fn(st)
	if ferr != nil && !errors.Is(ferr, errSaveAnyway) {
		return ferr
	}
	if err := writeFileAtomic(n.statePath(), st); err != nil {
		return err
	}
	if errors.Is(ferr, errSaveAnyway) {
		return errors.Unwrap(ferr)
	}
	return nil
}

// load reads the state file (an empty state when there is none); the
// caller holds the lock.
func (n *Networks) load() (*netState, error) {
	st := &netState{Networks: map[string]*NetworkRecord{}}
	b, err := os.ReadFile(n.statePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read network state: %w", err)
	case len(bytes.TrimSpace(b)) == 0:
		// An empty file records nothing: no network to lose.
	default:
		if err := json.Unmarshal(b, st); err != nil {
			return nil, &CorruptStateError{Path: n.statePath(), Err: err}
		}
		if st.Networks == nil {
			st.Networks = map[string]*NetworkRecord{}
		}
	}
	return st, nil
}

// CorruptStateError is a network state file that cannot be read. Nothing
// is changed while it is there; the repair is to move it aside, after
// which the next `vmlink net ls` (List) removes what its networks had
// created, found by the marks on the kernel objects, and the networks can
// be created again.
type CorruptStateError struct {
	Path string
	Err  error
}

func (e *CorruptStateError) Error() string {
	return fmt.Sprintf("network state %s is corrupt (%v): move it aside (mv %s %s.corrupt), then `vmlink net ls` removes what its networks created, by their marks",
		e.Path, e.Err, e.Path, e.Path)
}

func (e *CorruptStateError) Unwrap() error { return e.Err }

// errSaveAnyway wraps an error after which the state must still be saved
// (part of the work was done and recorded).
var errSaveAnyway = errors.New("save anyway")

func saveAnyway(err error) error { return fmt.Errorf("%w%w", errSaveAnyway, err) }

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (n *Networks) conn() (*rtnl.Conn, error) {
	if n.Host == "" {
		return rtnl.Dial(nil)
	}
	return rtnl.DialNetNS(n.Host, nil)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// checkHost refuses a request made for another namespace than the
// network's: every operation on a network acts on the namespace the
// network was created in (its parent is there), so a request without -n
// uses it and one whose -n names another namespace is refused, never
// carried out on a link of the same name there.
func (n *Networks) checkHost(rec *NetworkRecord) error {
	if n.Host == "" || n.Host == rec.Host {
		return nil
	}
	where, fix := "the caller's namespace", "without -n"
	if rec.Host != "" {
		where, fix = "netns "+rec.Host, "with -n "+rec.Host+" or without -n"
	}
	return refuse("network %s lives in %s, not in netns %s: run the command %s", rec.Name, where, n.Host, fix)
}

func (n *Networks) connFor(rec *NetworkRecord) (*rtnl.Conn, error) {
	if rec.Host == "" {
		return rtnl.Dial(nil)
	}
	return rtnl.DialNetNS(rec.Host, nil)
}
