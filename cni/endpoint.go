package cni

import (
	"context"
	"net/netip"

	"github.com/vmlink/vmlink/dataplane"
	"github.com/vmlink/vmlink/link"
)

// endpoint is what the plugin asks of the data plane for one attachment.
type endpoint struct {
	spec   link.Spec           // the interface; its Parent is in host
	host   dataplane.Namespace // where the master is
	netns  dataplane.Namespace // the container's (CNI_NETNS)
	object string              // the ownership mark's object
	addrs  []netip.Prefix
	routes []dataplane.Route
	built  *dataplane.EndpointLink
}

// buildEndpoint is the plugin's one way into the data plane: dataplane's
// endpoint builder (the one `vmlink up` and `net connect` use) makes the
// link, its addresses (with the broadcast address, as the reference
// plugins set it), up, its routes, and deletes the link again if a step
// fails; then the addresses are announced (gratuitous ARP / unsolicited
// NA). With linkOnly it makes the link alone, down: the IPAM plugin runs
// next, and a second build completes it.
func buildEndpoint(ctx context.Context, ep *endpoint, linkOnly bool) error {
	built, err := dataplane.BuildEndpointLink(ctx, dataplane.EndpointLinkSpec{
		Link: ep.spec, Host: ep.host, NetNS: ep.netns, Mark: mark, Object: ep.object,
		Addrs: ep.addrs, Routes: ep.routes, Broadcast: true, LinkOnly: linkOnly,
	})
	if err != nil {
		return err
	}
	ep.built = built
	_ = built.Announce() // nothing to announce yet with linkOnly: no addresses
	return nil
}
