package file_test

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/file"
)

// streamsOf counts h's open streams of the file service, outbound and
// inbound, as its resource manager sees them.
func streamsOf(t *testing.T, h host.Host) (out, in int) {
	t.Helper()
	require.NoError(t, h.Network().ResourceManager().ViewService(file.ServiceName, func(s network.ServiceScope) error {
		st := s.Stat()
		out, in = st.NumStreamsOutbound, st.NumStreamsInbound
		return nil
	}))
	return out, in
}

// TestStreamsAttachToService: on real hosts (mocknet has no resource
// manager), the receiver's outbound streams, for the hash list and for
// the data, count against the file service, as the sender's inbound ones
// do, and leave it when the exchange ends.
func TestStreamsAttachToService(t *testing.T) {
	p := newProvider()
	recv, send, _ := tcpPair(t, p)
	f := newTestFile(t, 3*file.MinChunkSize+123, file.MinChunkSize)
	p.add(f, recv.ID())

	var opened int
	inService := func(network.Conn) {
		opened++
		out, _ := streamsOf(t, recv)
		require.Equal(t, 1, out, "the stream is attached to %s as soon as it is open", file.ServiceName)
	}
	sums, err := file.FetchSums(ctx(t), recv, send.ID(), f.offer, file.FetchOptions{Opened: inService})
	require.NoError(t, err)
	_, err = file.Download(ctx(t), recv, send.ID(), f.offer, sums, 0, &memFile{}, sha256.New(), file.FetchOptions{Opened: inService})
	require.NoError(t, err)
	require.Equal(t, 2, opened)

	require.Eventually(t, func() bool {
		out, _ := streamsOf(t, recv)
		_, in := streamsOf(t, send)
		return out == 0 && in == 0
	}, 10*time.Second, 10*time.Millisecond)
}
