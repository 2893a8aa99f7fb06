package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/mailbox"
	"github.com/natterim/natter/rendezvous/store"
)

func newPeer(t *testing.T) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(k)
	require.NoError(t, err)
	return id
}

func did(b byte) mailbox.DepositID {
	var d mailbox.DepositID
	d[0], d[15] = b, 0xaa
	return d
}

func items(size int, ids ...byte) []mailbox.Item {
	out := make([]mailbox.Item, len(ids))
	for i, b := range ids {
		out[i] = mailbox.Item{ID: did(b), Box: bytes.Repeat([]byte{b}, size)}
	}
	return out
}

var t0 = time.UnixMilli(1_700_000_000_000)

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dir)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func batch(to, from peer.ID, its []mailbox.Item, at time.Time) mailbox.DepositBatch {
	return mailbox.DepositBatch{Recipient: to, Sender: from, Items: its, Now: at, MaxMessages: 5, MaxBytes: 500, MaxTotalBytes: 800}
}

func TestMailboxQuotaAndDuplicates(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	bob, carol, alice := newPeer(t), newPeer(t), newPeer(t)

	codes, err := s.Deposit(ctx, batch(bob, alice, items(100, 1), t0))
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{mailbox.CodeUnknownRecipient}, codes, "no mailbox before its owner shows up")
	ok, err := s.HasMailbox(ctx, bob)
	require.NoError(t, err)
	require.False(t, ok)

	require.NoError(t, s.TouchMailbox(ctx, bob, t0))
	require.NoError(t, s.TouchMailbox(ctx, carol, t0))
	ok, err = s.HasMailbox(ctx, bob)
	require.NoError(t, err)
	require.True(t, ok)

	// Count quota (5): the sixth is refused, and so is everything after
	// it in the batch, even what would fit; a duplicate in the batch is a
	// duplicate.
	codes, err = s.Deposit(ctx, batch(bob, alice, items(10, 1, 2, 3, 1, 4, 5, 6, 7), t0))
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{
		mailbox.CodeOK, mailbox.CodeOK, mailbox.CodeOK, mailbox.CodeDuplicate, mailbox.CodeOK, mailbox.CodeOK,
		mailbox.CodeOverQuota, mailbox.CodeOverQuota,
	}, codes)
	// A replayed id is a duplicate even when the mailbox is full.
	codes, err = s.Deposit(ctx, batch(bob, alice, items(10, 2), t0))
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{mailbox.CodeDuplicate}, codes)

	// Byte quota (500) in carol's mailbox.
	codes, err = s.Deposit(ctx, batch(carol, alice, items(200, 20, 21, 22), t0))
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{mailbox.CodeOK, mailbox.CodeOK, mailbox.CodeOverQuota}, codes)

	// Server-wide bytes (800): bob holds 50, carol 400; 400 more do not
	// fit anywhere.
	dave := newPeer(t)
	require.NoError(t, s.TouchMailbox(ctx, dave, t0))
	codes, err = s.Deposit(ctx, batch(dave, alice, items(200, 30, 31), t0))
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{mailbox.CodeOK, mailbox.CodeOverQuota}, codes)

	tot, err := s.Totals(ctx)
	require.NoError(t, err)
	require.Equal(t, store.MailboxTotals{Mailboxes: 3, Boxes: 8, Bytes: 50 + 400 + 200}, tot)
	ms, err := s.Mailboxes(ctx)
	require.NoError(t, err)
	require.Len(t, ms, 3)
	require.Equal(t, carol, ms[0].Owner, "fullest first")
	require.Equal(t, 2, ms[0].Boxes)
	require.Equal(t, int64(400), ms[0].Bytes)
	require.True(t, ms[0].Oldest.Equal(t0))
}

func TestMailboxFetchDeleteFates(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	bob, alice, mallory := newPeer(t), newPeer(t), newPeer(t)
	require.NoError(t, s.TouchMailbox(ctx, bob, t0))
	b := batch(bob, alice, items(100, 1, 2, 3, 4), t0)
	b.MaxMessages, b.MaxBytes, b.MaxTotalBytes = 100, 1<<20, 1<<20
	_, err := s.Deposit(ctx, b)
	require.NoError(t, err)

	// Paging by count, then by bytes (the first box always comes).
	got, more, err := s.Fetch(ctx, bob, 0, 2, 1<<20, t0.Add(time.Second))
	require.NoError(t, err)
	require.True(t, more)
	require.Equal(t, []mailbox.DepositID{did(1), did(2)}, idsOf(got))
	got2, more, err := s.Fetch(ctx, bob, got[1].Seq, 10, 150, t0.Add(time.Second))
	require.NoError(t, err)
	require.True(t, more)
	require.Equal(t, []mailbox.DepositID{did(3)}, idsOf(got2))
	got3, more, err := s.Fetch(ctx, bob, got2[0].Seq, 10, 1, t0.Add(time.Second))
	require.NoError(t, err)
	require.False(t, more)
	require.Equal(t, []mailbox.DepositID{did(4)}, idsOf(got3))
	require.True(t, got[0].Deposited.Equal(t0))
	require.Equal(t, bytes.Repeat([]byte{1}, 100), got[0].Box)

	// Fates are the depositor's business only.
	fs, err := s.Fates(ctx, alice, []mailbox.DepositID{did(1), did(9)})
	require.NoError(t, err)
	require.Equal(t, mailbox.StateFetched, fs[0].State)
	require.True(t, fs[0].Fetched)
	require.Equal(t, mailbox.StateUnknown, fs[1].State)
	fs, err = s.Fates(ctx, mallory, []mailbox.DepositID{did(1)})
	require.NoError(t, err)
	require.Equal(t, mailbox.StateUnknown, fs[0].State, "someone else's deposit is unknown to mallory")

	// Only the owner's boxes are deleted.
	n, err := s.Delete(ctx, mallory, []mailbox.DepositID{did(1)}, nil, t0)
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = s.Delete(ctx, bob, []mailbox.DepositID{did(1), did(2), did(9)}, []mailbox.DepositID{did(3)}, t0.Add(2*time.Second))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	n, err = s.Delete(ctx, bob, []mailbox.DepositID{did(1)}, nil, t0)
	require.NoError(t, err)
	require.Zero(t, n, "deleting twice removes nothing")
	fs, err = s.Fates(ctx, alice, []mailbox.DepositID{did(1), did(3), did(4)})
	require.NoError(t, err)
	require.Equal(t, []mailbox.State{mailbox.StateDelivered, mailbox.StateRejected, mailbox.StateFetched}, statesOf(fs))

	got, more, err = s.Fetch(ctx, bob, 0, 10, 1<<20, t0)
	require.NoError(t, err)
	require.False(t, more)
	require.Equal(t, []mailbox.DepositID{did(4)}, idsOf(got))
	tot, err := s.Totals(ctx)
	require.NoError(t, err)
	require.Equal(t, store.MailboxTotals{Mailboxes: 1, Boxes: 1, Bytes: 100, Fates: 3}, tot)

	// A deleted deposit id stays known against replays while its fate is
	// kept.
	codes, err := s.Deposit(ctx, b)
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{mailbox.CodeDuplicate, mailbox.CodeDuplicate, mailbox.CodeDuplicate, mailbox.CodeDuplicate}, codes)
}

func TestMailboxExpiry(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	bob, alice := newPeer(t), newPeer(t)
	l := mailbox.DefaultLimits()
	l.MaxAge, l.FateTTL, l.OwnerTTL = time.Hour, 2*time.Hour, 24*time.Hour
	require.NoError(t, s.TouchMailbox(ctx, bob, t0))
	b := batch(bob, alice, items(100, 1, 2), t0)
	_, err := s.Deposit(ctx, b)
	require.NoError(t, err)
	_, _, err = s.Fetch(ctx, bob, 0, 1, 1<<20, t0) // fetches box 1 only
	require.NoError(t, err)
	b = batch(bob, alice, items(100, 3), t0.Add(30*time.Minute))
	_, err = s.Deposit(ctx, b)
	require.NoError(t, err)

	st, err := s.Expire(ctx, t0.Add(59*time.Minute), l)
	require.NoError(t, err)
	require.Equal(t, mailbox.ExpireStats{}, st, "nothing is an hour old yet")
	st, err = s.Expire(ctx, t0.Add(time.Hour), l)
	require.NoError(t, err)
	require.Equal(t, 2, st.Expired)
	fs, err := s.Fates(ctx, alice, []mailbox.DepositID{did(1), did(2), did(3)})
	require.NoError(t, err)
	require.Equal(t, []mailbox.State{mailbox.StateExpired, mailbox.StateExpired, mailbox.StatePending}, statesOf(fs))
	require.True(t, fs[0].Fetched, "box 1 was fetched before it expired")
	require.False(t, fs[1].Fetched)
	got, _, err := s.Fetch(ctx, bob, 0, 10, 1<<20, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []mailbox.DepositID{did(3)}, idsOf(got), "expired boxes are gone")

	// Fates are forgotten after FateTTL; then the mailbox, once empty and
	// its owner unseen for OwnerTTL.
	st, err = s.Expire(ctx, t0.Add(3*time.Hour+time.Minute), l)
	require.NoError(t, err)
	require.Equal(t, mailbox.ExpireStats{Expired: 1, Fates: 2}, st)
	st, err = s.Expire(ctx, t0.Add(25*time.Hour), l)
	require.NoError(t, err)
	require.Equal(t, mailbox.ExpireStats{Fates: 1, Owners: 1}, st)
	ok, err := s.HasMailbox(ctx, bob)
	require.NoError(t, err)
	require.False(t, ok)
	tot, err := s.Totals(ctx)
	require.NoError(t, err)
	require.Equal(t, store.MailboxTotals{}, tot)
}

// TestMailboxSurvivesReopen: what was deposited is there after a restart.
func TestMailboxSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, dir)
	require.NoError(t, err)
	bob, alice := newPeer(t), newPeer(t)
	require.NoError(t, s.TouchMailbox(ctx, bob, t0))
	_, err = s.Deposit(ctx, batch(bob, alice, items(100, 1, 2), t0))
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = openStore(t, dir)
	got, more, err := s.Fetch(ctx, bob, 0, 10, 1<<20, t0)
	require.NoError(t, err)
	require.False(t, more)
	require.Equal(t, []mailbox.DepositID{did(1), did(2)}, idsOf(got))
}

func idsOf(bs []mailbox.StoredBox) []mailbox.DepositID {
	out := make([]mailbox.DepositID, len(bs))
	for i, b := range bs {
		out[i] = b.ID
	}
	return out
}

func statesOf(fs []mailbox.Fate) []mailbox.State {
	out := make([]mailbox.State, len(fs))
	for i, f := range fs {
		out[i] = f.State
	}
	return out
}
