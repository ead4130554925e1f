// Package vm runs Go test binaries inside qemu VMs booted on Debian's
// distribution kernels, for the kernel features the build machine lacks
// (its kernel has no 8021q, no dummy, no ipvlan and no loadable modules).
// cmd/vmtest wraps it as a go test -exec program; the same runner works for
// anybody's netlink code (see README.md in this directory).
//
// What the package owns:
//
//   - The kernel cache (kernel.go): resolving the newest versioned
//     linux-image-6.1.0-N-amd64 / linux-image-6.12.N+debM-amd64 package with
//     apt-cache, apt-get download (apt-get update only when that fails),
//     dpkg -x into $VMLINK_KERNEL_CACHE (default /var/cache/vmlink/kernels)
//     under a lock, outside any source tree, with a SERIES -> VERSION
//     symlink; installing qemu-system-x86, xz-utils and zstd when missing.
//   - Direct kernel boot (bzimage.go): the compressed bzImage is unpacked
//     once into an ELF vmlinux that qemu enters through the PVH entry
//     point. Under TCG (no KVM) this skips the firmware's real-mode path and
//     the kernel's own emulated decompressor and cuts boot-to-test from
//     7-9 s to about 3 s.
//   - Modules (modules.go): the .ko files of the package, their
//     dependencies from each module's .modinfo "depends=" field (read with
//     debug/elf: no kmod), a depth-first topological load order, modules
//     the kernel has built in (modules.builtin) skipped, .ko.xz and .ko.zst
//     decompressed at image-build time with the host's xz/zstd.
//   - The initramfs (cpio.go, initramfs.go): our own newc cpio writer (and
//     a reader to check it); a per-kernel base archive, cached next to the
//     kernel, with the skeleton file system, the ordered modules and the
//     reference tools (ip, bridge, tc, nsenter, tcpdump when present) with
//     the libraries ldd reports; and a per-run archive appended to it (the
//     kernel unpacks concatenated archives) with /init, the test binary,
//     the package's testdata/ and the run manifest. Uncompressed: unpacking
//     is faster than decompressing under TCG.
//   - The VM (run.go): the qemu command line (no network device at all,
//     console on ttyS0, -no-reboot with panic=-1 so a panic ends qemu), the
//     result channel, timeouts, and turning every way a run can end into
//     either a Result (the test's exit status) or a *VMError saying why
//     there is none (kernel panic, timeout, init failure, missing module,
//     qemu failure) with the kernel's last console lines. A VMError is
//     never a pass.
//   - The boot check (check.go): one VM per kernel before its tier, whose
//     test is GuestCheck (cmd/vmtest guest-check): it creates every link
//     kind the tier expects in a throwaway namespace and runs every
//     expected tool, so "VM boot failed on kernel X" and "the guest lacks
//     Y" are said once, with the kernel's last lines, not per package.
//
// The result channel is a virtio-serial port ("vmlink.0") backed by a unix
// socket qemu connects to, not the console: the console mixes kernel
// messages into the output and loses the exit status. virtio-serial needs
// only virtio_console (built in on 6.12, a module on 6.1 with virtio_pci),
// while a 9p share would need four more modules on both kernels. Frames
// carry stdout and stderr separately as they are written, so go test sees
// the output stream in, and the exit status last; the host acknowledges
// the last frame before the guest powers off.
//
// The guest side is package testenv/vm/guest, built as testenv/vm/init;
// the frame format and manifest are in testenv/vm/internal/wire.
package vm
