package rtnl

import (
	"fmt"
	"strings"
)

// parseWord is the Parse function of the vocabulary's enums: the value
// among valid (in the order error messages list them) whose String is s.
// The error says only the fix ("unknown ipvlan mode: use l2, l3 or l3s"):
// the caller names the field and the value.
func parseWord[T fmt.Stringer](s, what string, valid ...T) (T, error) {
	words := make([]string, len(valid))
	for i, v := range valid {
		if v.String() == s {
			return v, nil
		}
		words[i] = v.String()
	}
	var zero T
	list := strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
	return zero, fmt.Errorf("unknown %s: use %s", what, list)
}
