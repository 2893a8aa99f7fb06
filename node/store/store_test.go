package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/store"
)

func open(t *testing.T) (*store.Store, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), store.FileName)
	s, err := store.Open(context.Background(), p)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, p
}

func randPeer(t *testing.T) peer.ID {
	id, err := test.RandPeerID()
	require.NoError(t, err)
	return id
}

func TestContacts(t *testing.T) {
	ctx := context.Background()
	s, path := open(t)
	alice, bob := randPeer(t), randPeer(t)
	rdv := ma.StringCast("/ip4/11.0.0.1/tcp/4001")

	require.NoError(t, s.AddContact(ctx, store.Contact{PeerID: alice, Name: "Alice", Rendezvous: []ma.Multiaddr{rdv}}))
	require.NoError(t, s.AddContact(ctx, store.Contact{PeerID: bob}))
	require.ErrorIs(t, s.AddContact(ctx, store.Contact{PeerID: alice}), store.ErrExists)
	require.ErrorIs(t, s.AddContact(ctx, store.Contact{PeerID: randPeer(t), Name: "alice"}), store.ErrExists, "names are unique regardless of case")

	c, err := s.FindContact(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, alice, c.PeerID)
	require.Equal(t, store.StateAccepted, c.State)
	require.Len(t, c.Rendezvous, 1)
	require.True(t, c.Rendezvous[0].Equal(rdv))

	c, err = s.FindContact(ctx, bob.String())
	require.NoError(t, err)
	require.Equal(t, bob.String(), c.Label())

	_, err = s.FindContact(ctx, "carol")
	require.ErrorIs(t, err, store.ErrNotFound)

	all, err := s.Contacts(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, "Alice", all[0].Name, "named contacts first")

	c.Name = "Bobby"
	require.NoError(t, s.UpdateContact(ctx, c))
	require.NoError(t, s.RemoveContact(ctx, alice))
	require.ErrorIs(t, s.RemoveContact(ctx, alice), store.ErrNotFound)

	// Reopening keeps everything and does not re-run migrations.
	require.NoError(t, s.Close())
	s2, err := store.Open(ctx, path)
	require.NoError(t, err)
	defer s2.Close()
	c, err = s2.FindContact(ctx, "bobby")
	require.NoError(t, err)
	require.Equal(t, bob, c.PeerID)
}

func TestSettings(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t)
	v, err := s.Setting(ctx, "k")
	require.NoError(t, err)
	require.Empty(t, v)
	require.NoError(t, s.SetSetting(ctx, "k", "1"))
	require.NoError(t, s.SetSetting(ctx, "k", "2"))
	v, err = s.Setting(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "2", v)
}

func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	s, path := open(t)
	_, err := s.DB().ExecContext(ctx, "PRAGMA user_version = 9999")
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = store.Open(ctx, path)
	require.ErrorIs(t, err, store.ErrTooNew)
}
