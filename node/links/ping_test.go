package links_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/stretchr/testify/require"
)

// TestPingEndsWithItsContext: a ping over a path that went dead (the peer
// reads and never answers, as across a cut WAN) ends as soon as its
// context does, not at its deadline: the daemon's stop waits for it.
func TestPingEndsWithItsContext(t *testing.T) {
	cfg := testConfig()
	cfg.Heartbeat = time.Minute // the ping's own bound: 5 s
	a, _ := startService(t, cfg, &fakeContacts{}, nil)
	b, _ := startService(t, testConfig(), &fakeContacts{}, nil)
	// b swallows pings: the stream stays open, no echo ever comes.
	held := make(chan struct{})
	b.Host().SetStreamHandler(ping.ID, func(s network.Stream) {
		defer s.Reset()
		<-held
	})
	defer close(held)
	require.NoError(t, a.Host().Connect(context.Background(), peer.AddrInfo{ID: b.Host().ID(), Addrs: b.Host().Addrs()}))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := a.Ping(ctx, b.Host().ID())
		done <- err
	}()
	time.AfterFunc(200*time.Millisecond, cancel)
	select {
	case err := <-done:
		require.Error(t, err)
		require.False(t, errors.Is(err, context.DeadlineExceeded), "the ping ran to its deadline: %v", err)
	case <-time.After(3 * time.Second):
		t.Fatal("ping still running 3 s after its context ended (its own bound is 5 s)")
	}
}
