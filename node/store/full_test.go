package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/test"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/chat"
)

// A full disk (here: SQLite's page limit, which fails writes exactly as a
// full file system does) makes Enqueue fail with ErrDiskFull, keeps every
// message that was accepted before, and leaves a database that works
// again once there is room.
func TestDiskFullCorruptsNothing(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), FileName))
	require.NoError(t, err)
	defer s.Close()
	s.db.SetMaxOpenConns(2) // the page limit is per connection; one is the lazy one
	bob, err := test.RandPeerID()
	require.NoError(t, err)

	var pages int
	require.NoError(t, s.db.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages))
	_, err = s.db.ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages+8))
	require.NoError(t, err)

	var accepted []chat.MsgID
	big := strings.Repeat("x", 3000)
	for i := 0; ; i++ {
		require.Less(t, i, 1000, "the page limit never hit")
		m := NewOutgoing{ID: chat.NewID(), Peer: bob, Kind: KindText, Text: big, SentAt: time.Now()}
		_, err := s.Enqueue(ctx, []NewOutgoing{m})
		if err != nil {
			require.ErrorIs(t, err, ErrDiskFull)
			require.Contains(t, err.Error(), "disk full")
			_, err := s.MessageByID(ctx, m.ID)
			require.ErrorIs(t, err, ErrNotFound, "a failed send leaves no trace")
			break
		}
		accepted = append(accepted, m.ID)
	}
	require.NotEmpty(t, accepted)

	_, err = s.db.ExecContext(ctx, `PRAGMA max_page_count = 1073741823`)
	require.NoError(t, err)
	var ok string
	require.NoError(t, s.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok))
	require.Equal(t, "ok", ok)
	for _, id := range accepted {
		m, err := s.MessageByID(ctx, id)
		require.NoError(t, err)
		require.Equal(t, big, m.Text)
	}
	n, err := s.OutboxLen(ctx, bob)
	require.NoError(t, err)
	require.Equal(t, len(accepted), n)
	_, err = s.Enqueue(ctx, []NewOutgoing{{ID: chat.NewID(), Peer: bob, Kind: KindText, Text: "room again", SentAt: time.Now()}})
	require.NoError(t, err)
}
