package loadgen_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/rendezvous/loadgen"
)

func TestRunSmall(t *testing.T) {
	cfg := loadgen.DefaultConfig()
	cfg.Levels = []int{6, 12}
	cfg.BaselineLevels = []int{12}
	cfg.NodesPerIP = 4
	cfg.Concurrency = 8
	cfg.Settle = 300 * time.Millisecond
	cfg.Idle = 500 * time.Millisecond
	cfg.Heartbeat = 200 * time.Millisecond
	cfg.Rate = 100
	cfg.RateDuration = 500 * time.Millisecond
	cfg.Workers = 4
	cfg.Pairs = 3
	cfg.ChatDuration = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := loadgen.Run(ctx, cfg, loadgen.InProcess)
	require.NoError(t, err)
	require.Len(t, rep.Levels, 2)
	for i, l := range rep.Levels {
		n := cfg.Levels[i]
		require.Equal(t, "natter", l.Server)
		require.Equal(t, n, l.Online, "every node is connected")
		require.Equal(t, n, l.Reservations, "every node holds a reservation")
		require.Equal(t, n, l.Registrations, "every node is registered")
		// One connection per transport is what a node asks for, but
		// go-libp2p answers a dial with the connection it already has
		// when the other transport's request arrives late (a loaded
		// machine): between one and two per node.
		require.GreaterOrEqual(t, l.Connections, n, "every node has a connection")
		require.LessOrEqual(t, l.Connections, 2*n, "at most one per transport")
		require.Empty(t, l.RampFailures)
		require.Positive(t, l.RSSBytes)
		require.Positive(t, l.Register.Count)
		require.Zero(t, l.Register.Errors)
		require.Positive(t, l.Register.P99ms)
		require.Positive(t, l.RegisterMax.Count)
		require.Positive(t, l.Lookup.Count)
		require.Zero(t, l.Lookup.Errors)
		require.Positive(t, l.LookupMax.Count)
		require.Equal(t, 3, l.ChatPairs)
		require.Positive(t, l.Chat.Count)
		require.Zero(t, l.ChatCut)
	}
	require.Len(t, rep.Baseline, 1)
	b := rep.Baseline[0]
	require.Equal(t, "stock", b.Server)
	require.Equal(t, 12, b.Online)

	var out bytes.Buffer
	rep.WriteTable(&out)
	require.Contains(t, out.String(), "| natter | 12 | 12 | 12 | 12 | 24 |")
	require.Contains(t, out.String(), "ratios natter / stock")
}
