package link

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/internal/netns"
	"github.com/vmlink/vmlink/rtnl"
)

// Handle works on the links of one network namespace through an rtnl.Conn
// dialled there. It is safe for concurrent use (the Conn serialises).
type Handle struct {
	c   *rtnl.Conn
	own bool
	// ns names the namespace in messages; "" is the caller's.
	ns string
	// afterCreate, when set (by tests only), runs once Create's request
	// succeeded; an error from it is taken as a failed read-back, the one
	// failure after the link exists that a real kernel will not produce
	// on demand.
	afterCreate func() error
}

// New returns a Handle on c's namespace; the caller keeps ownership of c.
func New(c *rtnl.Conn) *Handle { return &Handle{c: c} }

// Open dials rtnetlink in the named namespace (under /run/netns, as
// `ip -n NAME`), or in the calling thread's namespace when netns is "".
// Close releases it.
func Open(netns string) (*Handle, error) {
	opts := &rtnl.DialOptions{}
	if netns != "" {
		fd, err := openNS(&Target{Name: netns})
		if err != nil {
			return nil, fmt.Errorf("open namespace %q: %w", netns, err)
		}
		defer unix.Close(fd)
		opts.NetNS = fd
	}
	c, err := rtnl.Dial(opts)
	if err != nil {
		if netns != "" {
			return nil, fmt.Errorf("namespace %q: %w", netns, err)
		}
		return nil, err
	}
	return &Handle{c: c, own: true, ns: netns}, nil
}

// Close closes the connection if the Handle opened it.
func (h *Handle) Close() error {
	if h.own {
		return h.c.Close()
	}
	return nil
}

// Conn returns the underlying connection.
func (h *Handle) Conn() *rtnl.Conn { return h.c }

// openNS opens a namespace file for t (the caller closes it). An FD target
// is duplicated so that every path closes what it got.
func openNS(t *Target) (int, error) {
	var path string
	switch {
	case t.Name != "":
		path = filepath.Join(netns.Dir, t.Name)
	case t.PID != 0:
		path = "/proc/" + strconv.Itoa(t.PID) + "/ns/net"
	default:
		fd, err := unix.FcntlInt(uintptr(t.FD), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("duplicate namespace fd %d: %w", t.FD, err)
		}
		return fd, nil
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			if t.Name != "" {
				return -1, fmt.Errorf("no namespace %q (see `ip netns list`): %w", t.Name, os.ErrNotExist)
			}
			return -1, fmt.Errorf("no process %d: %w", t.PID, os.ErrNotExist)
		}
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// target is an opened Target: the fd stays open while requests use it.
type target struct {
	t  *Target
	fd int // -1 when t is nil
}

func openTarget(t *Target) (*target, error) {
	if t == nil {
		return &target{fd: -1}, nil
	}
	fd, err := openNS(t)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", t, err)
	}
	return &target{t: t, fd: fd}, nil
}

func (t *target) close() {
	if t != nil && t.fd >= 0 {
		_ = unix.Close(t.fd)
		t.fd = -1
	}
}

// dial opens a Conn in the target's namespace.
func (t *target) dial() (*rtnl.Conn, error) {
	c, err := rtnl.Dial(&rtnl.DialOptions{NetNS: t.fd})
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", t.t, err)
	}
	return c, nil
}

// in returns a Handle on the target's namespace (a fresh connection, closed
// by its Close), or one sharing h's connection when there is no target.
func (h *Handle) in(tgt *target) (*Handle, error) {
	if tgt == nil || tgt.t == nil {
		return &Handle{c: h.c, ns: h.ns}, nil
	}
	c, err := tgt.dial()
	if err != nil {
		return nil, err
	}
	return &Handle{c: c, own: true, ns: tgt.t.String()}, nil
}

// NetNSNames maps the ids this handle's namespace gives other namespaces
// (IFLA_LINK_NETNSID) to their names in /run/netns, as `ip link show` does
// to print "link-netns NAME". Namespaces without an id here are left out.
func (h *Handle) NetNSNames(ctx context.Context) (map[int32]string, error) {
	names, err := netns.List()
	if err != nil {
		return nil, err
	}
	out := map[int32]string{}
	for _, name := range names {
		ns, err := netns.Open(name)
		if err != nil {
			continue // deleted meanwhile, or not a namespace
		}
		id, err := h.c.NSIDOf(ctx, ns.FD())
		ns.Close()
		if err != nil {
			return nil, fmt.Errorf("nsid of %s: %w", name, err)
		}
		if id != rtnl.NSIDNotAssigned {
			out[id] = name
		}
	}
	return out, nil
}
