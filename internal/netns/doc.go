// Package netns opens, creates and enters Linux network namespaces,
// including named ones compatible with `ip netns` (bind mounts under
// /run/netns), so namespaces made by vmlink are visible to iproute2 and the
// other way round; Walk lists every network namespace of the host (named,
// Docker's, bind mounts, every process's) once. Do is the one way into a
// namespace.
//
// Namespaces belong to OS threads, not processes. Everything here that
// enters a namespace does so on a locked OS thread and returns it to its
// original namespace afterwards; when that fails the thread stays locked so
// the Go runtime destroys it instead of reusing a thread stuck in a foreign
// namespace (see containernetworking/plugins pkg/ns/README.md for the
// longer story).
package netns
