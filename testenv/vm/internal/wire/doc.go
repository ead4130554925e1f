// Package wire is the contract between the VM runner on the host
// (testenv/vm) and the init program in the guest (testenv/vm/guest): the
// manifest the host puts into the initramfs, and the framing of the result
// channel (a virtio-serial port) the guest writes the test's output and exit
// status to.
//
// A frame is one kind byte, a 4-byte big-endian payload length and the
// payload. The guest sends stdout/stderr chunks, log lines, "started",
// collected files and finally "exit" (or "fatal"); the host answers the
// final frame with "ack" so the guest never powers off before the host has
// read everything.
//
// It is internal so the format can change in one commit on both sides; it
// uses only the standard library so the guest stays small.
package wire
