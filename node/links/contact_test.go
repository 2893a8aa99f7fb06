package links_test

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/links"
	"github.com/natterim/natter/node/store"
)

// TestLinkChange: a path change is up from none, down to none, else a
// path change.
func TestLinkChange(t *testing.T) {
	for _, tc := range []struct {
		old, path core.Path
		want      core.LinkChange
	}{
		{core.PathNone, core.PathRelayed, core.LinkUp},
		{core.PathNone, core.PathDirect, core.LinkUp},
		{core.PathRelayed, core.PathNone, core.LinkDown},
		{core.PathDirect, core.PathNone, core.LinkDown},
		{core.PathRelayed, core.PathDirect, core.LinkPathChanged},
		{core.PathDirect, core.PathRelayed, core.LinkPathChanged},
	} {
		require.Equal(t, tc.want, links.LinkChangeOf(tc.old, tc.path), "%s -> %s", tc.old, tc.path)
	}
}

// TestContactLink: a contact link comes up (one LinkUp, then a LinkPinged
// per heartbeat), shows its state, publishes link events named after the
// contact, and goes down (LinkDown) when the contact goes away; stopping
// it forgets it.
func TestContactLink(t *testing.T) {
	b, _ := startService(t, testConfig(), &fakeContacts{}, nil)
	contacts := &fakeContacts{}
	contacts.add(store.Contact{PeerID: b.Host().ID(), Name: "bob", State: store.StateAccepted})
	a, rec := startService(t, testConfig(), contacts, nil)
	<-a.Ready() // no rendezvous: ready at once

	a.Host().Peerstore().AddAddrs(b.Host().ID(), b.Host().Addrs(), peerstore.PermanentAddrTTL)
	a.StartContact(b.Host().ID())
	a.StartContact(b.Host().ID()) // a no-op
	require.Equal(t, []peer.ID{b.Host().ID()}, a.Contacts())

	up := nextLink(t, rec)
	require.Equal(t, core.LinkEvent{Peer: b.Host().ID(), Change: core.LinkUp, Path: core.PathDirect}, up)
	e := nextEvent(t, rec, control.EventLink)
	require.Equal(t, b.Host().ID().String(), e.PeerID)
	require.Equal(t, "bob", e.Name)
	require.True(t, e.Connected)
	require.Equal(t, "direct", e.Path)

	ping := nextLink(t, rec)
	require.Equal(t, core.LinkEvent{Peer: b.Host().ID(), Change: core.LinkPinged, Path: core.PathDirect}, ping)
	path, conn := a.Path(b.Host().ID())
	require.Equal(t, core.PathDirect, path)
	require.NotNil(t, conn)
	st, ok := a.LinkState(b.Host().ID())
	require.True(t, ok)
	require.Equal(t, core.PathDirect, st.Path)
	require.Empty(t, st.LastError)

	// The contact goes away: down, and the link keeps trying.
	require.NoError(t, b.Close())
	for {
		e := nextLink(t, rec)
		if e.Change == core.LinkPinged {
			continue
		}
		require.Equal(t, core.LinkEvent{Peer: b.Host().ID(), Change: core.LinkDown, Path: core.PathNone}, e)
		break
	}
	e = nextEvent(t, rec, control.EventLink)
	require.False(t, e.Connected)
	require.Equal(t, "none", e.Path)

	a.StopContact(b.Host().ID())
	_, ok = a.LinkState(b.Host().ID())
	require.False(t, ok)
	require.Empty(t, a.Contacts())
}
