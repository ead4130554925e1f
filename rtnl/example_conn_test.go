package rtnl_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// Dial a socket inside a named namespace (as `ip -n ns1`) and list its
// links.
func ExampleDialNetNS() {
	c, err := rtnl.DialNetNS("ns1", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	links, err := c.Links(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range links {
		fmt.Println(l.Index, l.Attrs.Name)
	}
}

// Pipeline many link creations: every request gets its own outcome,
// matched to it by sequence number, and refusals keep their errno and hint.
func ExampleConn_Batch() {
	c, err := rtnl.DialNetNS("ns1", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	parent, err := c.GetLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Name: "eth1"}})
	if err != nil {
		log.Fatal(err)
	}
	link := uint32(parent.Index)
	group := uint32(100) // to delete them all in one request later
	mode := rtnl.MacvlanModeBridge
	var reqs []rtnl.Request
	for i := range 100 {
		reqs = append(reqs, rtnl.NewLinkRequest(&rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{
			Name: fmt.Sprintf("mv%d", i), Link: &link, Group: &group,
			Info: &rtnl.LinkInfo{Kind: "macvlan", Data: &rtnl.Macvlan{Mode: &mode}},
		}}, netlink.Create|netlink.Excl))
	}
	errs, err := c.Batch(ctx, reqs)
	if err != nil {
		log.Print(err) // the socket failed: errs says which requests went unanswered
	}
	for i, e := range errs {
		var oe *rtnl.OpError
		switch {
		case e == nil:
		case errors.Is(e, unix.EEXIST) && errors.As(e, &oe):
			fmt.Println(i, oe.Hint)
		default:
			fmt.Println(i, e)
		}
	}

	// One request removes the whole group (the kernel batches the unregister).
	if err := c.DelLink(ctx, &rtnl.LinkMessage{Attrs: rtnl.LinkAttrs{Group: &group}}); err != nil {
		log.Fatal(err)
	}
}
