package wire_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/wire"
)

// TestLimiterSnapshotRestore: a limiter rebuilt from a snapshot (a
// restart) refuses what the old one would have, and forgets full buckets.
func TestLimiterSnapshotRestore(t *testing.T) {
	l := wire.NewLimiter[string](1.0/3600, 5)
	require.True(t, l.AllowN("a", 4))
	require.True(t, l.Allow("b"))
	require.True(t, l.AllowN("c", 0))
	snap := l.Snapshot()
	require.Len(t, snap, 2, "c's bucket is full: nothing to keep")
	require.InDelta(t, 1, snap["a"].Tokens, 0.01)

	r := wire.NewLimiter[string](1.0/3600, 5)
	for k, b := range snap {
		r.Restore(k, b)
	}
	require.False(t, r.AllowN("a", 2), "a has one left")
	require.True(t, r.Allow("a"))
	require.False(t, r.Allow("a"))
	require.True(t, r.AllowN("b", 4))
	require.False(t, r.Allow("b"))
	require.True(t, r.AllowN("c", 5))

	// An old snapshot has refilled meanwhile.
	old := wire.NewLimiter[string](1, 5)
	old.Restore("a", wire.Bucket{Tokens: 0, At: time.Now().Add(-time.Minute)})
	require.True(t, old.AllowN("a", 5))
}
