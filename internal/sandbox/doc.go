// Package sandbox is the dependency-free core of package testenv: feature
// probes (Probe, Require) and throwaway named network namespaces
// (NewNetNS), for tests only.
//
// It lives apart from testenv for one reason: testenv builds veth parents,
// bridges and switches with package rtnl, so rtnl's own in-package tests
// cannot import testenv (an import cycle). They import this package, which
// depends on nothing of vmlink's but internal/netns. Everybody else should
// use testenv, which re-exports all of this.
//
// Probes never guess from version numbers or module lists: a kernel feature
// is probed by creating the link kind in a throwaway namespace (EOPNOTSUPP,
// "Unknown device type", means the kernel lacks it; any other failure means
// the probe could not tell and the test fails), a tool by running it. The
// results are cached per process.
//
// Require skips a test whose feature is missing, saying why and what to run
// instead, except where the environment is supposed to have the feature:
// with CI=true, every feature listed in VMLINK_EXPECT_FEATURES (the tier
// scripts and the VM runner set it) turns the skip into a failure. With
// -short (the unit tier) everything that needs root is skipped.
//
// Namespaces are per OS thread. NetNS.Do enters one on a locked thread,
// checks the thread is back in its original namespace afterwards, and if it
// is not, never unlocks it, so the runtime destroys the thread instead of
// reusing it.
package sandbox
