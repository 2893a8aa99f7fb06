package social_test

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/social"
	"github.com/natterim/natter/protocols/names"
)

// TestNamesRenewOnNewConnection: a name registered on a server is not
// registered again on the same connection, but at once on a new one.
func TestNamesRenewOnNewConnection(t *testing.T) {
	e := newEnv(t, social.Config{})
	server := test.RandPeerIDFatal(t)
	e.links.mu.Lock()
	e.links.servers = []peer.ID{server}
	e.links.connected[server] = e.clock.Now()
	e.links.mu.Unlock()

	own, err := e.s.RegisterName(ctx, "Bob")
	require.NoError(t, err)
	require.Equal(t, "bob", own.Name)
	require.Equal(t, control.NameRegistered, own.Servers[0].State)
	require.Equal(t, 1, e.net.registerCount())

	e.s.KickNames()
	e.clock.Add(time.Hour)
	e.s.KickNames() // the loop runs at least once more after the first kick is taken
	own, err = e.s.RegisterName(ctx, "bob")
	require.NoError(t, err)
	require.Equal(t, 2, e.net.registerCount(), "only the explicit register: not due yet")

	e.links.mu.Lock()
	e.links.connected[server] = e.clock.Now()
	e.links.mu.Unlock()
	e.s.KickNames()
	require.Eventually(t, func() bool { return e.net.registerCount() == 3 }, 5*time.Second, 5*time.Millisecond)

	_, err = e.s.ReleaseName(ctx, "bob")
	require.NoError(t, err)
	list, err := e.s.OwnNames(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
	_, err = e.s.ReleaseName(ctx, "bob")
	require.ErrorIs(t, err, core.ErrNotFound)

	e.links.mu.Lock()
	delete(e.links.connected, server)
	e.links.mu.Unlock()
	_, err = e.s.RegisterName(ctx, "bob")
	require.ErrorIs(t, err, core.ErrUnavailable)
}

// TestKeyChangeWarning: a contact added by name whose name now points to
// another key gets one warning (and keeps its key); it goes when the name
// points back.
func TestKeyChangeWarning(t *testing.T) {
	e := newEnv(t, social.Config{})
	server := test.RandPeerIDFatal(t)
	e.links.mu.Lock()
	e.links.servers = []peer.ID{server}
	e.links.connected[server] = e.clock.Now()
	e.links.mu.Unlock()
	bob, carol := test.RandPeerIDFatal(t), test.RandPeerIDFatal(t)
	holder := bob
	e.net.mu.Lock()
	e.net.lookup = func(_ peer.ID, name string) (names.Record, error) {
		e.net.mu.Lock()
		defer e.net.mu.Unlock()
		return names.Record{Name: name, Peer: holder, Seq: uint64(e.clock.Now().UnixMilli())}, nil
	}
	e.net.mu.Unlock()

	c, err := e.s.AddContact(ctx, control.AddContactRequest{Target: "bob-smith"})
	require.NoError(t, err)
	require.Equal(t, bob, c.PeerID)
	require.Equal(t, "bob-smith", c.DirName)
	require.Equal(t, "bob-smith", c.Name)

	e.net.mu.Lock()
	holder = carol
	e.net.mu.Unlock()
	e.s.RecheckNames(ctx)
	ev := e.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventKeyChange })
	require.Equal(t, bob.String(), ev.PeerID)
	require.Contains(t, ev.Warning, carol.String())
	require.Contains(t, e.s.NameWarnings(ctx)[bob], "now points to another key")
	list, err := e.s.Contacts(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "bob-smith", list[0].DirName)
	require.Contains(t, list[0].Warning, "now points to another key", "the contacts list shows it")
	got, _ := e.store.contact(t, bob)
	require.Equal(t, bob, got.PeerID, "never switched to the new key")
	_, err = e.s.AddContact(ctx, control.AddContactRequest{Target: "bob-smith", Name: "other-bob"})
	require.ErrorIs(t, err, core.ErrConflict)

	e.s.RecheckNames(ctx)
	e.net.mu.Lock()
	holder = bob
	e.net.mu.Unlock()
	e.s.RecheckNames(ctx)
	ev = e.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventKeyChange })
	require.Empty(t, ev.Warning, "cleared, and the same warning was not raised twice")
	require.Empty(t, e.s.NameWarnings(ctx))

	// A record older than MaxRecordAge is not trusted.
	e.clock.Add(50 * 24 * time.Hour)
	e.net.mu.Lock()
	e.net.lookup = func(_ peer.ID, name string) (names.Record, error) {
		return names.Record{Name: name, Peer: bob, Seq: uint64(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).UnixMilli())}, nil
	}
	e.net.mu.Unlock()
	_, err = e.s.LookupName(ctx, "bob-smith")
	require.ErrorIs(t, err, core.ErrUpstream)
	require.ErrorContains(t, err, "max_record_age")
	require.NoError(t, e.store.RemoveContact(ctx, bob))
	_, err = e.s.AddContact(ctx, control.AddContactRequest{Target: "bob-smith"})
	require.ErrorIs(t, err, core.ErrUpstream)
	_, ok := e.store.contact(t, bob)
	require.False(t, ok)
}
