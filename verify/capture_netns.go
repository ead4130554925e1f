package verify

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vmlink/vmlink/internal/netns"
)

// openNetNS opens a namespace as users name it: a name as `ip -n NAME`
// takes (under /run/netns), or a path such as /proc/PID/ns/net.
func openNetNS(ns string) (*netns.NS, error) {
	var (
		h   *netns.NS
		err error
	)
	if strings.ContainsRune(ns, '/') {
		h, err = netns.OpenPath(ns)
	} else {
		h, err = netns.Open(ns)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network namespace %q does not exist: create it or check `ip netns list`: %w", ns, err)
	}
	return h, err
}

// inNetNS runs fn on a locked OS thread inside the network namespace ns
// ("" runs fn right here). Sockets fn opens stay bound to that namespace.
// netns.NS.Do returns the thread to its namespace afterwards, or lets it
// die if that fails.
func inNetNS(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	h, err := openNetNS(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Do(fn)
}
