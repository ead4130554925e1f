// Package nsname names network namespaces the way their users know them:
// NAME for one under /run/netns, docker:NAME for a Docker container (from
// the Docker Engine API over its unix socket, or the container id from the
// cgroup when no daemon answers), podman:NAME for a Podman container (from
// its conmon's command line), k8s:NAMESPACE/POD for a pod (from libcni's
// result cache). It reads; it never changes anything.
package nsname
