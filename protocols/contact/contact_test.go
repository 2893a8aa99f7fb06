package contact_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/natterim/natter/protocols/contact"
	"github.com/natterim/natter/protocols/contact/pb"
	"github.com/natterim/natter/protocols/wire"
)

// book is a tiny Handler: it answers like the node does for the cases the
// protocol cares about.
type book struct {
	mu   sync.Mutex
	seen []contact.Request
	resp contact.Response
}

func (b *book) HandleContact(_ context.Context, _ peer.ID, req contact.Request) contact.Response {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = append(b.seen, req)
	return b.resp
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

func setup(t *testing.T, n int, opts ...contact.Option) (hosts []host.Host, b *book, m *wire.Metrics) {
	t.Helper()
	mn, err := mocknet.WithNPeers(n)
	require.NoError(t, err)
	t.Cleanup(func() { mn.Close() })
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	b = &book{resp: contact.Response{Status: contact.StatusPending}}
	m = wire.NewMetrics(prometheus.NewRegistry())
	s := contact.New(mn.Hosts()[0], b, append([]contact.Option{contact.WithMetrics(m)}, opts...)...)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return mn.Hosts(), b, m
}

func TestRequestRoundTrip(t *testing.T) {
	hs, b, _ := setup(t, 2)
	resp, err := contact.Send(context.Background(), hs[1], hs[0].ID(), contact.Request{Kind: contact.KindRequest, Note: "hi, it's Bob", Name: "Bob"})
	require.NoError(t, err)
	require.Equal(t, contact.StatusPending, resp.Status)
	require.Equal(t, []contact.Request{{Kind: contact.KindRequest, Note: "hi, it's Bob", Name: "Bob"}}, b.seen)

	b.resp = contact.Response{Status: contact.StatusRefused, Reason: "no request from you"}
	resp, err = contact.Send(context.Background(), hs[1], hs[0].ID(), contact.Request{Kind: contact.KindAccept})
	require.NoError(t, err)
	require.Equal(t, contact.Response{Status: contact.StatusRefused, Reason: "no request from you"}, resp)
}

func TestSendRefusesBadTextBeforeSending(t *testing.T) {
	hs, b, _ := setup(t, 2)
	for _, req := range []contact.Request{
		{Kind: contact.KindRequest, Note: strings.Repeat("x", contact.MaxNoteBytes+1)},
		{Kind: contact.KindRequest, Name: "a\x00b"},
		{Kind: contact.KindRequest, Note: "\xff\xfe"},
		{Kind: pb.Kind(42)},
	} {
		_, err := contact.Send(context.Background(), hs[1], hs[0].ID(), req)
		require.ErrorIs(t, err, wire.ErrInvalid, "%+v", req)
	}
	require.Empty(t, b.seen)
}

func TestInvalidRequestIsResetAndCounted(t *testing.T) {
	hs, b, m := setup(t, 2)
	st, err := hs[1].NewStream(context.Background(), hs[0].ID(), contact.ID)
	require.NoError(t, err)
	require.NoError(t, wire.WriteMsg(st, &pb.Request{Kind: pb.Kind_REQUEST, Note: "bad\x07bell"}, contact.MaxFrameSize))
	var resp pb.Response
	require.Error(t, wire.ReadMsg(st, &resp, contact.MaxFrameSize))
	require.Eventually(t, func() bool { return m.Count("contact", "invalid") == 1 }, 5*time.Second, 10*time.Millisecond)

	// Oversized frame: refused before it is read.
	st, err = hs[1].NewStream(context.Background(), hs[0].ID(), contact.ID)
	require.NoError(t, err)
	_, _ = st.Write([]byte{0xff, 0xff, 0x03})
	require.Error(t, wire.ReadMsg(st, &resp, contact.MaxFrameSize))
	require.Eventually(t, func() bool { return m.Count("contact", "oversize") == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, b.seen)
}

func TestRateLimitIsPerPeer(t *testing.T) {
	hs, b, m := setup(t, 3, contact.WithRateLimit(0.001, 3))
	flooder, other := hs[1], hs[2]
	limited := 0
	for range 10 {
		resp, err := contact.Send(context.Background(), flooder, hs[0].ID(), contact.Request{Kind: contact.KindRequest})
		if err != nil {
			require.ErrorIs(t, err, contact.ErrRateLimited)
			require.Equal(t, contact.StatusRateLimited, resp.Status)
			limited++
		}
	}
	require.Equal(t, 7, limited)
	require.Equal(t, float64(7), m.Count("contact", "rate_limited"))
	// Someone else is not affected by the flood.
	resp, err := contact.Send(context.Background(), other, hs[0].ID(), contact.Request{Kind: contact.KindRequest})
	require.NoError(t, err)
	require.Equal(t, contact.StatusPending, resp.Status)
	require.Len(t, b.seen, 4)
}

func TestLyingResponderIsAnError(t *testing.T) {
	hs, _, _ := setup(t, 2)
	// hs[1] answers with a status that does not exist.
	hs[1].SetStreamHandler(contact.ID, func(st network.Stream) {
		var req pb.Request
		_ = wire.ReadMsg(st, &req, contact.MaxFrameSize)
		_ = wire.WriteMsg(st, &pb.Response{Status: pb.Status(77)}, contact.MaxFrameSize)
		_ = st.Close()
	})
	_, err := contact.Send(context.Background(), hs[0], hs[1].ID(), contact.Request{Kind: contact.KindRequest})
	require.ErrorIs(t, err, wire.ErrInvalid)
}

// blocking is a Handler that holds every request until its context ends.
type blocking struct{ entered chan struct{} }

func (b blocking) HandleContact(ctx context.Context, _ peer.ID, _ contact.Request) contact.Response {
	b.entered <- struct{}{}
	<-ctx.Done()
	return contact.Response{Status: contact.StatusRefused}
}

// Close waits for the exchange in flight: it cancels the handler's
// context, and the requester sees its stream end.
func TestCloseWaitsForHandler(t *testing.T) {
	mn, err := mocknet.FullMeshConnected(2)
	require.NoError(t, err)
	defer mn.Close()
	hs := mn.Hosts()
	b := blocking{entered: make(chan struct{}, 1)}
	s := contact.New(hs[0], b)
	sent := make(chan error, 1)
	go func() {
		_, err := contact.Send(context.Background(), hs[1], hs[0].ID(), contact.Request{Kind: contact.KindRequest})
		sent <- err
	}()
	<-b.entered
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "idempotent")
	select {
	case <-sent: // answered or reset: either way over
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight never ended")
	}
}
