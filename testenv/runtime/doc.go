// Package runtime runs real container runtimes — Debian's dockerd (docker.io)
// and Podman with its CNI backend — inside a test's sandbox network
// namespace, with their own state directories, so tests can check vmlink
// against what the runtimes themselves build (`docker network create -d
// macvlan`, `podman run --network …`).
//
// Nothing touches the machine's own runtimes: dockerd gets its own
// --data-root, --exec-root, socket and pidfile and no bridge or iptables
// rules; Podman gets its own --root, --runroot, --tmpdir and
// CONTAINERS_CONF (network config dir, CNI plugin dirs). Both are entered
// into the sandbox with `nsenter --net=` (not `ip netns exec`, which
// remounts /sys and hides the cgroup mounts dockerd needs). Images are
// built offline from busybox-static (BusyboxTar) and imported; no registry
// is contacted. Everything — containers, networks, daemons (stopped by
// PID), mounts, directories, CNI IPAM state — is removed in the test's
// cleanup, also when it fails.
//
// One thing is shared: Podman 4.3 keeps its image blob-info cache in
// /var/lib/containers/cache whatever --root says (a cache, harmless to
// share). The runtimes run on the host kernel only: the VM tier's guest
// carries no dockerd, containerd, runc or their libraries, and its init
// mounts no cgroup file system, so Docker's `-o parent=eth0.10` (which
// needs 8021q, present only in the VM) is not tested against a real
// dockerd.
//
// The tests that use it form the runtime tier (`make test-runtime`, build
// tag runtime); they require FeatureDocker or FeaturePodman.
package runtime
