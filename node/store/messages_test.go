package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
)

func text(p peer.ID, s string) store.NewOutgoing {
	return store.NewOutgoing{ID: chat.NewID(), Peer: p, Kind: store.KindText, Text: s, SentAt: time.Now()}
}

func incoming(seq uint64, s string) store.Incoming {
	return store.Incoming{ID: chat.NewID(), Kind: store.KindText, Text: s, Seq: seq, SentAt: time.Now()}
}

func texts(ms []store.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

func TestEnqueueAckDeliver(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	bob, carol := randPeer(t), randPeer(t)

	a, err := s.Enqueue(ctx, []store.NewOutgoing{text(bob, "one"), text(bob, "two"), text(carol, "hi carol")})
	require.NoError(t, err)
	b, err := s.Enqueue(ctx, []store.NewOutgoing{text(bob, "three")})
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 1}, []uint64{a[0].Seq, a[1].Seq, a[2].Seq}, "sequence numbers count per conversation")
	require.Equal(t, uint64(3), b[0].Seq)

	ob, err := s.Outbox(ctx, bob, 0, 10)
	require.NoError(t, err)
	require.Len(t, ob, 3)
	require.Equal(t, "one", ob[0].Text)
	require.Equal(t, "three", ob[2].Text)
	more, err := s.Outbox(ctx, bob, 2, 10)
	require.NoError(t, err)
	require.Len(t, more, 1, "afterSeq skips what is in flight")

	h, err := s.History(ctx, bob, nil, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"one", "two", "three"}, texts(h))
	for _, m := range h {
		require.True(t, m.Outgoing)
		require.Equal(t, store.StatusQueued, m.Status)
	}

	ch, err := s.Acked(ctx, bob, []chat.MsgID{a[0].ID, a[1].ID}, "direct")
	require.NoError(t, err)
	require.Len(t, ch, 2)
	ch, err = s.Acked(ctx, bob, []chat.MsgID{a[0].ID}, "direct")
	require.NoError(t, err)
	require.Empty(t, ch, "a repeated ack changes nothing")
	ch, err = s.Acked(ctx, carol, []chat.MsgID{b[0].ID}, "direct")
	require.NoError(t, err)
	require.Empty(t, ch, "an ack from the wrong peer changes nothing")

	n, err := s.OutboxLen(ctx, bob)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	q, err := s.Queued(ctx)
	require.NoError(t, err)
	require.Equal(t, map[peer.ID]int{bob: 1, carol: 1}, q)
	m, err := s.MessageByID(ctx, a[0].ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusDelivered, m.Status)
	require.Equal(t, "direct", m.Via)
}

func TestStoreIncomingExactlyOnceInOrder(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	alice := randPeer(t)
	var batch []store.Incoming
	for i := 1; i <= 50; i++ {
		batch = append(batch, incoming(uint64(i), fmt.Sprintf("m%02d", i)))
	}
	r, err := s.StoreIncoming(ctx, alice, batch[:30])
	require.NoError(t, err)
	require.Len(t, r.New, 30)
	// A retry after a lost ack overlaps what was stored.
	r, err = s.StoreIncoming(ctx, alice, batch[20:])
	require.NoError(t, err)
	require.Len(t, r.New, 20, "only the unseen messages are new")
	require.Equal(t, "m31", r.New[0].Text)
	r, err = s.StoreIncoming(ctx, alice, batch)
	require.NoError(t, err)
	require.Empty(t, r.New)

	h, err := s.History(ctx, alice, nil, 100)
	require.NoError(t, err)
	require.Len(t, h, 50)
	for i, m := range h {
		require.Equal(t, fmt.Sprintf("m%02d", i+1), m.Text)
		require.False(t, m.Outgoing)
		require.Equal(t, store.StatusDelivered, m.Status)
		require.Equal(t, alice, m.Peer)
	}
	unread, err := s.Unread(ctx)
	require.NoError(t, err)
	require.Equal(t, 50, unread[alice])
}

func TestReceiptsMoveForwardOnly(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	bob, mallory := randPeer(t), randPeer(t)
	q, err := s.Enqueue(ctx, []store.NewOutgoing{text(bob, "a"), text(bob, "b")})
	require.NoError(t, err)
	id0, id1 := q[0].ID, q[1].ID

	// Someone else cannot mark bob's messages read.
	r, err := s.StoreIncoming(ctx, mallory, []store.Incoming{{ID: chat.NewID(), Kind: store.KindRead, Seq: 1, Refs: []chat.MsgID{id0}}})
	require.NoError(t, err)
	require.Empty(t, r.Changed)

	// A read receipt before the ack (it came another way): read, and
	// the message leaves the outbox.
	r, err = s.StoreIncoming(ctx, bob, []store.Incoming{{ID: chat.NewID(), Kind: store.KindRead, Seq: 1, Refs: []chat.MsgID{id0}}})
	require.NoError(t, err)
	require.Equal(t, []store.StatusChange{{ID: id0, Status: store.StatusRead}}, r.Changed)
	n, err := s.OutboxLen(ctx, bob)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	// A late ack or delivered receipt does not move it back.
	ch, err := s.Acked(ctx, bob, []chat.MsgID{id0}, "relayed")
	require.NoError(t, err)
	require.Empty(t, ch)
	r, err = s.StoreIncoming(ctx, bob, []store.Incoming{{ID: chat.NewID(), Kind: store.KindDelivered, Seq: 2, Refs: []chat.MsgID{id0, id1}}})
	require.NoError(t, err)
	require.Equal(t, []store.StatusChange{{ID: id1, Status: store.StatusDelivered}}, r.Changed)
	m, err := s.MessageByID(ctx, id0)
	require.NoError(t, err)
	require.Equal(t, store.StatusRead, m.Status)
	n, err = s.OutboxLen(ctx, bob)
	require.NoError(t, err)
	require.Zero(t, n, "a delivered receipt empties the outbox too")
}

func TestMarkRead(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	alice, bob := randPeer(t), randPeer(t)
	var batch []store.Incoming
	for i := 1; i <= chat.MaxRefs+5; i++ {
		batch = append(batch, incoming(uint64(i), "x"))
	}
	_, err := s.StoreIncoming(ctx, alice, batch)
	require.NoError(t, err)
	_, err = s.StoreIncoming(ctx, bob, []store.Incoming{incoming(1, "a"), incoming(2, "b"), incoming(3, "c")})
	require.NoError(t, err)

	ids, receipts, err := s.MarkRead(ctx, alice, true)
	require.NoError(t, err)
	require.Len(t, ids, chat.MaxRefs+5)
	require.Len(t, receipts, 2, "receipts are split at MaxRefs")
	require.Len(t, receipts[0].Refs, chat.MaxRefs)
	ob, err := s.Outbox(ctx, alice, 0, 10)
	require.NoError(t, err)
	require.Len(t, ob, 2)
	require.Equal(t, store.KindRead, ob[0].Kind)
	require.Len(t, ob[0].Refs, chat.MaxRefs, "refs survive the round trip through the outbox")

	ids, receipts, err = s.MarkRead(ctx, alice, true)
	require.NoError(t, err)
	require.Empty(t, ids, "already read")
	require.Empty(t, receipts)

	ids, receipts, err = s.MarkRead(ctx, bob, false)
	require.NoError(t, err)
	require.Len(t, ids, 3)
	require.Empty(t, receipts, "receipts switched off")
	unread, err := s.Unread(ctx)
	require.NoError(t, err)
	require.Empty(t, unread)
	h, err := s.History(ctx, bob, nil, 10)
	require.NoError(t, err)
	require.Equal(t, store.StatusRead, h[0].Status)
}

func TestHistoryPages(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	bob := randPeer(t)
	var out []store.NewOutgoing
	for i := range 10 {
		out = append(out, text(bob, fmt.Sprint(i)))
	}
	_, err := s.Enqueue(ctx, out)
	require.NoError(t, err)
	_, err = s.StoreIncoming(ctx, bob, []store.Incoming{incoming(1, "reply")})
	require.NoError(t, err)

	h, err := s.History(ctx, bob, nil, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"8", "9", "reply"}, texts(h), "the newest page, oldest first")
	h, err = s.History(ctx, bob, &h[0].ID, 3)
	require.NoError(t, err)
	require.Equal(t, []string{"5", "6", "7"}, texts(h))
	h, err = s.History(ctx, bob, &out[0].ID, 3)
	require.NoError(t, err)
	require.Empty(t, h)
	unknown := chat.NewID()
	_, err = s.History(ctx, bob, &unknown, 3)
	require.ErrorIs(t, err, store.ErrNotFound)
	other := randPeer(t)
	_, err = s.History(ctx, other, &out[0].ID, 3)
	require.ErrorIs(t, err, store.ErrNotFound, "before must name a message of this conversation")
}

func TestSearch(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	bob, carol := randPeer(t), randPeer(t)
	_, err := s.Enqueue(ctx, []store.NewOutgoing{
		text(bob, "Shall we meet at the café tomorrow?"),
		text(bob, "I'm learning C++ and \"Go\""),
		text(carol, "meeting moved to Friday"),
	})
	require.NoError(t, err)
	_, err = s.StoreIncoming(ctx, bob, []store.Incoming{incoming(1, "Yes, the CAFE at noon")})
	require.NoError(t, err)

	for _, tc := range []struct {
		q    string
		p    peer.ID
		want []string
	}{
		{"cafe", "", []string{"Shall we meet at the café tomorrow?", "Yes, the CAFE at noon"}},
		{"café noon", "", []string{"Yes, the CAFE at noon"}},
		{"meet*", "", []string{"Shall we meet at the café tomorrow?", "meeting moved to Friday"}},
		{"meet*", carol, []string{"meeting moved to Friday"}},
		{"meet", "", []string{"Shall we meet at the café tomorrow?"}},
		{`c++ "go"`, "", []string{"I'm learning C++ and \"Go\""}},
		{"AND OR NOT", "", nil},
		{"(unbalanced", "", nil},
	} {
		got, err := s.Search(ctx, tc.q, tc.p, 100)
		require.NoError(t, err, tc.q)
		require.Equal(t, tc.want, texts(got), tc.q)
	}
	_, err = s.Search(ctx, "  * ", "", 10)
	require.ErrorIs(t, err, store.ErrBadQuery)
}
