package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/store"
)

// TestWithdrawalsSurviveARestart: removing a pending_out contact queues
// its withdrawal in the same transaction; it is there after a restart
// until dropped.
func TestWithdrawalsSurviveARestart(t *testing.T) {
	ctx := context.Background()
	s, path := open(t)
	bob, carol := randPeer(t), randPeer(t)
	require.NoError(t, s.AddContact(ctx, store.Contact{PeerID: bob, State: store.StatePendingOut}))
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	require.NoError(t, s.RemoveWithdrawing(ctx, bob, at))
	require.ErrorIs(t, s.RemoveWithdrawing(ctx, carol, at), store.ErrNotFound)
	_, err := s.ContactByPeer(ctx, bob)
	require.ErrorIs(t, err, store.ErrNotFound)

	require.NoError(t, s.Close())
	s, err = store.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	ws, err := s.Withdrawals(ctx)
	require.NoError(t, err)
	require.Len(t, ws, 1)
	require.True(t, at.Equal(ws[bob]))
	ok, err := s.DropWithdrawal(ctx, bob)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.DropWithdrawal(ctx, bob)
	require.NoError(t, err)
	require.False(t, ok)
	ws, err = s.Withdrawals(ctx)
	require.NoError(t, err)
	require.Empty(t, ws)
}

// TestRejectionsSurviveARestart: a rejection is kept with the contact's
// removal, survives a restart, and is forgotten once its cool-down is
// over (by the next rejection).
func TestRejectionsSurviveARestart(t *testing.T) {
	ctx := context.Background()
	s, path := open(t)
	bob, carol := randPeer(t), randPeer(t)
	now := time.Now().Truncate(time.Millisecond)
	require.NoError(t, s.AddContact(ctx, store.Contact{PeerID: bob, State: store.StatePendingIn}))
	require.NoError(t, s.RemoveRejected(ctx, bob, now.Add(-2*time.Hour), now.Add(-24*time.Hour)))
	require.ErrorIs(t, s.RemoveRejected(ctx, bob, now, now), store.ErrNotFound)

	require.NoError(t, s.Close())
	s, err := store.Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	at, err := s.RejectedAt(ctx, bob)
	require.NoError(t, err)
	require.True(t, now.Add(-2*time.Hour).Equal(at))
	at, err = s.RejectedAt(ctx, carol)
	require.NoError(t, err)
	require.True(t, at.IsZero())

	require.NoError(t, s.AddContact(ctx, store.Contact{PeerID: carol, State: store.StatePendingIn}))
	require.NoError(t, s.RemoveRejected(ctx, carol, now, now.Add(-time.Hour)))
	at, err = s.RejectedAt(ctx, bob)
	require.NoError(t, err)
	require.True(t, at.IsZero(), "bob's cool-down was over: forgotten")
}
