package dataplane

import "time"

// Probe wait bounds: the floor is what verify uses on a fast machine; the
// ceiling keeps a lab on a very slow machine from taking minutes.
const (
	minProbeWait = 250 * time.Millisecond
	maxProbeWait = 5 * time.Second
	// waitPerObject is how many times the build of one object a probe
	// waits. Building an object is a few netlink round trips with the
	// kernel, often from a thread inside a namespace — the same work a
	// probe does — and it slows down the way probes do under an emulated
	// CPU (measured: ~6 ms per object and answers within a few ms here;
	// 50–175 ms per object and slowest answers of 200–560 ms in the VM
	// tier).
	waitPerObject = 10
)

// ProbeWait is how long a probe should wait for an answer before it counts
// as blocked, derived from how long this machine took to build a
// topology: built objects in took, waitPerObject times the time per object,
// within [250 ms, 5 s]. A fast machine gets the floor, an emulated one
// seconds, with no flag to tune. (verify lengthens the wait further when
// answers come slower still.)
func ProbeWait(took time.Duration, objects int) time.Duration {
	if objects <= 0 || took <= 0 {
		return minProbeWait
	}
	per := took / time.Duration(objects)
	return min(max(waitPerObject*per, minProbeWait), maxProbeWait).Round(time.Millisecond)
}
