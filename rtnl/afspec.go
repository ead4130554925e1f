package rtnl

import (
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// AFSpec is the part of a link's IFLA_AF_SPEC (LinkAttrs.AFSpec, kept raw
// there) that vmlink reads: per-family attributes nested under the address
// family number.
type AFSpec struct {
	// INET6AddrGenMode is IFLA_INET6_ADDR_GEN_MODE under AF_INET6
	// (IN6_ADDR_GEN_MODE_*: 0 eui64, 1 none…); nil when absent.
	INET6AddrGenMode *uint8
}

// UnmarshalBinary decodes the attributes of IFLA_AF_SPEC; families and
// attributes it does not know are skipped.
func (s *AFSpec) UnmarshalBinary(b []byte) error {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return err
	}
	for ad.Next() {
		if ad.Type() != unix.AF_INET6 {
			continue
		}
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				if nad.Type() == unix.IFLA_INET6_ADDR_GEN_MODE {
					v := nad.Uint8()
					s.INET6AddrGenMode = &v
				}
			}
			return nad.Err()
		})
	}
	return ad.Err()
}
