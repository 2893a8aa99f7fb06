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

func setup(t *testing.T, n int, o *contact.Options) (hosts []host.Host, b *book, m *wire.Metrics) {
	t.Helper()
	mn, err := mocknet.WithNPeers(n)
	require.NoError(t, err)
	t.Cleanup(func() { mn.Close() })
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	b = &book{resp: contact.Response{Status: contact.StatusPending}}
	m = wire.NewMetrics(prometheus.NewRegistry())
	opts := contact.Options{Metrics: m}
	if o != nil {
		opts.Rate, opts.Burst = o.Rate, o.Burst
	}
	s := contact.NewService(mn.Hosts()[0], b, &opts)
	t.Cleanup(s.Close)
	return mn.Hosts(), b, m
}

func TestRequestRoundTrip(t *testing.T) {
	hs, b, _ := setup(t, 2, nil)
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
	hs, b, _ := setup(t, 2, nil)
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
	hs, b, m := setup(t, 2, nil)
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
	hs, b, m := setup(t, 3, &contact.Options{Rate: 0.001, Burst: 3})
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
	hs, _, _ := setup(t, 2, nil)
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
