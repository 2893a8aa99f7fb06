package social_test

import (
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/social"
	"github.com/natterim/natter/protocols/presence"
	"github.com/natterim/natter/protocols/profile"
)

// TestProfileFetchedWhenNewer: a presence push announcing a newer profile
// version fetches it; the cache only moves forward and an announced
// version no newer than ours fetches nothing.
func TestProfileFetchedWhenNewer(t *testing.T) {
	e := newEnv(t, social.Config{})
	bob := test.RandPeerIDFatal(t)
	e.accepted(t, bob, "bob")
	version := uint64(3)
	e.net.mu.Lock()
	e.net.profile = func(peer.ID) (profile.Profile, error) {
		e.net.mu.Lock()
		defer e.net.mu.Unlock()
		return profile.Profile{Version: version, Name: "Bob", Status: "hi"}, nil
	}
	e.net.mu.Unlock()
	fetches := func() int { e.net.mu.Lock(); defer e.net.mu.Unlock(); return e.net.fetches }

	at := e.clock.Now()
	e.s.ReceivePresence(bob, presence.Presence{State: presence.Online, Set: at, ProfileVersion: 3})
	ev := e.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventProfile })
	require.Equal(t, uint64(3), ev.Version)
	require.Equal(t, "bob", ev.Name)
	p, err := e.s.ContactProfile(ctx, "bob")
	require.NoError(t, err)
	require.Equal(t, "Bob", p.Name)
	require.Equal(t, uint64(3), p.Version)

	e.s.ReceivePresence(bob, presence.Presence{State: presence.Online, Set: at.Add(time.Second), ProfileVersion: 2})
	e.s.ReceivePresence(bob, presence.Presence{State: presence.Online, Set: at.Add(2 * time.Second), ProfileVersion: 3})
	require.Equal(t, 1, fetches(), "not newer than ours: not fetched")

	e.net.mu.Lock()
	version = 5
	e.net.mu.Unlock()
	e.s.ReceivePresence(bob, presence.Presence{State: presence.Online, Set: at.Add(3 * time.Second), ProfileVersion: 5})
	ev = e.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventProfile })
	require.Equal(t, uint64(5), ev.Version)

	// A failed fetch is not retried until the next push.
	e.net.mu.Lock()
	e.net.profile = func(peer.ID) (profile.Profile, error) { return profile.Profile{}, errors.New("reset") }
	e.net.mu.Unlock()
	e.s.ReceivePresence(bob, presence.Presence{State: presence.Online, Set: at.Add(4 * time.Second), ProfileVersion: 6})
	require.Eventually(t, func() bool { return fetches() == 3 }, 5*time.Second, 5*time.Millisecond)
	p, err = e.s.ContactProfile(ctx, "bob")
	require.NoError(t, err)
	require.Equal(t, uint64(5), p.Version)
}

// TestSetProfile: changes bump the version and push presence carrying
// it; bad input is refused.
func TestSetProfile(t *testing.T) {
	e := newEnv(t, social.Config{})
	bob := test.RandPeerIDFatal(t)
	e.accepted(t, bob, "bob")
	e.net.nextPush(t)
	p, err := e.s.SetProfile(ctx, control.ProfileRequest{Name: strp("  Alice  "), Status: strp("around")})
	require.NoError(t, err)
	require.Equal(t, "Alice", p.Name)
	require.Equal(t, e.net.ID().String(), p.PeerID)
	push := e.net.nextPush(t)
	require.Equal(t, p.Version, push.pr.ProfileVersion)
	require.Equal(t, "around", push.pr.Message)
	ev := e.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventProfile })
	require.Equal(t, p.Version, ev.Version)

	for _, req := range []control.ProfileRequest{{}, {Name: strp(" ")}, {Avatar: []byte{1}, ClearAvatar: true}, {Status: strp("bell\a")}} {
		_, err := e.s.SetProfile(ctx, req)
		require.ErrorIs(t, err, core.ErrInvalid, "%+v", req)
	}
	_, err = e.s.ContactProfile(ctx, "bob")
	require.ErrorIs(t, err, core.ErrNotFound)
}
