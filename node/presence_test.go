package node

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
)

func strp(s string) *string { return &s }

// contactPresence is what n's status shows for its only contact.
func contactPresence(t *testing.T, n *Node) (string, string) {
	t.Helper()
	st, err := apiClient(n).Status(context.Background())
	require.NoError(t, err)
	require.Len(t, st.Contacts, 1)
	return st.Contacts[0].Presence, st.Contacts[0].StatusMessage
}

func waitPresence(t *testing.T, n *Node, want, msg string) {
	t.Helper()
	require.Eventually(t, func() bool {
		p, m := contactPresence(t, n)
		return p == want && m == msg
	}, 15*time.Second, 20*time.Millisecond, "presence never became %q %q", want, msg)
}

// TestPresenceTransitions: what a user sets reaches the contact at once
// (with the status message), invisible looks offline, idleness shows away
// until the next activity, a clean stop shows offline, and the
// setting survives a restart.
func TestPresenceTransitions(t *testing.T) {
	acfg := testConfig(t)
	a := newTestNode(t, acfg, "alice")
	b := newTestNode(t, testConfig(t), "bob")
	befriend(t, a, "alice", b, "bob")
	ctx := context.Background()
	ca := apiClient(a)
	evB := subscribe(t, b)
	evA := subscribe(t, a)
	waitPresence(t, b, control.PresenceOnline, "")

	st, err := ca.SetPresence(ctx, control.PresenceRequest{State: "busy", Message: strp("in a meeting")})
	require.NoError(t, err)
	require.Equal(t, control.PresenceBusy, st.Presence)
	require.Equal(t, "in a meeting", st.StatusMessage)
	waitPresence(t, b, control.PresenceBusy, "in a meeting")
	e := waitEvent(t, evB, func(e control.Event) bool {
		return e.Type == control.EventPresence && e.Presence == control.PresenceBusy
	})
	require.Equal(t, "in a meeting", e.StatusMessage)
	require.Equal(t, a.ID().String(), e.PeerID)
	// Alice's own clients learn it too (another client may have set it).
	e = waitEvent(t, evA, func(e control.Event) bool { return e.Type == control.EventSelf })
	require.Equal(t, control.PresenceBusy, e.Presence)
	require.Equal(t, "in a meeting", e.StatusMessage)

	_, err = ca.SetPresence(ctx, control.PresenceRequest{State: "invisible"})
	require.NoError(t, err)
	waitPresence(t, b, control.PresenceOffline, "in a meeting")
	path, _ := b.pathTo(a.ID())
	require.NotEqual(t, control.PathNone, path, "invisible, yet still connected")
	m, err := apiClient(b).Send(ctx, "alice", control.SendRequest{Text: "are you there?", Wait: "10s"})
	require.NoError(t, err)
	require.Equal(t, control.StatusDelivered, m.Status, "an invisible user still gets messages")

	_, err = ca.SetPresence(ctx, control.PresenceRequest{State: "online", Message: strp("")})
	require.NoError(t, err)
	waitPresence(t, b, control.PresenceOnline, "")

	// Idle: away until the user does something.
	a.social.CheckIdle(time.Now().Add(time.Hour))
	waitPresence(t, b, control.PresenceAway, "")
	e = waitEvent(t, evA, func(e control.Event) bool { return e.Type == control.EventSelf && e.AutoAway })
	require.Equal(t, control.PresenceOnline, e.Presence, "what the user set; AutoAway says contacts see away")
	st, err = ca.Status(ctx)
	require.NoError(t, err)
	require.True(t, st.AutoAway)
	require.NoError(t, ca.Activity(ctx))
	waitPresence(t, b, control.PresenceOnline, "")

	// Bad input: one clear error each.
	for _, req := range []control.PresenceRequest{{State: "offline"}, {State: "gone"}, {Message: strp("bell\a")}} {
		_, err := ca.SetPresence(ctx, req)
		require.Equal(t, 400, apiCode(t, err), "%+v", req)
	}

	// Busy survives a restart; a clean stop is seen at once.
	_, err = ca.SetPresence(ctx, control.PresenceRequest{State: "busy"})
	require.NoError(t, err)
	waitPresence(t, b, control.PresenceBusy, "")
	key := a.key
	require.NoError(t, a.Close())
	waitPresence(t, b, control.PresenceOffline, "")
	a2 := startTestNode(t, acfg, key, "alice")
	st, err = apiClient(a2).Status(ctx)
	require.NoError(t, err)
	require.Equal(t, control.PresenceBusy, st.Presence)
	introduce(a2, b)
	waitPresence(t, b, control.PresenceBusy, "")
}
