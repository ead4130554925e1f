// Package guest is the init (PID 1) of the VM runner's guest: it mounts the
// pseudo file systems (proc, sysfs, devtmpfs, devpts, tmpfs on /run and
// /tmp), loads the kernel modules the host listed with finit_module in the
// host's dependency order, brings lo up, opens the virtio-serial result
// channel, runs the test binary with the manifest's arguments, environment
// and working directory, streams its stdout and stderr back as frames,
// sends back the files the host asked for and the exit status, waits for
// the host's acknowledgement and powers the VM off.
//
// It runs as a static binary (CGO_ENABLED=0) in an initramfs that holds
// nothing besides what the host copied in, so it uses syscalls only: no
// modprobe, no mount(8), no ip(8). When the result channel cannot be
// opened it reports on the console ("vmlink init: FATAL: ..."), which the
// host scans. The command that wraps it is testenv/vm/init.
package guest
