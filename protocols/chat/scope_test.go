package chat_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

// chatStreams counts h's open streams of the chat service, outbound and
// inbound, as its resource manager sees them.
func chatStreams(t *testing.T, h host.Host) (out, in int) {
	t.Helper()
	require.NoError(t, h.Network().ResourceManager().ViewService(chat.ServiceName, func(s network.ServiceScope) error {
		st := s.Stat()
		out, in = st.NumStreamsOutbound, st.NumStreamsInbound
		return nil
	}))
	return out, in
}

// TestOpenAttachesService: on real hosts (mocknet has no resource
// manager), the stream Open returns counts against the chat service, as
// the receiver's side does, and leaves it once reset.
func TestOpenAttachesService(t *testing.T) {
	newHost := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport))
		require.NoError(t, err)
		t.Cleanup(func() { h.Close() })
		return h
	}
	h1, h2 := newHost(), newHost()
	require.NoError(t, h1.Connect(context.Background(), peer.AddrInfo{ID: h2.ID(), Addrs: h2.Addrs()}))
	svc := chat.New(h2, &fakeReceiver{})
	defer svc.Close()

	s, err := chat.Open(context.Background(), h1, h2.ID(), ackTimeout)
	require.NoError(t, err)
	out, _ := chatStreams(t, h1)
	require.Equal(t, 1, out, "the stream is attached to %s as soon as it is open", chat.ServiceName)

	require.NoError(t, s.Send([]*pb.Message{textMsg("x")}))
	_, err = s.ReadAck()
	require.NoError(t, err)
	_, in := chatStreams(t, h2)
	require.Equal(t, 1, in)

	s.Reset()
	require.Eventually(t, func() bool {
		out, _ := chatStreams(t, h1)
		_, in := chatStreams(t, h2)
		return out == 0 && in == 0
	}, 10*time.Second, 10*time.Millisecond)
}
