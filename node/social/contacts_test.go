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
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/contact"
)

var ctx = context.Background()

func request(note, name string) contact.Request {
	return contact.Request{Kind: contact.KindRequest, Note: note, Name: name}
}

// TestIncomingRequestAccepted: a request from a stranger waits as
// pending_in; accepting it starts the link, answers ACCEPT, pushes our
// presence and a deposit token.
func TestIncomingRequestAccepted(t *testing.T) {
	e := newEnv(t, social.Config{})
	bob := test.RandPeerIDFatal(t)

	resp := e.s.HandleContact(ctx, bob, request("hi, it's bob", "bob"))
	require.Equal(t, contact.StatusPending, resp.Status)
	c, ok := e.store.contact(t, bob)
	require.True(t, ok)
	require.Equal(t, store.StatePendingIn, c.State)
	require.Equal(t, "bob", c.Name, "the claimed name is free")
	ev := e.ev.next(t, func(ev control.Event) bool { return ev.Type == control.EventContact })
	require.Equal(t, string(store.StatePendingIn), ev.State)
	require.Equal(t, "hi, it's bob", ev.Note)
	require.Zero(t, e.links.count(e.links.started, bob), "no link for a requester")

	// Asking again only updates the note.
	resp = e.s.HandleContact(ctx, bob, request("hello?", "bob"))
	require.Equal(t, contact.StatusPending, resp.Status)
	c, _ = e.store.contact(t, bob)
	require.Equal(t, "hello?", c.Note)

	e.links.setPath(bob, core.PathDirect)
	got, err := e.s.AcceptContact(ctx, "bob", "bobby")
	require.NoError(t, err)
	require.Equal(t, store.StateAccepted, got.State)
	require.Equal(t, "bobby", got.Name)
	require.Equal(t, 1, e.links.count(e.links.started, bob))
	require.Equal(t, contact.KindAccept, e.net.nextContact(t).req.Kind)
	require.Equal(t, bob, e.net.nextPush(t).to)
	select {
	case p := <-e.links.tokens:
		require.Equal(t, bob, p)
	case <-time.After(5 * time.Second):
		t.Fatal("no token pushed")
	}
	require.True(t, e.s.IsAccepted(ctx, bob))
	resp = e.s.HandleContact(ctx, bob, request("", ""))
	require.Equal(t, contact.StatusAccepted, resp.Status, "a repeated request learns the answer")

	_, err = e.s.AcceptContact(ctx, "bobby", "")
	require.ErrorIs(t, err, core.ErrConflict)
	_, err = e.s.AcceptContact(ctx, "nobody", "")
	require.ErrorIs(t, err, core.ErrNotFound)
}

// TestRejectCooldown: a rejected requester is rejected again at once
// during the cooldown, and may ask again after it.
func TestRejectCooldown(t *testing.T) {
	e := newEnv(t, social.Config{RejectCooldown: time.Hour})
	bob := test.RandPeerIDFatal(t)
	require.Equal(t, contact.StatusPending, e.s.HandleContact(ctx, bob, request("", "")).Status)
	_, err := e.s.RejectContact(ctx, bob.String())
	require.NoError(t, err)
	require.Equal(t, contact.KindReject, e.net.nextContact(t).req.Kind)
	_, ok := e.store.contact(t, bob)
	require.False(t, ok, "forgotten")
	_, err = e.s.RejectContact(ctx, bob.String())
	require.ErrorIs(t, err, core.ErrNotFound)

	e.clock.Add(59 * time.Minute)
	require.Equal(t, contact.StatusRejected, e.s.HandleContact(ctx, bob, request("", "")).Status)
	_, ok = e.store.contact(t, bob)
	require.False(t, ok)
	e.clock.Add(2 * time.Minute)
	require.Equal(t, contact.StatusPending, e.s.HandleContact(ctx, bob, request("", "")).Status)
}

// TestMaxPending: requests beyond max_pending are refused, not stored.
func TestMaxPending(t *testing.T) {
	e := newEnv(t, social.Config{MaxPending: 2})
	for range 2 {
		require.Equal(t, contact.StatusPending, e.s.HandleContact(ctx, test.RandPeerIDFatal(t), request("", "")).Status)
	}
	late := test.RandPeerIDFatal(t)
	resp := e.s.HandleContact(ctx, late, request("", ""))
	require.Equal(t, contact.StatusRefused, resp.Status)
	require.Contains(t, resp.Reason, "too many requests")
	_, ok := e.store.contact(t, late)
	require.False(t, ok)
}

// TestMutualAdd: a request that finds our own pending_out request for
// its sender is accepted at once; adding a peer whose request waits
// accepts it.
func TestMutualAdd(t *testing.T) {
	e := newEnv(t, social.Config{})
	bob, carol := test.RandPeerIDFatal(t), test.RandPeerIDFatal(t)
	c, err := e.s.AddContact(ctx, control.AddContactRequest{Target: bob.String(), Name: "bob", Note: "me"})
	require.NoError(t, err)
	require.Equal(t, store.StatePendingOut, c.State)
	require.Equal(t, 1, e.links.count(e.links.started, bob), "a link to deliver the request")
	require.Equal(t, contact.StatusAccepted, e.s.HandleContact(ctx, bob, request("", "")).Status)
	c, _ = e.store.contact(t, bob)
	require.Equal(t, store.StateAccepted, c.State)

	require.Equal(t, contact.StatusPending, e.s.HandleContact(ctx, carol, request("", "carol")).Status)
	c, err = e.s.AddContact(ctx, control.AddContactRequest{Target: carol.String()})
	require.NoError(t, err)
	require.Equal(t, store.StateAccepted, c.State)
	require.Equal(t, contact.KindAccept, e.net.nextContact(t).req.Kind)

	_, err = e.s.AddContact(ctx, control.AddContactRequest{Target: carol.String()})
	require.ErrorIs(t, err, core.ErrConflict)
	_, err = e.s.AddContact(ctx, control.AddContactRequest{Target: e.net.ID().String()})
	require.ErrorIs(t, err, core.ErrInvalid)
	_, err = e.s.AddContact(ctx, control.AddContactRequest{Target: "12D3KooWtruncated"})
	require.ErrorIs(t, err, core.ErrInvalid)
}

// TestRequestOverTheLink: our request goes out when the link comes up,
// again only when RequestRetry passed on a heartbeat, and the answer is
// applied.
func TestRequestOverTheLink(t *testing.T) {
	e := newEnv(t, social.Config{RequestRetry: 2 * time.Minute})
	require.NoError(t, e.store.SetSetting(ctx, store.SettingName, "alice"))
	bob := test.RandPeerIDFatal(t)
	_, err := e.s.AddContact(ctx, control.AddContactRequest{Target: bob.String(), Note: "it's alice"})
	require.NoError(t, err)
	e.net.setAnswer(func(sent) (contact.Response, error) { return contact.Response{Status: contact.StatusPending}, nil })

	e.links.setPath(bob, core.PathRelayed)
	e.s.HandleLink(core.LinkEvent{Peer: bob, Change: core.LinkUp, Path: core.PathRelayed})
	s := e.net.nextContact(t)
	require.Equal(t, bob, s.to)
	require.Equal(t, request("it's alice", "alice"), s.req)
	require.Eventually(t, func() bool { return e.links.errCalls() == 1 }, 5*time.Second, 5*time.Millisecond, "the pending answer clears the link's error")
	require.NoError(t, e.links.err(bob))

	e.s.HandleLink(core.LinkEvent{Peer: bob, Change: core.LinkPinged, Path: core.PathRelayed})
	e.clock.Add(time.Minute)
	e.s.HandleLink(core.LinkEvent{Peer: bob, Change: core.LinkPinged, Path: core.PathRelayed})
	e.net.setAnswer(func(sent) (contact.Response, error) { return contact.Response{}, errors.New("stream reset") })
	e.clock.Add(time.Minute)
	e.s.HandleLink(core.LinkEvent{Peer: bob, Change: core.LinkPinged, Path: core.PathRelayed})
	require.Equal(t, contact.KindRequest, e.net.nextContact(t).req.Kind)
	require.Len(t, e.net.contacts, 0, "one retry after RequestRetry, none before")
	require.Eventually(t, func() bool { return e.links.errCalls() == 2 }, 5*time.Second, 5*time.Millisecond)
	require.ErrorContains(t, e.links.err(bob), "friend request: stream reset")

	e.net.setAnswer(func(sent) (contact.Response, error) { return contact.Response{Status: contact.StatusAccepted}, nil })
	e.s.HandleLink(core.LinkEvent{Peer: bob, Change: core.LinkDown})
	e.s.HandleLink(core.LinkEvent{Peer: bob, Change: core.LinkUp, Path: core.PathDirect})
	e.net.nextContact(t)
	require.Eventually(t, func() bool { return e.s.IsAccepted(ctx, bob) }, 5*time.Second, 5*time.Millisecond)
}

// TestRequestRejectedByThem: a REJECT removes our pending_out contact
// and stops its link, whether it comes as an answer or pushed.
func TestRequestRejectedByThem(t *testing.T) {
	e := newEnv(t, social.Config{})
	bob, carol := test.RandPeerIDFatal(t), test.RandPeerIDFatal(t)
	for _, p := range []peer.ID{bob, carol} {
		_, err := e.s.AddContact(ctx, control.AddContactRequest{Target: p.String()})
		require.NoError(t, err)
	}
	e.net.setAnswer(func(sent) (contact.Response, error) { return contact.Response{Status: contact.StatusRejected}, nil })
	e.s.HandleLink(core.LinkEvent{Peer: bob, Change: core.LinkUp, Path: core.PathDirect})
	e.net.nextContact(t)
	require.Eventually(t, func() bool { return e.links.count(e.links.stopped, bob) == 1 }, 5*time.Second, 5*time.Millisecond)
	_, ok := e.store.contact(t, bob)
	require.False(t, ok)

	require.Equal(t, contact.StatusOK, e.s.HandleContact(ctx, carol, contact.Request{Kind: contact.KindReject}).Status)
	require.Eventually(t, func() bool { return e.links.count(e.links.stopped, carol) == 1 }, 5*time.Second, 5*time.Millisecond)
	ev := e.ev.next(t, func(ev control.Event) bool { return ev.PeerID == carol.String() && ev.State == control.StateRejected })
	require.Equal(t, control.EventContact, ev.Type)
	require.Equal(t, contact.StatusRefused, e.s.HandleContact(ctx, carol, contact.Request{Kind: contact.KindAccept}).Status)
}

// TestWithdraw: removing a pending_out contact tells it over a live
// connection only; a withdrawn pending_in request disappears.
func TestWithdraw(t *testing.T) {
	e := newEnv(t, social.Config{})
	bob, carol, dave := test.RandPeerIDFatal(t), test.RandPeerIDFatal(t), test.RandPeerIDFatal(t)
	for _, p := range []peer.ID{bob, carol} {
		_, err := e.s.AddContact(ctx, control.AddContactRequest{Target: p.String()})
		require.NoError(t, err)
	}
	e.links.setPath(bob, core.PathDirect)
	c, err := e.s.RemoveContact(ctx, bob.String())
	require.NoError(t, err)
	require.Equal(t, bob, c.PeerID)
	s := e.net.nextContact(t)
	require.Equal(t, sent{bob, contact.Request{Kind: contact.KindWithdraw}}, s)
	require.Equal(t, 1, e.links.count(e.links.stopped, bob))

	_, err = e.s.RemoveContact(ctx, carol.String())
	require.NoError(t, err)
	require.Len(t, e.net.contacts, 0, "not connected: not told")
	_, err = e.s.RemoveContact(ctx, carol.String())
	require.ErrorIs(t, err, core.ErrNotFound)

	require.Equal(t, contact.StatusPending, e.s.HandleContact(ctx, dave, request("", "")).Status)
	require.Equal(t, contact.StatusOK, e.s.HandleContact(ctx, dave, contact.Request{Kind: contact.KindWithdraw}).Status)
	_, ok := e.store.contact(t, dave)
	require.False(t, ok)
	e.ev.next(t, func(ev control.Event) bool { return ev.PeerID == dave.String() && ev.State == control.StateWithdrawn })
	require.Equal(t, contact.StatusOK, e.s.HandleContact(ctx, dave, contact.Request{Kind: contact.KindWithdraw}).Status, "already gone")
}

// TestBlock: a stranger can be blocked by peer ID; the gater refuses it
// until it is removed.
func TestBlock(t *testing.T) {
	e := newEnv(t, social.Config{})
	mallory := test.RandPeerIDFatal(t)
	c, err := e.s.BlockContact(ctx, mallory.String())
	require.NoError(t, err)
	require.Equal(t, store.StateBlocked, c.State)
	e.links.mu.Lock()
	require.True(t, e.links.blocked[mallory])
	e.links.mu.Unlock()
	require.Equal(t, 1, e.links.count(e.links.stopped, mallory))
	require.Equal(t, contact.StatusRefused, e.s.HandleContact(ctx, mallory, request("", "")).Status)
	_, err = e.s.BlockContact(ctx, "nobody")
	require.ErrorIs(t, err, core.ErrNotFound)

	_, err = e.s.AddContact(ctx, control.AddContactRequest{Target: mallory.String()})
	require.ErrorIs(t, err, core.ErrConflict)
	_, err = e.s.RemoveContact(ctx, mallory.String())
	require.NoError(t, err)
	e.links.mu.Lock()
	require.False(t, e.links.blocked[mallory])
	e.links.mu.Unlock()
}
