package dataplane

import (
	"context"
	"testing"
	"time"

	"github.com/vmlink/vmlink/rtnl"
)

func TestProbeWait(t *testing.T) {
	for _, c := range []struct{ rtt, want time.Duration }{
		{0, 250 * time.Millisecond},
		{10 * time.Microsecond, 250 * time.Millisecond}, // a fast host: the floor
		{100 * time.Microsecond, time.Second},           // an emulated CPU
		{time.Millisecond, 5 * time.Second},             // the ceiling
	} {
		if got := ProbeWait(c.rtt); got != c.want {
			t.Errorf("ProbeWait(%s) = %s, want %s", c.rtt, got, c.want)
		}
	}
}

// TestLoopbackRTT measures inside a throwaway namespace (its loopback must
// be brought up: a new namespace's lo is down, and nothing would come back).
func TestLoopbackRTT(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	if _, err := LoopbackRTT(ctx, e.host, 3); err == nil {
		t.Fatal("a round trip over a loopback that is down came back")
	}
	c, err := rtnl.DialNetNS(e.host, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lo, err := getLink(ctx, c, "lo")
	if err != nil || lo == nil {
		t.Fatal(orNotFound(err))
	}
	if err := setUp(ctx, c, lo.Index); err != nil {
		t.Fatal(err)
	}
	rtt, err := LoopbackRTT(ctx, e.host, 20)
	if err != nil {
		t.Fatal(err)
	}
	if rtt <= 0 || rtt > 5*time.Second {
		t.Fatalf("loopback round trip %s", rtt)
	}
	t.Logf("loopback round trip %s: probes wait %s", rtt, ProbeWait(rtt))
}
