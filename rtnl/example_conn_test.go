package rtnl_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmlink/vmlink/rtnl"
)

// Dial a socket inside a named namespace (as `ip -n ns1`) and list its
// links. The namespace handle may be closed once Dial returns: the socket
// stays in the namespace.
func ExampleDial() {
	ns, err := os.Open("/run/netns/ns1") // or internal/netns.Open("ns1")
	if err != nil {
		log.Fatal(err)
	}
	c, err := rtnl.Dial(&rtnl.DialOptions{NetNS: int(ns.Fd())})
	ns.Close()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := c.Dump(ctx, unix.RTM_GETLINK, &rtnl.AddrMessage{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(msgs), "links")
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
