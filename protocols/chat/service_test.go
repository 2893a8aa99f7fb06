package chat_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/wire"
)

const ackTimeout = 10 * time.Second

// fakeReceiver records the batches it stores. It allows every peer unless
// allow is set, can be made to fail the next n calls, and can be made to
// block each Receive until gate is closed.
type fakeReceiver struct {
	allow map[peer.ID]bool // nil: allow everyone

	mu      sync.Mutex
	batches [][]*pb.Message
	calls   int
	failN   int
	gate    chan struct{} // nil: do not block
	entered chan struct{} // if non-nil, signalled (non-blocking) on each call
}

func (r *fakeReceiver) Allow(_ context.Context, p peer.ID) bool {
	return r.allow == nil || r.allow[p]
}

func (r *fakeReceiver) Receive(ctx context.Context, _ peer.ID, _ network.Conn, msgs []*pb.Message) error {
	r.mu.Lock()
	r.calls++
	gate, entered := r.gate, r.entered
	fail := r.failN > 0
	if fail {
		r.failN--
	}
	r.mu.Unlock()
	if entered != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return errors.New("disk on fire")
	}
	r.mu.Lock()
	r.batches = append(r.batches, msgs)
	r.mu.Unlock()
	return nil
}

func (r *fakeReceiver) stored() [][]*pb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]*pb.Message(nil), r.batches...)
}

func (r *fakeReceiver) numCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// setup returns two connected mocknet hosts; h2 runs a chat Service with
// receiver r.
func setup(t testing.TB, r chat.Receiver) (h1, h2 host.Host, m *wire.Metrics) {
	t.Helper()
	mn, err := mocknet.WithNPeers(2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mn.Close() })
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	hs := mn.Hosts()
	h1, h2 = hs[0], hs[1]
	m = wire.NewMetrics(nil)
	svc := chat.New(h2, r, chat.WithMetrics(m), chat.WithStoreTimeout(5*time.Second), chat.WithWriteTimeout(5*time.Second))
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	return h1, h2, m
}

var seqCounter uint64

func textMsg(s string) *pb.Message {
	seqCounter++
	id := chat.NewID()
	return &pb.Message{Id: id[:], Kind: pb.Kind_TEXT, Seq: seqCounter, Text: s, SentAtMs: time.Now().UnixMilli()}
}

func msgOfKind(k pb.Kind) *pb.Message {
	id := chat.NewID()
	return &pb.Message{Id: id[:], Kind: k}
}

func ids(msgs []*pb.Message) []chat.MsgID {
	out := make([]chat.MsgID, len(msgs))
	for i, m := range msgs {
		out[i] = chat.MsgID(m.GetId())
	}
	return out
}

func open(t testing.TB, h1, h2 host.Host) *chat.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := chat.Open(ctx, h1, h2.ID(), ackTimeout)
	require.NoError(t, err)
	t.Cleanup(s.Reset)
	return s
}

func eventuallyCount(t *testing.T, m *wire.Metrics, reason string, want float64) {
	t.Helper()
	require.Eventually(t, func() bool { return m.Count("chat", reason) == want },
		5*time.Second, 10*time.Millisecond, "Count(chat, %s) = %v, want %v", reason, m.Count("chat", reason), want)
}

type ackResult struct {
	ids []chat.MsgID
	err error
}

func readAcks(s *chat.Stream, n int) <-chan ackResult {
	ch := make(chan ackResult, n)
	go func() {
		for i := 0; i < n; i++ {
			a, err := s.ReadAck()
			ch <- ackResult{a, err}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func TestPipelinedDelivery(t *testing.T) {
	r := &fakeReceiver{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	h1, h2, _ := setup(t, r)
	s := open(t, h1, h2)

	batches := [][]*pb.Message{
		{textMsg("a"), textMsg("b"), textMsg("c")},
		{textMsg("d"), msgOfKind(pb.Kind_TYPING_STARTED)},
		{textMsg("e"), textMsg("f"), textMsg("g"), textMsg("h")},
	}
	// Acks are read by their own goroutine, as a real sender does: mocknet
	// streams have no buffering, so one goroutine that only writes would
	// block as soon as the receiver stops reading.
	acks := readAcks(s, len(batches))
	sent := make(chan error, 1)
	go func() {
		for _, b := range batches {
			if err := s.Send(b); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()

	// The first batch reached Receive, which is blocked: no ack may arrive.
	select {
	case <-r.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("Receive was not called")
	}
	select {
	case a := <-acks:
		t.Fatalf("ack %v (err %v) arrived before Receive returned", a.ids, a.err)
	case <-time.After(200 * time.Millisecond):
	}

	close(r.gate)
	select {
	case err := <-sent:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Send blocked")
	}
	for i, b := range batches {
		select {
		case a := <-acks:
			require.NoError(t, a.err, "ack %d", i)
			require.Equal(t, ids(b), a.ids, "ack %d", i)
		case <-time.After(5 * time.Second):
			t.Fatalf("no ack %d", i)
		}
	}
	got := r.stored()
	require.Len(t, got, len(batches))
	for i, b := range batches {
		require.Equal(t, ids(b), ids(got[i]), "batch %d", i)
	}
}

func TestUnknownKindAckedNotReceived(t *testing.T) {
	r := &fakeReceiver{}
	h1, h2, _ := setup(t, r)
	s := open(t, h1, h2)

	unknown := msgOfKind(pb.Kind(99))
	unknown.Text = "from the future" // fields of unknown kinds are not interpreted
	b1 := []*pb.Message{textMsg("a"), unknown, textMsg("b")}
	require.NoError(t, s.Send(b1))
	a, err := s.ReadAck()
	require.NoError(t, err)
	require.Equal(t, ids(b1), a)
	got := r.stored()
	require.Len(t, got, 1)
	require.Equal(t, ids([]*pb.Message{b1[0], b1[2]}), ids(got[0]))

	b2 := []*pb.Message{msgOfKind(pb.Kind(99)), msgOfKind(pb.Kind(1000))}
	require.NoError(t, s.Send(b2))
	a, err = s.ReadAck()
	require.NoError(t, err)
	require.Equal(t, ids(b2), a)
	require.Equal(t, 1, r.numCalls(), "Receive called for a batch of unknown kinds only")
}

func TestNotAllowedRefused(t *testing.T) {
	r := &fakeReceiver{allow: map[peer.ID]bool{"someone-else": true}}
	h1, h2, m := setup(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The reset may already reach the opener during protocol negotiation,
	// or only at Send or ReadAck; any of them is fine, an ack is not.
	s, err := chat.Open(ctx, h1, h2.ID(), ackTimeout)
	if err == nil {
		defer s.Reset()
		_ = s.Send([]*pb.Message{textMsg("hi")})
		_, err = s.ReadAck()
	}
	require.Error(t, err)
	require.NotErrorIs(t, err, io.EOF)
	eventuallyCount(t, m, "refused", 1)
	require.Zero(t, r.numCalls())
}

func TestReceiveErrorThenResend(t *testing.T) {
	r := &fakeReceiver{failN: 1}
	h1, h2, m := setup(t, r)
	b := []*pb.Message{textMsg("a"), textMsg("b")}

	s := open(t, h1, h2)
	require.NoError(t, s.Send(b))
	_, err := s.ReadAck()
	require.Error(t, err, "a batch that failed to store was acknowledged")
	require.Empty(t, r.stored())
	eventuallyCount(t, m, "other", 1)

	// At-least-once: the sender opens a new stream and sends the batch again.
	s2 := open(t, h1, h2)
	require.NoError(t, s2.Send(b))
	a, err := s2.ReadAck()
	require.NoError(t, err)
	require.Equal(t, ids(b), a)
	got := r.stored()
	require.Len(t, got, 1)
	require.Equal(t, ids(b), ids(got[0]))
	require.Equal(t, 2, r.numCalls())
}

// rawStream opens a chat stream without the Stream wrapper, to send bytes
// a well-behaved opener never would.
func rawStream(t *testing.T, h1, h2 host.Host) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := h1.NewStream(ctx, h2.ID(), chat.ID)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Reset() })
	return st
}

// requireReset checks that the receiver ends the stream with a reset, not
// with acks or a clean close.
func requireReset(t *testing.T, st network.Stream) {
	t.Helper()
	require.NoError(t, st.SetReadDeadline(time.Now().Add(5*time.Second)))
	b, err := io.ReadAll(st)
	require.Error(t, err, "stream not reset; read %x", b)
	require.ErrorIs(t, err, network.ErrReset)
	require.Empty(t, b)
}

func TestOversizeFrame(t *testing.T) {
	r := &fakeReceiver{}
	h1, h2, m := setup(t, r)
	st := rawStream(t, h1, h2)
	_, err := st.Write(binary.AppendUvarint(nil, chat.MaxFrameSize+1))
	require.NoError(t, err)
	requireReset(t, st)
	eventuallyCount(t, m, "oversize", 1)
	require.Zero(t, r.numCalls())
}

func TestMalformedFrame(t *testing.T) {
	r := &fakeReceiver{}
	h1, h2, m := setup(t, r)
	st := rawStream(t, h1, h2)
	_, err := st.Write([]byte{4, 0xff, 0xff, 0xff, 0xff})
	require.NoError(t, err)
	requireReset(t, st)
	eventuallyCount(t, m, "malformed", 1)
	require.Zero(t, r.numCalls())
}

// rawFrame hand-encodes a Frame holding one message, so that fields the
// protobuf library refuses to marshal (invalid UTF-8) can be sent.
func rawFrame(id []byte, kind pb.Kind, seq uint64, text string) []byte {
	var msg []byte
	msg = protowire.AppendTag(msg, 1, protowire.BytesType)
	msg = protowire.AppendBytes(msg, id)
	msg = protowire.AppendTag(msg, 2, protowire.VarintType)
	msg = protowire.AppendVarint(msg, uint64(kind))
	msg = protowire.AppendTag(msg, 4, protowire.VarintType)
	msg = protowire.AppendVarint(msg, seq)
	msg = protowire.AppendTag(msg, 5, protowire.BytesType)
	msg = protowire.AppendString(msg, text)
	var f []byte
	f = protowire.AppendTag(f, 1, protowire.BytesType)
	f = protowire.AppendBytes(f, msg)
	return protowire.AppendBytes(nil, f) // length prefix
}

func frameBytes(t *testing.T, f *pb.Frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, wire.WriteMsg(&buf, f, chat.MaxFrameSize))
	return buf.Bytes()
}

func TestInvalidMessages(t *testing.T) {
	id := chat.NewID()
	ref := chat.NewID()
	valid := func() *pb.Message { return &pb.Message{Id: id[:], Kind: pb.Kind_TEXT, Seq: 1, Text: "hi"} }
	tooMany := make([]*pb.Message, chat.MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = textMsg("x")
	}
	cases := []struct {
		name  string
		frame *pb.Frame
	}{
		{"short id", &pb.Frame{Messages: []*pb.Message{{Id: id[:5], Kind: pb.Kind_TEXT, Seq: 1, Text: "hi"}}}},
		{"text without seq", &pb.Frame{Messages: []*pb.Message{{Id: id[:], Kind: pb.Kind_TEXT, Text: "hi"}}}},
		{"empty text", &pb.Frame{Messages: []*pb.Message{{Id: id[:], Kind: pb.Kind_TEXT, Seq: 1}}}},
		{"receipt without refs", &pb.Frame{Messages: []*pb.Message{{Id: id[:], Kind: pb.Kind_READ, Seq: 1}}}},
		{"receipt with short ref", &pb.Frame{Messages: []*pb.Message{{Id: id[:], Kind: pb.Kind_DELIVERED, Seq: 1, Refs: [][]byte{ref[:], {1, 2}}}}}},
		{"nudge with text", &pb.Frame{Messages: []*pb.Message{{Id: id[:], Kind: pb.Kind_NUDGE, Seq: 1, Text: "boo"}}}},
		{"empty batch", &pb.Frame{}},
		{"acks sent to receiver", &pb.Frame{Messages: []*pb.Message{valid()}, Acks: [][]byte{id[:]}}},
		{"batch too large", &pb.Frame{Messages: tooMany}},
		{"valid then invalid", &pb.Frame{Messages: []*pb.Message{valid(), {Id: id[:], Kind: pb.Kind_NUDGE}}}},
	}
	r := &fakeReceiver{}
	h1, h2, m := setup(t, r)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := rawStream(t, h1, h2)
			_, err := st.Write(frameBytes(t, tc.frame))
			require.NoError(t, err)
			requireReset(t, st)
			eventuallyCount(t, m, "invalid", float64(i+1))
		})
	}
	require.Zero(t, r.numCalls())

	// Invalid UTF-8 in a proto3 string field is refused by the protobuf
	// decoder itself, so it is counted as malformed before Validate sees it.
	t.Run("text not UTF-8", func(t *testing.T) {
		st := rawStream(t, h1, h2)
		_, err := st.Write(rawFrame(id[:], pb.Kind_TEXT, 1, "\xff\xfe"))
		require.NoError(t, err)
		requireReset(t, st)
		eventuallyCount(t, m, "malformed", 1)
	})
	require.Zero(t, r.numCalls())
	require.Equal(t, float64(len(cases)), m.Count("chat", "invalid"))
}

func TestCloseWrite(t *testing.T) {
	r := &fakeReceiver{}
	h1, h2, m := setup(t, r)
	s := open(t, h1, h2)
	b := []*pb.Message{textMsg("last words")}
	require.NoError(t, s.Send(b))
	require.NoError(t, s.CloseWrite())
	a, err := s.ReadAck()
	require.NoError(t, err)
	require.Equal(t, ids(b), a)
	_, err = s.ReadAck()
	require.ErrorIs(t, err, io.EOF)
	require.Len(t, r.stored(), 1)
	// A clean close is not an error.
	time.Sleep(50 * time.Millisecond)
	for _, reason := range []string{"eof", "reset", "other", "timeout"} {
		require.Zero(t, m.Count("chat", reason), reason)
	}
}

// TestIdleEndsCleanlyOverYamux: on a real TCP+yamux connection (mocknet
// has no deadlines), a stream that stays quiet past IdleTimeout is closed
// by the receiver, not reset, and counts as no error.
func TestIdleEndsCleanlyOverYamux(t *testing.T) {
	newHost := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport))
		require.NoError(t, err)
		t.Cleanup(func() { h.Close() })
		return h
	}
	h1, h2 := newHost(), newHost()
	require.NoError(t, h1.Connect(context.Background(), peer.AddrInfo{ID: h2.ID(), Addrs: h2.Addrs()}))
	m := wire.NewMetrics(nil)
	svc := chat.New(h2, &fakeReceiver{}, chat.WithMetrics(m), chat.WithIdleTimeout(200*time.Millisecond))
	defer svc.Close()
	s, err := chat.Open(context.Background(), h1, h2.ID(), 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, s.Send([]*pb.Message{textMsg("x")}))
	_, err = s.ReadAck()
	require.NoError(t, err)
	require.NoError(t, s.Idle())
	_, err = s.ReadAck()
	require.ErrorIs(t, err, io.EOF, "the receiver closes an idle stream, it does not reset it")
	for _, r := range []string{"timeout", "reset", "other", "eof"} {
		require.Zero(t, m.Count("chat", r), r)
	}
}

// TestCloseWaitsForHandlers: Close aborts a Receive in progress, waits for
// its handler, and can be called again.
func TestCloseWaitsForHandlers(t *testing.T) {
	mn, err := mocknet.WithNPeers(2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mn.Close() })
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	h1, h2 := mn.Hosts()[0], mn.Hosts()[1]
	r := &fakeReceiver{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	svc := chat.New(h2, r)
	s := open(t, h1, h2)
	acks := readAcks(s, 1)
	require.NoError(t, s.Send([]*pb.Message{textMsg("stuck")}))
	select {
	case <-r.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("Receive was not called")
	}
	closed := make(chan error, 1)
	go func() { closed <- svc.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	a := <-acks
	require.Error(t, a.err, "the aborted batch was acknowledged")
	require.Empty(t, r.stored())
	require.NoError(t, svc.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s2, err := chat.Open(ctx, h1, h2.ID(), ackTimeout); err == nil {
		defer s2.Reset()
		_ = s2.Send([]*pb.Message{textMsg("late")})
		_, err = s2.ReadAck()
		require.Error(t, err, "a closed service answered")
	}
}
