// Package testenv gives Go tests — vmlink's and its users' — throwaway
// network sandboxes in a few lines, and tells them, without guessing,
// whether the machine can run them.
//
//   - Require(t, FeatureVLAN, …) probes the environment (by creating the link
//     kind in a throwaway namespace, or running the tool) and skips the test
//     with the exact reason and what to run instead — or fails it, when
//     CI=true and VMLINK_EXPECT_FEATURES says the environment has the
//     feature. With -short everything that needs root skips.
//   - NewNetNS(t) is a fresh named namespace (vmlt-PID-N-RANDOM, visible to
//     `ip netns`), removed with everything in it when the test ends, even
//     on failure or panic; Do runs code on a locked thread inside it and
//     checks the thread got back; Dial opens an rtnl.Conn in it.
//   - NewParent(t, …) wires a "parent" interface in a host namespace to a
//     Linux bridge in a switch namespace whose port can be set to hairpin
//     (Switch.SetHairpin: the reflective relay VEPA needs); Switch.Attach
//     plugs stations into it; NewEndpoint is an empty namespace standing in
//     for a container.
//   - On kernels with 8021q and bridge VLAN filtering (the VM tier):
//     NewVLANSwitch (trunk port for the parent, access ports for stations)
//     and NewRouter (one 802.1Q sub-interface per VLAN, forwarding on).
//
// Nothing is ever created in the caller's own namespace: every link lives
// in namespaces the test created and removes.
//
// testenv is for tests only; product code (dataplane, verify, link, rtnl,
// cmd) never imports it. The probes and NewNetNS live in internal/sandbox,
// which depends on no vmlink package, so that rtnl's own in-package tests
// can use them (testenv builds on rtnl). The VM runner for kernel features
// the host lacks is testenv/vm and cmd/vmtest.
package testenv
