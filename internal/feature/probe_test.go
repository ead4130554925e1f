package feature_test

import (
	"testing"

	"github.com/vmlink/vmlink/internal/feature"
	"github.com/vmlink/vmlink/internal/sandbox"
)

// TestLinkKindOnThisKernel probes kinds every tier has (veth, macvlan) and
// checks the answer is cached. (internal/sandbox's TestProbesAgreeWithIP
// compares every kind's answer with iproute2's.)
func TestLinkKindOnThisKernel(t *testing.T) {
	sandbox.Require(t, sandbox.FeaturePrivileged)
	for _, kind := range []string{"veth", "macvlan"} {
		if err := feature.LinkKind(kind); err != nil {
			t.Errorf("LinkKind(%s) = %v", kind, err)
		}
		_ = feature.LinkKind(kind)
		if n := feature.LinkKindRuns(kind); n != 1 {
			t.Errorf("LinkKind(%s) probed %d times, want 1", kind, n)
		}
	}
}
