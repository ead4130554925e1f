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

// Pipeline many requests: every request gets its own outcome, matched to it
// by sequence number, and refusals keep their errno and hint.
func ExampleConn_Batch() {
	c, err := rtnl.Dial(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var reqs []rtnl.Request
	for _, name := range []string{"mv0", "mv1"} {
		_ = name // build each body with rtnl.LinkMessage
		reqs = append(reqs, rtnl.Request{Type: unix.RTM_NEWLINK, Flags: netlink.Create | netlink.Excl /* , Body: … */})
	}
	errs, err := c.Batch(context.Background(), reqs)
	if err != nil {
		log.Fatal(err) // the socket failed: errs says which requests are unanswered
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
}
