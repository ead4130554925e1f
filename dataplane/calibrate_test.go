package dataplane

import (
	"testing"
	"time"
)

func TestProbeWait(t *testing.T) {
	for _, c := range []struct {
		took    time.Duration
		objects int
		want    time.Duration
	}{
		{0, 0, 250 * time.Millisecond},                         // nothing built: the floor
		{240 * time.Millisecond, 38, 250 * time.Millisecond},   // lab modes here: the floor
		{2800 * time.Millisecond, 16, 1750 * time.Millisecond}, // vlan-trunk in the VM
		{time.Minute, 10, 5 * time.Second},                     // the ceiling
	} {
		if got := ProbeWait(c.took, c.objects); got != c.want {
			t.Errorf("ProbeWait(%s, %d) = %s, want %s", c.took, c.objects, got, c.want)
		}
	}
}
