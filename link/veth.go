package link

import (
	"net"

	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// Veth is a veth pair: `ip link add NAME type veth peer name PEER`. The
// peer is created next to the link (move it with Set afterwards).
type Veth struct {
	Common
	Peer        string
	PeerAddress net.HardwareAddr
	// PeerUp brings the peer up too.
	PeerUp bool
}

// Kind implements Spec.
func (*Veth) Kind() string { return "veth" }

func (*Veth) needsParent() bool { return false }

// Validate implements Spec.
func (v *Veth) Validate() error {
	if err := v.Common.validate("veth", false); err != nil {
		return err
	}
	if err := CheckName(v.Peer); err != nil {
		return fieldErr("veth", v.Name, "peer name", v.Peer, err.Error())
	}
	if v.Peer == v.Name {
		return fieldErr("veth", v.Name, "peer name", v.Peer, "the peer needs a name of its own")
	}
	if v.PeerAddress != nil {
		if err := CheckUnicastMAC(v.PeerAddress); err != nil {
			return fieldErr("veth", v.Name, "peer address", v.PeerAddress.String(), err.Error())
		}
	}
	return nil
}

// vethLinkInfo builds IFLA_LINKINFO creating v and its peer.
func vethLinkInfo(v *Veth) *rtnl.LinkInfo {
	peer := &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: v.Peer, Address: v.PeerAddress}}
	if v.PeerUp {
		peer.Flags |= unix.IFF_UP
		peer.Change |= unix.IFF_UP
	}
	return &rtnl.LinkInfo{Kind: "veth", Data: &rtnl.Veth{Peer: peer}}
}
