package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
)

func TestTokensKeepTheLatest(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	bob := randPeer(t)
	_, _, err := s.Token(ctx, bob)
	require.ErrorIs(t, err, store.ErrNotFound)
	later := time.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
	require.NoError(t, s.SaveToken(ctx, bob, []byte("later"), later))
	require.NoError(t, s.SaveToken(ctx, bob, []byte("older"), later.Add(-time.Hour)))
	tok, exp, err := s.Token(ctx, bob)
	require.NoError(t, err)
	require.Equal(t, "later", string(tok), "an older token does not replace a newer one")
	require.True(t, exp.Equal(later))
	require.NoError(t, s.DropToken(ctx, bob))
	_, _, err = s.Token(ctx, bob)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func statusOf(t *testing.T, s *store.Store, id chat.MsgID) store.Status {
	t.Helper()
	m, err := s.MessageByID(context.Background(), id)
	require.NoError(t, err)
	return m.Status
}

// TestDepositLifecycle: queued -> stored (deposited) -> delivered by the
// contact's receipt (via mailbox), never backwards; the deposit goes with
// the outbox entry.
func TestDepositLifecycle(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	bob := randPeer(t)
	srv := randPeer(t)
	es, err := s.Enqueue(ctx, []store.NewOutgoing{text(bob, "one"), text(bob, "two"), text(bob, "three")})
	require.NoError(t, err)
	ids := []chat.MsgID{es[0].ID, es[1].ID, es[2].ID}

	due, err := s.MailboxDue(ctx)
	require.NoError(t, err)
	require.Contains(t, due, bob)
	u, err := s.Undeposited(ctx, bob, time.Now().Add(time.Second), 10)
	require.NoError(t, err)
	require.Len(t, u, 3)
	require.Empty(t, u[0].Server)
	u, err = s.Undeposited(ctx, bob, time.Now().Add(-time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, u, "nothing was queued an hour ago")

	// A deposit in flight keeps its id for the retry.
	recs := []store.DepositRecord{
		{MsgID: ids[0], Peer: bob, DepositID: [16]byte{1}, Server: srv},
		{MsgID: ids[1], Peer: bob, DepositID: [16]byte{2}, Server: srv},
		{MsgID: ids[2], Peer: bob, DepositID: [16]byte{3}, Server: srv},
	}
	require.NoError(t, s.BeginDeposits(ctx, recs))
	u, err = s.Undeposited(ctx, bob, time.Now().Add(time.Second), 10)
	require.NoError(t, err)
	require.Len(t, u, 3)
	require.Equal(t, srv, u[1].Server)
	require.Equal(t, [16]byte{2}, u[1].DepositID)

	// The server stored two and refused the third.
	changes, err := s.Deposited(ctx, bob, ids[:2], ids[2:])
	require.NoError(t, err)
	require.Equal(t, []store.StatusChange{{ID: ids[0], Status: store.StatusStored}, {ID: ids[1], Status: store.StatusStored}}, changes)
	require.Equal(t, store.StatusStored, statusOf(t, s, ids[0]))
	require.Equal(t, store.StatusQueued, statusOf(t, s, ids[2]))
	u, err = s.Undeposited(ctx, bob, time.Now().Add(time.Second), 10)
	require.NoError(t, err)
	require.Len(t, u, 1)
	require.Equal(t, ids[2], u[0].ID)
	require.Empty(t, u[0].Server, "a refused deposit is forgotten")
	ob, err := s.Outbox(ctx, bob, 0, 10)
	require.NoError(t, err)
	require.Len(t, ob, 3, "stored messages stay in the outbox until the contact has them")
	require.True(t, ob[0].Stored)
	require.False(t, ob[2].Stored)
	counts, err := s.MailboxCounts(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, counts[bob])

	// A stored message does not go back to queued or sent; the receipt
	// says how it travelled.
	changes, err = s.Deposited(ctx, bob, ids[:1], nil)
	require.NoError(t, err)
	require.Empty(t, changes)
	rcpt := chat.NewID()
	res, err := s.StoreIncoming(ctx, bob, []store.Incoming{{ID: rcpt, Kind: store.KindDelivered, Seq: 1, Refs: ids[:2]}})
	require.NoError(t, err)
	require.Equal(t, []store.StatusChange{{ID: ids[0], Status: store.StatusDelivered, Via: "mailbox"}, {ID: ids[1], Status: store.StatusDelivered, Via: "mailbox"}}, res.Changed)
	m, err := s.MessageByID(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, "mailbox", m.Via)
	ob, err = s.Outbox(ctx, bob, 0, 10)
	require.NoError(t, err)
	require.Len(t, ob, 1, "the receipt took them out of the outbox")
	counts, err = s.MailboxCounts(ctx)
	require.NoError(t, err)
	require.Zero(t, counts[bob], "their deposits went with them")
	recsLeft, err := s.DepositsToCheck(ctx, time.Now().Add(time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, recsLeft)
}

// TestFates: what the server says about deposits.
func TestFates(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	bob, srv := randPeer(t), randPeer(t)
	es, err := s.Enqueue(ctx, []store.NewOutgoing{text(bob, "expires"), text(bob, "refused"), text(bob, "taken"), text(bob, "waits"),
		{ID: chat.NewID(), Peer: bob, Kind: store.KindRead, Refs: []chat.MsgID{chat.NewID()}, SentAt: time.Now()},
		{ID: chat.NewID(), Peer: bob, Kind: store.KindDelivered, Refs: []chat.MsgID{chat.NewID()}, SentAt: time.Now()},
	})
	require.NoError(t, err)
	var ids []chat.MsgID
	var recs []store.DepositRecord
	for i, e := range es {
		ids = append(ids, e.ID)
		recs = append(recs, store.DepositRecord{MsgID: e.ID, Peer: bob, DepositID: [16]byte{byte(i + 1)}, Server: srv, Addrs: "/ip4/11.0.0.1/tcp/4001"})
	}
	require.NoError(t, s.BeginDeposits(ctx, recs))
	_, err = s.Deposited(ctx, bob, ids, nil)
	require.NoError(t, err)

	toCheck, err := s.DepositsToCheck(ctx, time.Now().Add(time.Second), 100)
	require.NoError(t, err)
	require.Len(t, toCheck, 6)
	require.Equal(t, "/ip4/11.0.0.1/tcp/4001", toCheck[0].Addrs)
	toCheck, err = s.DepositsToCheck(ctx, time.Now().Add(-time.Hour), 100)
	require.NoError(t, err)
	require.Empty(t, toCheck, "all were checked (stored) just now")

	changes, err := s.ApplyFates(ctx, []store.FateUpdate{
		{MsgID: ids[0], Peer: bob, Action: store.FateFailed, Reason: "expired"},
		{MsgID: ids[1], Peer: bob, Action: store.FateFailed, Reason: "refused"},
		{MsgID: ids[2], Peer: bob, Action: store.FateTaken},
		{MsgID: ids[3], Peer: bob, Action: store.FateWaiting},
		{MsgID: ids[4], Peer: bob, Action: store.FateTaken},     // a read receipt the contact took
		{MsgID: ids[5], Peer: bob, Action: store.FateRedeposit}, // a receipt that expired
	})
	require.NoError(t, err)
	require.Equal(t, []store.StatusChange{
		{ID: ids[0], Status: store.StatusFailed, Reason: "expired"},
		{ID: ids[1], Status: store.StatusFailed, Reason: "refused"},
	}, changes)
	m, err := s.MessageByID(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, m.Status)
	require.Equal(t, "failed", m.Status.String())
	require.Equal(t, "expired", m.Reason)

	ob, err := s.Outbox(ctx, bob, 0, 10)
	require.NoError(t, err)
	var left []chat.MsgID
	for _, e := range ob {
		left = append(left, e.ID)
	}
	require.Equal(t, []chat.MsgID{ids[2], ids[3], ids[5]}, left,
		"failed messages and the taken receipt left the outbox; the taken message waits for its receipt")
	u, err := s.Undeposited(ctx, bob, time.Now().Add(time.Second), 10)
	require.NoError(t, err)
	require.Len(t, u, 1)
	require.Equal(t, ids[5], u[0].ID, "the expired receipt is deposited again")
	toCheck, err = s.DepositsToCheck(ctx, time.Now().Add(time.Second), 100)
	require.NoError(t, err)
	require.Len(t, toCheck, 1, "a taken deposit is not asked about again")
	require.Equal(t, ids[3], toCheck[0].MsgID)

	// Failed is terminal for natter's own efforts, but proof of delivery
	// still counts: an ack that arrives after all moves it on.
	changes, err = s.Acked(ctx, bob, ids[:1], "direct")
	require.NoError(t, err)
	require.Equal(t, []store.StatusChange{{ID: ids[0], Status: store.StatusDelivered, Via: "direct"}}, changes)
	m, err = s.MessageByID(ctx, ids[0])
	require.NoError(t, err)
	require.Empty(t, m.Reason)
	// And a failure never overrides a delivery.
	changes, err = s.ApplyFates(ctx, []store.FateUpdate{{MsgID: ids[0], Peer: bob, Action: store.FateFailed, Reason: "late"}})
	require.NoError(t, err)
	require.Empty(t, changes)
	require.Equal(t, store.StatusDelivered, statusOf(t, s, ids[0]))
}

// TestUndepositedCarriesThePayload: a file offer or update is sealed
// whole, so what is handed out for deposit has its payload.
func TestUndepositedCarriesThePayload(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	bob := randPeer(t)
	_, err := s.Enqueue(ctx, []store.NewOutgoing{{ID: chat.NewID(), Peer: bob, Kind: store.KindFileUpdate, Payload: []byte{1, 2, 3}, SentAt: time.Now()}})
	require.NoError(t, err)
	u, err := s.Undeposited(ctx, bob, time.Now().Add(time.Second), 10)
	require.NoError(t, err)
	require.Len(t, u, 1)
	require.Equal(t, []byte{1, 2, 3}, u[0].Payload)
}
