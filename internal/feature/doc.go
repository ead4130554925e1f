// Package feature answers whether the running kernel has a link kind, once
// per process: the one tri-state, cached probe (after cilium's
// internal/feature), for the product (dataplane refuses a network whose
// driver the kernel lacks) and for the test environments (testenv.Require).
//
// An answer is nil (present), an error wrapping ErrNotSupported (absent:
// a *NotSupportedError naming the module), or any other error (the probe
// could not tell). Nothing is guessed from version numbers: the probe
// creates the kind in a throwaway network namespace. Module holds the one
// map from link kind to kernel module.
package feature
