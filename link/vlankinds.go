package link

import (
	"fmt"

	"github.com/vmlink/vmlink/rtnl"
)

func vlanKindInfo(s Spec) (*rtnl.LinkInfo, error) {
	return nil, fmt.Errorf("%s: not implemented yet", s.Kind())
}
func vlanChangeInfo(cur *Link, ch *Change) (*rtnl.LinkInfo, error) {
	return nil, fmt.Errorf("not implemented yet")
}
func decodeVLANKind(l *Link, info *rtnl.LinkInfo) error { return nil }
func compareVLANKind(s Spec, l *Link) []string        { return nil }
