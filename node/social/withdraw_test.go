package social_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/test"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/social"
	"github.com/natterim/natter/protocols/contact"
)

// restart closes e's Service and makes a new one on the same store,
// network, links and clock: what survives is what the store kept.
func (e *env) restart(t *testing.T, cfg social.Config) {
	t.Helper()
	require.NoError(t, e.s.Close())
	if cfg.RejectCooldown == 0 {
		cfg.RejectCooldown = time.Hour
	}
	s, err := social.New(context.Background(), cfg, e.store, e.net, e.links, e.links, e.links, e.ev, social.WithClock(e.clock.Now))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	e.s = s
}

func (e *env) addPendingOut(t *testing.T, p peer.ID) {
	t.Helper()
	_, err := e.s.AddContact(ctx, control.AddContactRequest{Target: p.String()})
	require.NoError(t, err)
}

const waitFor = 5 * time.Second

func noContactSent(t *testing.T, n *fakeNet) {
	t.Helper()
	select {
	case s := <-n.contacts:
		t.Fatalf("unexpected %v to %s", s.req.Kind, s.to.ShortString())
	case <-time.After(50 * time.Millisecond):
	}
}

// TestWithdrawQueued: a request withdrawn while its receiver is out of
// reach is queued; a bare link is kept for it, and the withdrawal goes
// out when that link comes up, then the link stops.
func TestWithdrawQueued(t *testing.T) {
	e := newEnv(t, social.Config{})
	carol := test.RandPeerIDFatal(t)
	e.addPendingOut(t, carol)
	_, err := e.s.RemoveContact(ctx, carol.String())
	require.NoError(t, err)
	noContactSent(t, e.net)
	require.True(t, e.store.withdrawal(carol), "queued in the store")
	require.Equal(t, []peer.ID{carol}, e.s.PendingWithdrawals())
	require.Equal(t, 1, e.links.count(e.links.stopped, carol), "the contact link stops")
	require.Equal(t, 1, e.links.count(e.links.kept, carol), "a bare link is kept for the withdrawal")

	e.s.HandleLink(core.LinkEvent{Peer: carol, Change: core.LinkUp, Path: core.PathRelayed})
	require.Equal(t, sent{carol, contact.Request{Kind: contact.KindWithdraw}}, e.net.nextContact(t))
	require.Eventually(t, func() bool { return e.links.count(e.links.stopped, carol) == 2 }, waitFor, time.Millisecond, "the bare link stops once told")
	require.False(t, e.store.withdrawal(carol))
	require.Empty(t, e.s.PendingWithdrawals())
	noContactSent(t, e.net) // no presence, no request over the bare link
	require.Empty(t, e.net.pushes)
}

// TestWithdrawRetried: a withdrawal that got no answer is sent again on
// the next LinkUp, or on a heartbeat once RequestRetry passed; a
// temporary refusal is no answer, a refusal that says there is nothing
// to withdraw is.
func TestWithdrawRetried(t *testing.T) {
	e := newEnv(t, social.Config{RequestRetry: time.Minute})
	carol := test.RandPeerIDFatal(t)
	e.addPendingOut(t, carol)
	e.links.setPath(carol, core.PathDirect)
	answers := make(chan contact.Response, 4)
	e.net.setAnswer(func(s sent) (contact.Response, error) {
		select {
		case r := <-answers:
			return r, nil
		default:
			return contact.Response{}, errors.New("stream reset")
		}
	})
	_, err := e.s.RemoveContact(ctx, carol.String())
	require.NoError(t, err)
	require.Equal(t, contact.KindWithdraw, e.net.nextContact(t).req.Kind, "connected: sent at once")
	require.True(t, e.store.withdrawal(carol), "but not answered: queued")
	require.Equal(t, 1, e.links.count(e.links.kept, carol))

	e.s.HandleLink(core.LinkEvent{Peer: carol, Change: core.LinkPinged, Path: core.PathDirect})
	noContactSent(t, e.net) // too soon
	e.clock.Add(time.Minute)
	answers <- contact.Response{Status: contact.StatusRefused, Reason: "temporary failure; try again later"}
	e.s.HandleLink(core.LinkEvent{Peer: carol, Change: core.LinkPinged, Path: core.PathDirect})
	require.Equal(t, contact.KindWithdraw, e.net.nextContact(t).req.Kind)
	require.Eventually(t, func() bool { return len(answers) == 0 }, waitFor, time.Millisecond)
	require.Never(t, func() bool { return !e.store.withdrawal(carol) }, 50*time.Millisecond, time.Millisecond, "a temporary refusal is no answer")

	answers <- contact.Response{Status: contact.StatusRefused, Reason: "no request from you to withdraw"}
	e.s.HandleLink(core.LinkEvent{Peer: carol, Change: core.LinkUp, Path: core.PathDirect})
	require.Equal(t, contact.KindWithdraw, e.net.nextContact(t).req.Kind)
	require.Eventually(t, func() bool { return !e.store.withdrawal(carol) }, waitFor, time.Millisecond)
}

// TestWithdrawSurvivesRestart: a queued withdrawal is delivered after a
// restart; one nobody answered for WithdrawGiveUp is dropped.
func TestWithdrawSurvivesRestart(t *testing.T) {
	e := newEnv(t, social.Config{})
	carol, dave := test.RandPeerIDFatal(t), test.RandPeerIDFatal(t)
	e.addPendingOut(t, carol)
	e.addPendingOut(t, dave)
	_, err := e.s.RemoveContact(ctx, dave.String())
	require.NoError(t, err)
	e.clock.Add(20 * 24 * time.Hour)
	_, err = e.s.RemoveContact(ctx, carol.String())
	require.NoError(t, err)
	e.clock.Add(11 * 24 * time.Hour) // dave's is 31 days old, carol's 11

	e.restart(t, social.Config{WithdrawGiveUp: 30 * 24 * time.Hour})
	require.Eventually(t, func() bool { return e.links.count(e.links.kept, carol) == 2 }, waitFor, time.Millisecond, "the bare link is kept again")
	require.Eventually(t, func() bool { return !e.store.withdrawal(dave) }, waitFor, time.Millisecond, "dave's is given up")
	require.Equal(t, 1, e.links.count(e.links.kept, dave), "no link for a withdrawal given up")
	require.Equal(t, []peer.ID{carol}, e.s.PendingWithdrawals())

	e.s.HandleLink(core.LinkEvent{Peer: carol, Change: core.LinkUp, Path: core.PathRelayed})
	require.Equal(t, sent{carol, contact.Request{Kind: contact.KindWithdraw}}, e.net.nextContact(t))
	require.Eventually(t, func() bool { return !e.store.withdrawal(carol) }, waitFor, time.Millisecond)
}

// TestWithdrawSuperseded: asking again, or blocking the peer, drops a
// withdrawal not delivered yet; the link then carries the new request.
func TestWithdrawSuperseded(t *testing.T) {
	e := newEnv(t, social.Config{})
	carol, dave := test.RandPeerIDFatal(t), test.RandPeerIDFatal(t)
	for _, p := range []peer.ID{carol, dave} {
		e.addPendingOut(t, p)
		_, err := e.s.RemoveContact(ctx, p.String())
		require.NoError(t, err)
	}
	e.addPendingOut(t, carol)
	require.False(t, e.store.withdrawal(carol))
	_, err := e.s.BlockContact(ctx, dave.String())
	require.NoError(t, err)
	require.False(t, e.store.withdrawal(dave))
	require.Empty(t, e.s.PendingWithdrawals())

	e.s.HandleLink(core.LinkEvent{Peer: carol, Change: core.LinkUp, Path: core.PathRelayed})
	require.Equal(t, contact.KindRequest, e.net.nextContact(t).req.Kind, "the new request, not the withdrawal")
}

// TestRejectCooldownSurvivesRestart: the cool-down after a rejection is
// kept in the store: a restart does not let the requester ask again.
func TestRejectCooldownSurvivesRestart(t *testing.T) {
	e := newEnv(t, social.Config{RejectCooldown: time.Hour})
	bob := test.RandPeerIDFatal(t)
	require.Equal(t, contact.StatusPending, e.s.HandleContact(ctx, bob, request("", "")).Status)
	_, err := e.s.RejectContact(ctx, bob.String())
	require.NoError(t, err)

	e.restart(t, social.Config{RejectCooldown: time.Hour})
	e.clock.Add(30 * time.Minute)
	require.Equal(t, contact.StatusRejected, e.s.HandleContact(ctx, bob, request("", "")).Status)
	e.clock.Add(31 * time.Minute)
	require.Equal(t, contact.StatusPending, e.s.HandleContact(ctx, bob, request("", "")).Status)
}
