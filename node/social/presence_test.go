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
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/presence"
)

// accepted adds p as an accepted, connected contact.
func (e *env) accepted(t *testing.T, p peer.ID, name string) {
	t.Helper()
	require.NoError(t, e.store.AddContact(ctx, store.Contact{PeerID: p, Name: name, State: store.StateAccepted}))
	e.links.setPath(p, core.PathDirect)
	e.s.HandleLink(core.LinkEvent{Peer: p, Change: core.LinkUp, Path: core.PathDirect})
}

func strp(s string) *string { return &s }

// TestOwnPresence: what the user sets is pushed to connected accepted
// contacts and published; bad input changes nothing.
func TestOwnPresence(t *testing.T) {
	e := newEnv(t, social.Config{})
	bob := test.RandPeerIDFatal(t)
	e.accepted(t, bob, "bob")
	require.Equal(t, presence.Online, e.net.nextPush(t).pr.State, "pushed when the link came up")

	st, err := e.s.SetPresence(ctx, control.PresenceRequest{State: "busy", Message: strp("in a meeting")})
	require.NoError(t, err)
	require.Equal(t, "status", st.PeerID, "answers with the node's status")
	p := e.net.nextPush(t)
	require.Equal(t, bob, p.to)
	require.Equal(t, presence.Busy, p.pr.State)
	require.Equal(t, "in a meeting", p.pr.Message)
	require.Equal(t, uint64(1), p.pr.ProfileVersion)
	ev := e.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventSelf })
	require.Equal(t, control.PresenceBusy, ev.Presence)
	require.Equal(t, "in a meeting", ev.StatusMessage)
	state, away := e.s.Self()
	require.Equal(t, control.PresenceBusy, state)
	require.False(t, away)
	v, _ := e.store.Setting(ctx, "presence")
	require.Equal(t, "busy", v, "survives a restart")

	for _, req := range []control.PresenceRequest{{State: "offline"}, {State: "gone"}, {Message: strp("bell\a")}} {
		_, err := e.s.SetPresence(ctx, req)
		require.ErrorIs(t, err, core.ErrInvalid, "%+v", req)
	}

	// Not connected: not pushed to.
	e.links.setPath(bob, core.PathNone)
	_, err = e.s.SetPresence(ctx, control.PresenceRequest{State: "online"})
	require.NoError(t, err)
	e.ev.next(t, func(ev control.Event) bool {
		return ev.Type == control.EventSelf && ev.Presence == control.PresenceOnline
	})
	require.Len(t, e.net.pushes, 0)
}

// TestIdleAway: after IdleAway without activity contacts see away; the
// next activity brings them back online.
func TestIdleAway(t *testing.T) {
	e := newEnv(t, social.Config{IdleAway: 10 * time.Minute})
	bob := test.RandPeerIDFatal(t)
	e.accepted(t, bob, "bob")
	e.net.nextPush(t)

	e.s.CheckIdle(e.clock.Now().Add(9 * time.Minute))
	_, away := e.s.Self()
	require.False(t, away, "not idle yet")
	e.clock.Add(5 * time.Minute)
	e.s.Touch()
	e.s.CheckIdle(e.clock.Now().Add(9 * time.Minute))
	_, away = e.s.Self()
	require.False(t, away, "activity restarted the idle time")
	e.s.CheckIdle(e.clock.Now().Add(10 * time.Minute))
	require.Equal(t, presence.Away, e.net.nextPush(t).pr.State)
	state, away := e.s.Self()
	require.Equal(t, control.PresenceOnline, state, "what the user set")
	require.True(t, away)
	ev := e.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventSelf && ev.AutoAway })
	require.Equal(t, control.PresenceOnline, ev.Presence)

	e.s.Touch()
	require.Equal(t, presence.Online, e.net.nextPush(t).pr.State)
	_, away = e.s.Self()
	require.False(t, away)

	// Busy is never turned into away.
	_, err := e.s.SetPresence(ctx, control.PresenceRequest{State: "busy"})
	require.NoError(t, err)
	e.net.nextPush(t)
	e.s.CheckIdle(e.clock.Now().Add(time.Hour))
	_, away = e.s.Self()
	require.False(t, away)
}

// TestContactPresence: a contact is offline without a connection, online
// until it pushes, then what it pushed; an older push never overrides a
// newer one, and the link going down forgets it.
func TestContactPresence(t *testing.T) {
	e := newEnv(t, social.Config{})
	bob := test.RandPeerIDFatal(t)
	st, msg := e.s.ContactPresence(bob, false)
	require.Equal(t, presence.Offline, st)
	require.Empty(t, msg)
	e.accepted(t, bob, "bob")
	e.net.nextPush(t)
	st, _ = e.s.ContactPresence(bob, true)
	require.Equal(t, presence.Online, st)

	at := e.clock.Now()
	e.s.ReceivePresence(bob, presence.Presence{State: presence.Busy, Message: "meeting", Set: at})
	st, msg = e.s.ContactPresence(bob, true)
	require.Equal(t, presence.Busy, st)
	require.Equal(t, "meeting", msg)
	ev := e.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventPresence })
	require.Equal(t, presence.Busy, ev.Presence)

	e.s.ReceivePresence(bob, presence.Presence{State: presence.Away, Set: at.Add(-time.Second)})
	st, _ = e.s.ContactPresence(bob, true)
	require.Equal(t, presence.Busy, st, "an older push is ignored")

	e.links.setPath(bob, core.PathNone)
	e.s.HandleLink(core.LinkEvent{Peer: bob, Change: core.LinkDown})
	ev = e.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventPresence })
	require.Equal(t, control.PresenceOffline, ev.Presence)
	require.Equal(t, "bob", ev.Name)
	st, _ = e.s.ContactPresence(bob, true)
	require.Equal(t, presence.Online, st, "reconnected: online until it pushes again")

	// A push from a contact that has not had ours yet gets ours back.
	e.links.setPath(bob, core.PathDirect)
	e.s.ReceivePresence(bob, presence.Presence{State: presence.Online, Set: at.Add(time.Second)})
	require.Equal(t, bob, e.net.nextPush(t).to)
}

// TestRenewalIsDue: when the names loop asks a server again.
func TestRenewalIsDue(t *testing.T) {
	e := newEnv(t, social.Config{RenewInterval: 24 * time.Hour})
	session := time.Now().Add(-time.Hour)
	now := time.Now()
	for _, tc := range []struct {
		name      string
		state     string
		tried     time.Time
		stSession time.Time
		want      bool
	}{
		{"never tried", "", time.Time{}, time.Time{}, true},
		{"registered in this session, an hour ago", control.NameRegistered, now.Add(-time.Hour), session, false},
		{"registered a day ago", control.NameRegistered, now.Add(-25 * time.Hour), session, true},
		{"registered in an earlier connection", control.NameRegistered, now.Add(-time.Minute), session.Add(-time.Hour), true},
		{"taken an hour ago", control.NameTaken, now.Add(-time.Hour), session, false},
		{"refused a minute ago", control.NameRefused, now.Add(-2 * time.Minute), session, false},
		{"network error two minutes ago", control.NameError, now.Add(-2 * time.Minute), session, true},
		{"network error just now", control.NameError, now.Add(-time.Second), session, false},
	} {
		require.Equal(t, tc.want, e.s.Due(tc.state, tc.tried, tc.stSession, session, now), tc.name)
	}
}
