package chat_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/natterim/natter/node/chat"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	chatproto "github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// mocknet keeps background goroutines that its Close ends
		// asynchronously.
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/net/mock.(*peernet).Close"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/eventbus.(*basicBus).Subscribe.func1"),
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem.(*AddrBook).background"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

const waitFor = 10 * time.Second

// side is one node's chat over fakes.
type side struct {
	h       host.Host
	svc     *chat.Service
	st      *fakeStore
	links   *fakeLinks
	ev      *events
	pol     *policy
	metrics *wire.Metrics
}

func (s *side) id() peer.ID { return s.h.ID() }

func newSide(t *testing.T, h host.Host, contacts ...store.Contact) *side {
	t.Helper()
	s := &side{h: h, st: newFakeStore(contacts...), links: newFakeLinks(), ev: &events{}, metrics: wire.NewMetrics(nil)}
	var ids []peer.ID
	for _, c := range contacts {
		if c.State == store.StateAccepted {
			ids = append(ids, c.PeerID)
		}
	}
	s.pol = allowOnly(ids...)
	s.svc = chat.New(h, s.st, s.st, s.st, s.links, s.pol, s.ev,
		chat.WithMetrics(s.metrics), chat.WithRetry(20*time.Millisecond, 200*time.Millisecond))
	t.Cleanup(func() { require.NoError(t, s.svc.Close()) })
	return s
}

// pair is alice and bob, connected over mocknet, accepted contacts of
// each other, their links direct and their deliverers running.
func pair(t *testing.T) (alice, bob *side) {
	t.Helper()
	mn, err := mocknet.WithNPeers(2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mn.Close() })
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	ha, hb := mn.Hosts()[0], mn.Hosts()[1]
	alice = newSide(t, ha, store.Contact{PeerID: hb.ID(), Name: "bob", State: store.StateAccepted})
	bob = newSide(t, hb, store.Contact{PeerID: ha.ID(), Name: "alice", State: store.StateAccepted})
	alice.links.set(hb.ID(), core.PathDirect)
	bob.links.set(ha.ID(), core.PathDirect)
	alice.svc.Open(hb.ID())
	bob.svc.Open(ha.ID())
	return alice, bob
}

func texts(ms []store.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

func TestSendDeliversInOrder(t *testing.T) {
	alice, bob := pair(t)
	ctx := context.Background()
	var want []string
	var sent []control.Message
	for i := range 30 {
		text := fmt.Sprintf("message %02d", i)
		m, err := alice.svc.Send(ctx, "bob", control.SendRequest{Text: text})
		require.NoError(t, err)
		require.Equal(t, "out", m.Direction)
		require.Equal(t, "bob", m.Contact)
		require.Equal(t, alice.id().String(), m.From)
		want = append(want, text)
		sent = append(sent, m)
	}
	// send --wait: returns once delivered, with the path.
	m, err := alice.svc.Send(ctx, "bob", control.SendRequest{Text: "last", Wait: "10s"})
	require.NoError(t, err)
	require.Equal(t, "delivered", m.Status)
	require.Equal(t, "direct", m.Via)
	want = append(want, "last")

	require.Eventually(t, func() bool { return len(bob.st.conversation(alice.id())) == len(want) }, waitFor, 5*time.Millisecond)
	got := bob.st.conversation(alice.id())
	require.Equal(t, want, texts(got), "the receiver's history is the sender's order")
	for i := 1; i < len(got); i++ {
		require.Greater(t, got[i].Seq, got[i-1].Seq)
	}
	require.Eventually(t, func() bool { return alice.st.outboxLen(bob.id()) == 0 }, waitFor, 5*time.Millisecond)

	// Alice's clients saw each message queued, then sent and delivered.
	require.Len(t, alice.ev.of(control.EventMessage), len(want))
	for _, m := range sent {
		require.Eventually(t, func() bool { return alice.ev.statusOf(m.ID) == control.StatusDelivered }, waitFor, 5*time.Millisecond)
	}
	var sawSent bool
	for _, ev := range alice.ev.of(control.EventStatus) {
		sawSent = sawSent || ev.Status == control.StatusSent
		if ev.Status == control.StatusDelivered {
			require.Equal(t, "direct", ev.Path)
		}
	}
	require.True(t, sawSent, "no message was ever reported sent")
	// Bob's clients saw each message arrive, named.
	require.Eventually(t, func() bool { return len(bob.ev.of(control.EventMessage)) == len(want) }, waitFor, 5*time.Millisecond)
	for _, ev := range bob.ev.of(control.EventMessage) {
		require.Equal(t, "alice", ev.Name)
		require.Equal(t, "in", ev.Message.Direction)
	}

	h, err := alice.svc.History(ctx, "bob", "", 1000)
	require.NoError(t, err)
	require.Len(t, h, len(want))
	require.Equal(t, control.StatusDelivered, h[0].Status)
}

// TestManyBatches: several full batches, queued at once, pipelined.
func TestManyBatches(t *testing.T) {
	alice, bob := pair(t)
	const n = chatproto.MaxBatch*3 + 10
	msgs := make([]store.NewOutgoing, n)
	for i := range msgs {
		msgs[i] = store.NewOutgoing{ID: chatproto.NewID(), Peer: bob.id(), Kind: store.KindText, Text: fmt.Sprintf("m%04d", i), SentAt: time.Now()}
	}
	_, err := alice.svc.Enqueue(context.Background(), msgs)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(bob.st.conversation(alice.id())) == n }, 30*time.Second, 10*time.Millisecond)
	got := bob.st.conversation(alice.id())
	for i, m := range got {
		require.Equal(t, fmt.Sprintf("m%04d", i), m.Text)
	}
	require.Eventually(t, func() bool { return alice.st.outboxLen(bob.id()) == 0 }, waitFor, 5*time.Millisecond)
}

// parkedIn counts the goroutines blocked (on a channel) inside fn.
func parkedIn(fn string) int {
	buf := make([]byte, 1<<22)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		parked := strings.Contains(header, "[select") || strings.Contains(header, "[chan ")
		if parked && strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

func TestGroupCommit(t *testing.T) {
	alice, bob := pair(t)
	gate := make(chan struct{})
	alice.st.setGate(gate)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	send := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := alice.svc.Send(context.Background(), "bob", control.SendRequest{Text: fmt.Sprintf("g%d", i)})
			errs <- err
		}()
	}
	// The first commit gets stuck on the disk...
	send(0)
	require.Eventually(t, func() bool { return parkedIn("(*fakeStore).Enqueue(") == 1 }, waitFor, time.Millisecond)
	// ...while every other send waits for the committer.
	for i := 1; i < n; i++ {
		send(i)
	}
	require.Eventually(t, func() bool { return parkedIn("node/chat.(*Service).Enqueue(") == n }, waitFor, time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, []int{1, n - 1}, alice.st.commitSizes(), "the sends that waited were committed together")
	require.Eventually(t, func() bool { return len(bob.st.conversation(alice.id())) == n }, waitFor, 5*time.Millisecond)
}

func textMsg(seq uint64, text string) *pb.Message {
	id := chatproto.NewID()
	return &pb.Message{Id: id[:], Kind: pb.Kind_TEXT, Seq: seq, Text: text, SentAtMs: time.Now().UnixMilli()}
}

func TestReceive(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	h, err := mn.GenPeer()
	require.NoError(t, err)
	from := peer.ID("alice-peer")
	bob := newSide(t, h, store.Contact{PeerID: from, Name: "alice", State: store.StateAccepted})
	ctx := context.Background()

	nudgeID, typingID := chatproto.NewID(), chatproto.NewID()
	batch := []*pb.Message{
		textMsg(1, "hi"),
		{Id: nudgeID[:], Kind: pb.Kind_NUDGE, Seq: 2, SentAtMs: time.Now().UnixMilli()},
		{Id: typingID[:], Kind: pb.Kind_TYPING_STARTED}, // ephemeral: never stored
	}
	// The mailbox hands messages over without a connection.
	require.NoError(t, bob.svc.Receive(ctx, from, nil, batch))
	msgs := bob.ev.of(control.EventMessage)
	require.Len(t, msgs, 2)
	require.Equal(t, "hi", msgs[0].Message.Text)
	require.Equal(t, "alice", msgs[0].Name)
	require.Len(t, bob.ev.of(control.EventNudge), 1)
	typing := bob.ev.of(control.EventTyping)
	require.Len(t, typing, 1)
	require.True(t, *typing[0].Typing)
	require.Len(t, bob.st.conversation(from), 2)

	// The same batch again (a resend after a reset): stored once, no new
	// message events.
	require.NoError(t, bob.svc.Receive(ctx, from, nil, batch[:2]))
	require.Len(t, bob.st.conversation(from), 2)
	require.Len(t, bob.ev.of(control.EventMessage), 2)

	// A new message ends the typing.
	require.NoError(t, bob.svc.Receive(ctx, from, nil, []*pb.Message{textMsg(3, "done typing")}))
	typing = bob.ev.of(control.EventTyping)
	require.Len(t, typing, 2, "the resend changed nothing, so it said nothing of typing")
	require.False(t, *typing[len(typing)-1].Typing)
}

func TestFileKindsGoToTheirHandler(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	h, err := mn.GenPeer()
	require.NoError(t, err)
	from := peer.ID("alice-peer")
	bob := newSide(t, h, store.Contact{PeerID: from, Name: "alice", State: store.StateAccepted})
	bob.st.transfers = true
	ctx := context.Background()

	offerID, xfer := chatproto.NewID(), chatproto.NewID()
	offer := &pb.Message{Id: offerID[:], Kind: pb.Kind_FILE_OFFER, Seq: 7, SentAtMs: 1000, FileOffer: &pb.FileOffer{Name: "cat.jpg"}}
	update := func(st pb.FileState) *pb.Message {
		id := chatproto.NewID()
		return &pb.Message{Id: id[:], Kind: pb.Kind_FILE_UPDATE, Seq: 8, FileUpdate: &pb.FileUpdate{Transfer: xfer[:], State: st}}
	}

	// Nobody handles files yet: not acknowledged, so the sender retries.
	require.Error(t, bob.svc.Receive(ctx, from, nil, []*pb.Message{offer}))
	require.Empty(t, bob.st.conversation(from))

	k := &fileKinds{}
	bob.svc.Register(k, pb.Kind_FILE_OFFER, pb.Kind_FILE_UPDATE)
	require.NoError(t, bob.svc.Receive(ctx, from, nil, []*pb.Message{offer, update(pb.FileState_FILE_DONE), update(pb.FileState(99))}))

	require.Equal(t, []string{"alice", "alice", "alice"}, k.names, "the handler learns the sender's name")
	require.Len(t, bob.st.incoming, 1, "one batch, one store call")
	in := bob.st.incoming[0]
	require.Len(t, in, 2, "the unknown update was skipped")
	require.Equal(t, offerID, in[0].ID, "chat sets the id")
	require.Equal(t, uint64(7), in[0].Seq)
	require.Equal(t, int64(1000), in[0].SentAt.UnixMilli())
	require.Equal(t, store.KindFile, in[0].Kind)
	require.Equal(t, "a note", in[0].Text)
	require.Equal(t, store.KindFileUpdate, in[1].Kind)
	require.Equal(t, xfer, in[1].Update.Transfer)
	require.Len(t, k.received, 1, "the handler acts on the transfers the batch created")
	require.Equal(t, offerID, k.received[0][0].ID)

	// History shows the file with the handler's description.
	h2, err := bob.svc.History(ctx, "alice", "", 10)
	require.NoError(t, err)
	require.Len(t, h2, 1)
	require.Equal(t, store.KindFile, h2[0].Kind)
	require.NotNil(t, h2[0].File)
	require.Equal(t, "ref-"+offerID.String(), h2[0].File.Name)
}

func TestStrangersRefused(t *testing.T) {
	alice, bob := pair(t)
	bob.pol.mu.Lock()
	clear(bob.pol.allow) // alice is no longer accepted on bob's side
	bob.pol.mu.Unlock()
	m, err := alice.svc.Send(context.Background(), "bob", control.SendRequest{Text: "let me in"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return bob.metrics.Count("chat", "refused") >= 2 }, waitFor, 5*time.Millisecond,
		"alice's deliverer retries, and is refused each time")
	require.Empty(t, bob.st.conversation(alice.id()))
	require.Equal(t, 1, alice.st.outboxLen(bob.id()), "still queued")
	require.NotEqual(t, control.StatusDelivered, alice.ev.statusOf(m.ID))
}

func TestSendWaitEndsQueuedWithoutALink(t *testing.T) {
	alice, bob := pair(t)
	alice.links.set(bob.id(), core.PathNone)
	ctx := context.Background()
	m, err := alice.svc.Send(ctx, "bob", control.SendRequest{Text: "anyone?", Wait: "50ms"})
	require.NoError(t, err)
	require.Equal(t, "queued", m.Status, "the wait is over: the message stays queued")
	require.Equal(t, 1, alice.st.outboxLen(bob.id()))

	// The caller giving up ends the wait the same way.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan control.Message, 1)
	go func() {
		m, err := alice.svc.Send(cctx, "bob", control.SendRequest{Text: "still there?", Wait: "10m"})
		require.NoError(t, err)
		done <- m
	}()
	require.Eventually(t, func() bool { return alice.st.outboxLen(bob.id()) == 2 }, waitFor, time.Millisecond)
	cancel()
	select {
	case m := <-done:
		require.Equal(t, "queued", m.Status)
	case <-time.After(waitFor):
		t.Fatal("Send did not return when its context ended")
	}

	ok, err := alice.svc.Typing(ctx, "bob", true)
	require.NoError(t, err)
	require.False(t, ok, "no link: no typing notice")

	// The link comes up: the deliverer sends what waited.
	alice.links.set(bob.id(), core.PathDirect)
	require.Eventually(t, func() bool { return len(bob.st.conversation(alice.id())) == 2 }, waitFor, 5*time.Millisecond)
	require.Equal(t, []string{"anyone?", "still there?"}, texts(bob.st.conversation(alice.id())))
}

func TestTyping(t *testing.T) {
	alice, bob := pair(t)
	ctx := context.Background()
	ok, err := alice.svc.Typing(ctx, "bob", true)
	require.NoError(t, err)
	require.True(t, ok)
	require.Eventually(t, func() bool { return len(bob.ev.of(control.EventTyping)) == 1 }, waitFor, 5*time.Millisecond)
	require.True(t, *bob.ev.of(control.EventTyping)[0].Typing)
	require.Empty(t, bob.st.conversation(alice.id()), "typing is never stored")
	require.Zero(t, alice.st.outboxLen(bob.id()), "nor queued")

	alice.svc.Drop(bob.id())
	ok, err = alice.svc.Typing(ctx, "bob", false)
	require.NoError(t, err)
	require.False(t, ok, "no deliverer: no typing notice")
}

func TestReadReceipts(t *testing.T) {
	alice, bob := pair(t)
	ctx := context.Background()
	m, err := alice.svc.Send(ctx, "bob", control.SendRequest{Text: "read me", Wait: "10s"})
	require.NoError(t, err)
	require.Equal(t, "delivered", m.Status)

	// Off by default.
	rr, err := bob.svc.MarkRead(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, control.ReadResult{Marked: 1, Receipts: false}, rr)
	require.Len(t, bob.ev.of(control.EventRead), 1)

	c, err := bob.svc.SetReceipts(ctx, "alice", "on")
	require.NoError(t, err)
	require.True(t, *c.ReadReceipts)
	m, err = alice.svc.Send(ctx, "bob", control.SendRequest{Text: "read me too", Wait: "10s"})
	require.NoError(t, err)
	rr, err = bob.svc.MarkRead(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, control.ReadResult{Marked: 1, Receipts: true}, rr)
	require.Eventually(t, func() bool { return alice.ev.statusOf(m.ID) == control.StatusRead }, waitFor, 5*time.Millisecond)

	_, err = bob.svc.SetReceipts(ctx, "alice", "sometimes")
	require.ErrorIs(t, err, core.ErrInvalid)
}

func TestSendRefusals(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	h, err := mn.GenPeer()
	require.NoError(t, err)
	a := newSide(t, h,
		store.Contact{PeerID: "bob-peer", Name: "bob", State: store.StateAccepted},
		store.Contact{PeerID: "carol-peer", Name: "carol", State: store.StatePendingOut},
		store.Contact{PeerID: "dave-peer", Name: "dave", State: store.StateBlocked},
	)
	ctx := context.Background()
	cases := []struct {
		ref  string
		req  control.SendRequest
		kind error
	}{
		{"nobody", control.SendRequest{Text: "x"}, core.ErrNotFound},
		{"carol", control.SendRequest{Text: "x"}, core.ErrConflict},
		{"dave", control.SendRequest{Text: "x"}, core.ErrConflict},
		{"bob", control.SendRequest{Text: ""}, core.ErrInvalid},
		{"bob", control.SendRequest{Text: "bad \xff"}, core.ErrInvalid},
		{"bob", control.SendRequest{Kind: control.KindNudge, Text: "boo"}, core.ErrInvalid},
		{"bob", control.SendRequest{Kind: "shout", Text: "x"}, core.ErrInvalid},
		{"bob", control.SendRequest{Text: "x", Wait: "forever"}, core.ErrInvalid},
		{"bob", control.SendRequest{Text: "x", Wait: "11m"}, core.ErrInvalid},
	}
	for _, tc := range cases {
		_, err := a.svc.Send(ctx, tc.ref, tc.req)
		require.ErrorIs(t, err, tc.kind, "%s %+v", tc.ref, tc.req)
	}
	require.Empty(t, a.st.commitSizes(), "nothing was queued")
	_, err = a.svc.History(ctx, "bob", "not-an-id", 10)
	require.ErrorIs(t, err, core.ErrInvalid)
	_, err = a.svc.Search(ctx, "  ", "", 10)
	require.ErrorIs(t, err, core.ErrInvalid)
	_, err = a.svc.MarkRead(ctx, "nobody")
	require.ErrorIs(t, err, core.ErrNotFound)
}

func TestClose(t *testing.T) {
	alice, bob := pair(t)
	require.NoError(t, alice.svc.Close())
	require.NoError(t, alice.svc.Close())
	_, err := alice.svc.Send(context.Background(), "bob", control.SendRequest{Text: "too late"})
	require.ErrorIs(t, err, core.ErrClosed)
	alice.svc.Open(bob.id()) // no-op once closed
	alice.svc.Wake(bob.id())
	alice.svc.Drop(bob.id())
}
