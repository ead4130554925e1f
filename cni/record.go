package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDataDir is where the plugin keeps its attachment records, beside
// libcni's result cache (/var/lib/cni/results) and host-local's
// allocations (/var/lib/cni/networks). The configuration's "dataDir"
// moves it.
const DefaultDataDir = "/var/lib/cni/vmlink"

// record is what ADD leaves for one attachment, so that GC can release
// its addresses when nothing else is left of it: the runtime may have
// destroyed the namespace (and the link with it), and GC finds links only
// in namespaces it can list. DEL removes it.
type record struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
	Network     string `json:"network"`
	NetNS       string `json:"netns"`
	// Conf is the configuration of the ADD: the IPAM plugin's DEL gets
	// what its ADD got.
	Conf json.RawMessage `json:"conf"`
}

func (c *Conf) dataDir() string {
	if c.DataDir != "" {
		return c.DataDir
	}
	return DefaultDataDir
}

// recordPath is DIR/NETWORK/CONTAINERID:IFNAME; the spec's names allow no
// "/" in any of them and no ":" in a container id or interface name.
func (c *Conf) recordPath(containerID, ifname string) string {
	return filepath.Join(c.dataDir(), c.Name, containerID+":"+ifname)
}

// writeRecord stores r atomically (a crash leaves the old record or the
// new one, never half of one).
func (c *Conf) writeRecord(r record) error {
	path := c.recordPath(r.ContainerID, r.IfName)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("attachment record: %w", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("attachment record: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return fmt.Errorf("attachment record: %w", err)
	}
	_, werr := tmp.Write(b)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("attachment record %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("attachment record: %w", err)
	}
	return nil
}

// removeRecord removes an attachment's record; a missing one is no error
// (DEL may come twice).
func (c *Conf) removeRecord(containerID, ifname string) error {
	err := os.Remove(c.recordPath(containerID, ifname))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the attachment record: %w", err)
	}
	return nil
}

// records lists the network's attachment records. A record that does not
// decode is reported, not skipped: GC must not silently keep an
// allocation.
func (c *Conf) records() ([]record, error) {
	dir := filepath.Join(c.dataDir(), c.Name)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list attachment records: %w", err)
	}
	var out []record
	var errs []error
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) { // removed by a DEL meanwhile
				errs = append(errs, fmt.Errorf("read attachment record: %w", err))
			}
			continue
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil || r.ContainerID == "" || r.IfName == "" {
			errs = append(errs, fmt.Errorf("attachment record %s does not decode: %v", filepath.Join(dir, e.Name()), err))
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}
