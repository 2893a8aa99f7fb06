package social_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/social"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/presence"
)

// hostEnv is a Service on a mocknet host, serving the protocols.
func hostEnv(t *testing.T, h host.Host) *env {
	t.Helper()
	e := &env{store: newFakeStore(), links: newFakeLinks(), ev: make(events, 1000), clock: &clock{now: time.Now()}}
	s, err := social.New(context.Background(), social.Config{RejectCooldown: time.Hour}, e.store,
		social.NewNetwork(h, h.Peerstore().PrivKey(h.ID())), e.links, e.links, e.links, e.ev)
	require.NoError(t, err)
	s.Serve(h)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	e.s = s
	return e
}

// TestFriendRequestOverTheWire: the request, the answer and the first
// presence push travel over the real protocols (contact, presence)
// between two services.
func TestFriendRequestOverTheWire(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	ha, err := mn.GenPeer()
	require.NoError(t, err)
	hb, err := mn.GenPeer()
	require.NoError(t, err)
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	alice, bob := hostEnv(t, ha), hostEnv(t, hb)
	alice.links.setPath(hb.ID(), core.PathDirect)
	bob.links.setPath(ha.ID(), core.PathDirect)
	require.NoError(t, alice.store.SetSetting(ctx, store.SettingName, "alice"))

	_, err = alice.s.AddContact(ctx, control.AddContactRequest{Target: hb.ID().String(), Name: "bob", Note: "hi bob"})
	require.NoError(t, err)
	alice.s.HandleLink(core.LinkEvent{Peer: hb.ID(), Change: core.LinkUp, Path: core.PathDirect})
	ev := bob.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventContact })
	require.Equal(t, ha.ID().String(), ev.PeerID)
	require.Equal(t, "alice", ev.Name)
	require.Equal(t, "hi bob", ev.Note)

	_, err = bob.s.AcceptContact(ctx, "alice", "")
	require.NoError(t, err)
	alice.ev.next(t, func(ev control.Event) bool {
		return ev.Type == control.EventContact && ev.State == string(store.StateAccepted)
	})
	require.True(t, alice.s.IsAccepted(ctx, hb.ID()))
	// Each pushes its presence once the other accepted it.
	ev = bob.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventPresence })
	require.Equal(t, ha.ID().String(), ev.PeerID)
	require.Equal(t, presence.Online, ev.Presence)
	ev = alice.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventPresence })
	require.Equal(t, hb.ID().String(), ev.PeerID)
	require.Equal(t, presence.Online, ev.Presence)
}
