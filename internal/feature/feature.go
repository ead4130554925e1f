package feature

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/mdlayher/netlink"
)

// ErrNotSupported marks a feature the kernel does not have.
var ErrNotSupported = errors.New("not supported")

// NotSupportedError is a link kind the kernel refused as unknown. It
// matches ErrNotSupported with errors.Is and unwraps to the kernel's error
// (EOPNOTSUPP with its extack message).
type NotSupportedError struct {
	Kind    string // link kind probed, e.g. "vlan"
	Module  string // what is missing, e.g. "8021q"
	Release string // the kernel's release (uname -r)
	Probe   string // what the probe created, e.g. "a link of kind vlan"
	Err     error  // the kernel's refusal
}

func (e *NotSupportedError) Error() string {
	refusal := "EOPNOTSUPP"
	var oe *netlink.OpError
	if errors.As(e.Err, &oe) && oe.Message != "" {
		refusal += fmt.Sprintf(" %q", oe.Message)
	}
	return fmt.Sprintf("kernel %s has no %s (creating %s: %s)", e.Release, e.Module, e.Probe, refusal)
}

// Is makes errors.Is(err, ErrNotSupported) true.
func (e *NotSupportedError) Is(target error) bool { return target == ErrNotSupported }

// Unwrap returns the kernel's refusal.
func (e *NotSupportedError) Unwrap() error { return e.Err }

// modules maps the link kinds vmlink creates or needs to the kernel
// modules that provide them.
var modules = map[string]string{
	"vlan":    "8021q",
	"macvlan": "macvlan",
	"macvtap": "macvtap",
	"ipvlan":  "ipvlan",
	"veth":    "veth",
	"bridge":  "bridge",
	"dummy":   "dummy",
}

// Module returns the kernel module providing link kind kind ("vlan" →
// "8021q"), or "" for a kind vmlink does not know.
func Module(kind string) string { return modules[kind] }

// Kind returns the link kind a module or kind name stands for ("8021q" →
// "vlan", "ipvlan" → "ipvlan"), or "" when it is neither.
func Kind(name string) string {
	if _, ok := modules[name]; ok {
		return name
	}
	for k, m := range modules {
		if m == name {
			return k
		}
	}
	return ""
}

// Test is one probe whose answer is cached for the life of the process.
type Test struct {
	once sync.Once
	fn   func() error
	err  error
	runs atomic.Int32
}

// NewTest wraps fn, which must return nil, an error wrapping
// ErrNotSupported, or another error when it cannot tell.
func NewTest(fn func() error) *Test { return &Test{fn: fn} }

// Result runs the probe the first time and returns its answer every time.
func (t *Test) Result() error {
	t.once.Do(func() {
		t.runs.Add(1)
		t.err = t.fn()
	})
	return t.err
}

// Runs is how often the probe really ran: at most once.
func (t *Test) Runs() int { return int(t.runs.Load()) }

var (
	kindTests     = map[string]*Test{}
	kindTestsMu   sync.Mutex
	bridgeVLANTst = NewTest(probeBridgeVLANFiltering)
)

// LinkKind tells whether the kernel has link kind kind (one of the kinds
// Module knows): nil, a *NotSupportedError, or another error when the
// probe could not tell (without privileges to make a namespace, say).
// It takes CAP_SYS_ADMIN and CAP_NET_ADMIN; the answer is cached.
func LinkKind(kind string) error {
	if Module(kind) == "" {
		return fmt.Errorf("probe link kind %q: not a kind vmlink knows", kind)
	}
	kindTestsMu.Lock()
	t := kindTests[kind]
	if t == nil {
		t = NewTest(func() error { return probeKind(kind) })
		kindTests[kind] = t
	}
	kindTestsMu.Unlock()
	return t.Result()
}

// LinkKindRuns is how often LinkKind's probe of kind really ran.
func LinkKindRuns(kind string) int {
	kindTestsMu.Lock()
	defer kindTestsMu.Unlock()
	if t := kindTests[kind]; t != nil {
		return t.Runs()
	}
	return 0
}

// BridgeVLANFiltering tells whether bridges support vlan_filtering
// (CONFIG_BRIDGE_VLAN_FILTERING), like LinkKind.
func BridgeVLANFiltering() error { return bridgeVLANTst.Result() }
