package wire_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/natterim/natter/protocols/wire"
)

// lateCloseWrite holds the client's half-close back until the server has
// answered and closed its stream: what a client descheduled between its
// write and its CloseWrite sees under load.
type lateCloseWrite struct {
	network.Stream
	serverDone <-chan struct{}
	err        error
}

func (s *lateCloseWrite) CloseWrite() error {
	<-s.serverDone
	time.Sleep(100 * time.Millisecond) // let the server's STOP_SENDING arrive
	s.err = s.Stream.CloseWrite()
	return s.err
}

// TestRoundTripAnsweredBeforeHalfClose: over QUIC, a server that reads
// the request, answers and closes cancels the client's send side; the
// client's late CloseWrite then fails, yet the exchange worked and
// RoundTrip must say so.
func TestRoundTripAnsweredBeforeHalfClose(t *testing.T) {
	const proto = "/natter/test-roundtrip/1.0.0"
	server, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	require.NoError(t, err)
	defer server.Close()
	client, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	require.NoError(t, err)
	defer client.Close()

	done := make(chan struct{})
	server.SetStreamHandler(proto, func(st network.Stream) {
		defer close(done)
		var req wrapperspb.StringValue
		if err := wire.ReadMsg(st, &req, 64); err != nil {
			st.Reset()
			return
		}
		_ = wire.WriteMsg(st, wrapperspb.String("re: "+req.GetValue()), 64)
		_ = st.Close()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}))
	st, err := client.NewStream(ctx, server.ID(), proto)
	require.NoError(t, err)
	late := &lateCloseWrite{Stream: st, serverDone: done}
	var resp wrapperspb.StringValue
	require.NoError(t, wire.RoundTrip(late, wrapperspb.String("hi"), 64, &resp, 64))
	require.Equal(t, "re: hi", resp.GetValue())
	require.Error(t, late.err, "the half-close came after the server closed: QUIC refuses it (else this test reproduces nothing)")
}
