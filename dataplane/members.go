package dataplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Members returns the namespaces of the containers connected to the
// network called name (or whose ID starts with name, 3 characters at
// least), as recorded in the state; ok is false when the state has no such
// network. It only reads: no lock is taken, nothing is reconciled (verify
// uses it to filter, and must not change what it verifies).
func (n *Networks) Members(name string) (namespaces []string, ok bool, err error) {
	b, err := os.ReadFile(n.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read network state: %w", err)
	}
	var st netState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, false, fmt.Errorf("read network state %s: %w", n.statePath(), err)
	}
	for _, rec := range st.Networks {
		if rec.Name != name && (len(name) < 3 || !strings.HasPrefix(rec.ID, name)) {
			continue
		}
		for _, a := range rec.Endpoints {
			namespaces = append(namespaces, a.NetNS)
		}
		sort.Strings(namespaces)
		return namespaces, true, nil
	}
	return nil, false, nil
}
