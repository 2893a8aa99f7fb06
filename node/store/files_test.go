package store_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
)

func TestOutgoingTransfer(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	bob := randPeer(t)
	id := chat.NewID()
	tr := store.Transfer{ID: id, Peer: bob, Outgoing: true, State: store.TransferOffered, Name: "a.bin", Size: 3 << 20,
		SHA256: sha256.Sum256([]byte("a")), ChunkSize: 1 << 20, Root: sha256.Sum256([]byte("r")), Path: "/tmp/a.bin", SrcMtime: 42}
	sums := make([]byte, 3*32)
	e, err := s.OfferFile(ctx, tr, sums, store.NewOutgoing{ID: id, Peer: bob, Kind: store.KindFile, Text: "the note", Payload: []byte{1, 2}, SentAt: time.Now()})
	require.NoError(t, err)
	require.Equal(t, uint64(1), e.Seq)

	ob, err := s.Outbox(ctx, bob, 0, 10)
	require.NoError(t, err)
	require.Len(t, ob, 1)
	require.Equal(t, []byte{1, 2}, ob[0].Payload, "the offer's payload is queued with it")
	h, err := s.History(ctx, bob, nil, 10)
	require.NoError(t, err)
	require.Len(t, h, 1, "the offer is in the history")
	require.Equal(t, store.KindFile, h[0].Kind)

	got, err := s.GetTransfer(ctx, id)
	require.NoError(t, err)
	require.Equal(t, tr.Name, got.Name)
	require.Equal(t, tr.SHA256, got.SHA256)
	require.Equal(t, int64(42), got.SrcMtime)
	gotSums, err := s.TransferSums(ctx, id)
	require.NoError(t, err)
	require.Equal(t, sums, gotSums)

	// The receiver's answers move it forward, never backward, and never
	// out of a final state.
	apply := func(state store.TransferState) store.Transfer {
		t.Helper()
		upd := chat.NewID()
		res, err := s.StoreIncoming(ctx, bob, []store.Incoming{{ID: upd, Kind: store.KindFileUpdate, Seq: 9, SentAt: time.Now(),
			Update: &store.IncomingUpdate{Transfer: id, State: state, Reason: "r-" + string(state)}}})
		require.NoError(t, err)
		got, err := s.GetTransfer(ctx, id)
		require.NoError(t, err)
		if len(res.Transfers) > 0 {
			require.Equal(t, got.State, res.Transfers[0].State)
		}
		return got
	}
	require.Equal(t, store.TransferAccepted, apply(store.TransferAccepted).State)
	require.Equal(t, store.TransferAccepted, apply(store.TransferAccepted).State, "repeated update changes nothing")
	done := apply(store.TransferDone)
	require.Equal(t, store.TransferDone, done.State)
	require.Equal(t, done.Size, done.DoneBytes)
	require.Equal(t, store.TransferDone, apply(store.TransferCancelled).State, "a final state stays")

	// Updates from another peer are ignored.
	other := randPeer(t)
	res, err := s.StoreIncoming(ctx, other, []store.Incoming{{ID: chat.NewID(), Kind: store.KindFileUpdate, Seq: 1, SentAt: time.Now(),
		Update: &store.IncomingUpdate{Transfer: id, State: store.TransferFailed}}})
	require.NoError(t, err)
	require.Empty(t, res.Transfers)
}

func TestIncomingTransferAndCheckpoint(t *testing.T) {
	ctx := context.Background()
	s, dbPath := open(t)
	alice := randPeer(t)
	offerID := chat.NewID()
	reply := store.NewOutgoing{ID: chat.NewID(), Peer: alice, Kind: store.KindFileUpdate, Payload: []byte{7}, SentAt: time.Now()}
	in := store.Incoming{ID: offerID, Kind: store.KindFile, Text: "note", Seq: 1, SentAt: time.Now(), Offer: &store.IncomingOffer{
		Transfer: store.Transfer{State: store.TransferAccepted, Name: "x", Size: 10 << 20, ChunkSize: 1 << 20},
		Reply:    &reply,
	}}
	res, err := s.StoreIncoming(ctx, alice, []store.Incoming{in})
	require.NoError(t, err)
	require.Len(t, res.New, 1)
	require.Len(t, res.Transfers, 1)
	require.Len(t, res.Queued, 1, "the acceptance is queued in the same transaction")
	require.Equal(t, offerID, res.Transfers[0].ID)
	require.False(t, res.Transfers[0].Outgoing)

	// A resent offer adds nothing.
	res, err = s.StoreIncoming(ctx, alice, []store.Incoming{in})
	require.NoError(t, err)
	require.Empty(t, res.New)
	require.Empty(t, res.Transfers)
	require.Empty(t, res.Queued)
	q, err := s.OutboxLen(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, 1, q)

	// Resume bookkeeping: checkpoints survive a reopen.
	require.NoError(t, s.SetTransferSums(ctx, offerID, make([]byte, 10*32)))
	require.NoError(t, s.Checkpoint(ctx, offerID, 4<<20, []byte("state")))
	require.NoError(t, s.Close())
	s2, err := store.Open(ctx, dbPath)
	require.NoError(t, err)
	defer s2.Close()
	got, err := s2.GetTransfer(ctx, offerID)
	require.NoError(t, err)
	require.Equal(t, int64(4<<20), got.DoneBytes)
	require.Equal(t, []byte("state"), got.HashState)
	sums, err := s2.TransferSums(ctx, offerID)
	require.NoError(t, err)
	require.Len(t, sums, 10*32)

	// An incoming transfer cannot be "accepted" or "done" by the sender.
	res, err = s2.StoreIncoming(ctx, alice, []store.Incoming{{ID: chat.NewID(), Kind: store.KindFileUpdate, Seq: 2, SentAt: time.Now(),
		Update: &store.IncomingUpdate{Transfer: offerID, State: store.TransferDone}}})
	require.NoError(t, err)
	require.Empty(t, res.Transfers)
	res, err = s2.StoreIncoming(ctx, alice, []store.Incoming{{ID: chat.NewID(), Kind: store.KindFileUpdate, Seq: 3, SentAt: time.Now(),
		Update: &store.IncomingUpdate{Transfer: offerID, State: store.TransferCancelled, Reason: "changed my mind"}}})
	require.NoError(t, err)
	require.Len(t, res.Transfers, 1)
	require.Equal(t, store.TransferCancelled, res.Transfers[0].State)

	// UpdateTransfer with a queued message, and prefix lookup.
	got, queued, err := s2.UpdateTransfer(ctx, offerID, func(t *store.Transfer) (*store.NewOutgoing, error) {
		t.Reason = "x"
		return &store.NewOutgoing{ID: chat.NewID(), Peer: alice, Kind: store.KindFileUpdate, SentAt: time.Now()}, nil
	})
	require.NoError(t, err)
	require.NotNil(t, queued)
	require.Equal(t, "x", got.Reason)
	byPrefix, err := s2.FindTransfer(ctx, offerID.String()[:13])
	require.NoError(t, err)
	require.Equal(t, offerID, byPrefix.ID)
	_, err = s2.FindTransfer(ctx, "zz")
	require.ErrorIs(t, err, store.ErrNotFound)
}
