package node

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/contact"
)

// introduce teaches a and b each other's loopback addresses (there is no
// rendezvous in these tests).
func introduce(a, b *Node) {
	a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), peerstore.PermanentAddrTTL)
	b.Host().Peerstore().AddAddrs(a.ID(), a.Host().Addrs(), peerstore.PermanentAddrTTL)
}

func contactState(t *testing.T, n, other *Node) string {
	t.Helper()
	c, err := n.store.ContactByPeer(context.Background(), other.ID())
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	require.NoError(t, err)
	return string(c.State)
}

func waitState(t *testing.T, n, other *Node, want string) {
	t.Helper()
	require.Eventually(t, func() bool { return contactState(t, n, other) == want }, 20*time.Second, 20*time.Millisecond,
		"%s: contact %s never reached state %q (is %q)", n.ID().ShortString(), other.ID().ShortString(), want, contactState(t, n, other))
}

func apiCode(t *testing.T, err error) int {
	t.Helper()
	var ae *control.APIError
	require.True(t, errors.As(err, &ae), "%v", err)
	return ae.Code
}

// TestFriendRequestAccept: a request arrives as pending_in with its note;
// nothing can be chatted either way until it is accepted; accepting
// reaches the requester, and then chat and presence flow.
func TestFriendRequestAccept(t *testing.T) {
	a := newTestNode(t, testConfig(t), "alice")
	b := newTestNode(t, testConfig(t), "bob")
	introduce(a, b)
	ctx := context.Background()
	ca, cb := apiClient(a), apiClient(b)
	evB := subscribe(t, b)

	added, err := ca.AddContact(ctx, control.AddContactRequest{Target: b.ID().String(), Name: "bob", Note: "hi, it's Alice from the climbing club"})
	require.NoError(t, err)
	require.Equal(t, control.StatePendingOut, added.State)

	e := waitEvent(t, evB, func(e control.Event) bool { return e.Type == control.EventContact })
	require.Equal(t, control.StatePendingIn, e.State)
	require.Equal(t, "hi, it's Alice from the climbing club", e.Note)
	cs, err := cb.Contacts(ctx)
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.Equal(t, control.StatePendingIn, cs[0].State)
	require.Equal(t, "alice", cs[0].Name, "the requester's name, since it is free")
	require.Equal(t, "hi, it's Alice from the climbing club", cs[0].Note)

	// Neither side can chat yet, and says why.
	_, err = ca.Send(ctx, "bob", control.SendRequest{Text: "hello?"})
	require.Equal(t, http.StatusConflict, apiCode(t, err))
	require.ErrorContains(t, err, "has not accepted your friend request yet")
	_, err = cb.Send(ctx, "alice", control.SendRequest{Text: "who are you"})
	require.Equal(t, http.StatusConflict, apiCode(t, err))
	require.ErrorContains(t, err, "accept first")

	// Wrong transitions are refused.
	_, err = ca.AcceptContact(ctx, "bob", "")
	require.Equal(t, http.StatusConflict, apiCode(t, err))
	_, err = ca.RejectContact(ctx, "bob")
	require.Equal(t, http.StatusConflict, apiCode(t, err))

	acc, err := cb.AcceptContact(ctx, "alice", "Alice C.")
	require.NoError(t, err)
	require.Equal(t, control.StateAccepted, acc.State)
	require.Equal(t, "Alice C.", acc.Name)
	waitState(t, a, b, control.StateAccepted)

	m, err := ca.Send(ctx, "bob", control.SendRequest{Text: "thanks!", Wait: "10s"})
	require.NoError(t, err)
	require.Equal(t, control.StatusDelivered, m.Status)

	// Each sees the other online.
	for _, p := range [][2]*Node{{a, b}, {b, a}} {
		require.Eventually(t, func() bool {
			st, err := apiClient(p[0]).Status(ctx)
			return err == nil && len(st.Contacts) == 1 && st.Contacts[0].Presence == control.PresenceOnline
		}, 10*time.Second, 20*time.Millisecond)
	}
}

// TestMutualAdd: two users who add each other are accepted without
// anyone running accept.
func TestMutualAdd(t *testing.T) {
	a := newTestNode(t, testConfig(t), "alice")
	b := newTestNode(t, testConfig(t), "bob")
	befriend(t, a, "alice", b, "bob") // waits for accepted on both sides
}

// TestFriendRequestReject: a rejected request disappears on both sides,
// and asking again within the cooldown is answered "rejected" without
// bothering the user.
func TestFriendRequestReject(t *testing.T) {
	a := newTestNode(t, testConfig(t), "alice")
	b := newTestNode(t, testConfig(t), "bob")
	introduce(a, b)
	ctx := context.Background()
	ca, cb := apiClient(a), apiClient(b)
	evA := subscribe(t, a)

	_, err := ca.AddContact(ctx, control.AddContactRequest{Target: b.ID().String(), Name: "bob"})
	require.NoError(t, err)
	waitState(t, b, a, control.StatePendingIn)
	_, err = cb.RejectContact(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, "", contactState(t, b, a))
	e := waitEvent(t, evA, func(e control.Event) bool { return e.Type == control.EventContact })
	require.Equal(t, control.StateRejected, e.State)
	waitState(t, a, b, "")

	sub, cancel := b.events.Subscribe()
	defer cancel()
	_, err = ca.AddContact(ctx, control.AddContactRequest{Target: b.ID().String(), Name: "bob"})
	require.NoError(t, err)
	waitState(t, a, b, "")
	require.Equal(t, "", contactState(t, b, a), "the cooldown answers for the user")
	quiet := time.After(300 * time.Millisecond)
	for done := false; !done; {
		select {
		case e := <-sub.C():
			require.NotEqual(t, control.EventContact, e.Type, "bob was bothered again: %+v", e)
		case <-quiet:
			done = true
		}
	}
}

// TestFriendRequestWithdraw: removing a contact we asked, before it
// answered, takes the request back on its side too; a WITHDRAW for a
// request that does not exist, or for a contact already accepted, changes
// nothing.
func TestFriendRequestWithdraw(t *testing.T) {
	a := newTestNode(t, testConfig(t), "alice")
	b := newTestNode(t, testConfig(t), "bob")
	introduce(a, b)
	ctx := context.Background()
	ca := apiClient(a)
	evB := subscribe(t, b)

	_, err := ca.AddContact(ctx, control.AddContactRequest{Target: b.ID().String(), Name: "bob", Note: "hi"})
	require.NoError(t, err)
	waitState(t, b, a, control.StatePendingIn)
	waitEvent(t, evB, func(e control.Event) bool { return e.Type == control.EventContact && e.State == control.StatePendingIn })
	require.Eventually(t, func() bool { p, _ := a.pathTo(b.ID()); return p != control.PathNone }, 10*time.Second, 20*time.Millisecond)

	require.NoError(t, ca.RemoveContact(ctx, "bob"))
	require.Equal(t, "", contactState(t, a, b))
	// Told over the link before it stopped: gone at once, with an event.
	require.Equal(t, "", contactState(t, b, a))
	e := waitEvent(t, evB, func(e control.Event) bool { return e.Type == control.EventContact })
	require.Equal(t, control.StateWithdrawn, e.State)
	require.Equal(t, a.ID().String(), e.PeerID)

	// A WITHDRAW from a stranger, or from an accepted contact, does
	// nothing: only a pending request can be taken back.
	c := newTestNode(t, testConfig(t), "carol")
	introduce(c, b)
	require.NoError(t, c.Host().Connect(ctx, peer.AddrInfo{ID: b.ID()}))
	resp, err := contact.Send(ctx, c.Host(), b.ID(), contact.Request{Kind: contact.KindWithdraw})
	require.NoError(t, err)
	require.Equal(t, contact.StatusOK, resp.Status, "nothing to withdraw: already gone")
	befriend(t, b, "bob", c, "carol")
	resp, err = contact.Send(ctx, c.Host(), b.ID(), contact.Request{Kind: contact.KindWithdraw})
	require.NoError(t, err)
	require.Equal(t, contact.StatusRefused, resp.Status)
	require.Equal(t, control.StateAccepted, contactState(t, b, c))
}

// TestBlock: a blocked peer's connections are refused by the gater, so
// its requests never arrive; removing the block lets it in again.
func TestBlock(t *testing.T) {
	a := newTestNode(t, testConfig(t), "alice")
	b := newTestNode(t, testConfig(t), "bob")
	introduce(a, b)
	ctx := context.Background()
	ca, cb := apiClient(a), apiClient(b)

	// Block a stranger by peer ID, before it ever asks.
	blocked, err := cb.BlockContact(ctx, a.ID().String())
	require.NoError(t, err)
	require.Equal(t, control.StateBlocked, blocked.State)
	_, err = cb.BlockContact(ctx, "nobody")
	require.Equal(t, http.StatusNotFound, apiCode(t, err))

	_, err = ca.AddContact(ctx, control.AddContactRequest{Target: b.ID().String(), Name: "bob"})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.p2p.RefusedConnections() > 0 }, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, control.StateBlocked, contactState(t, b, a))
	require.Empty(t, b.Host().Network().ConnsToPeer(a.ID()))
	_, err = cb.AddContact(ctx, control.AddContactRequest{Target: a.ID().String()})
	require.Equal(t, http.StatusConflict, apiCode(t, err))
	require.ErrorContains(t, err, "blocked")

	// Unblock: the pending request arrives on the next try.
	require.NoError(t, cb.RemoveContact(ctx, a.ID().String()))
	waitState(t, b, a, control.StatePendingIn)

	// Blocking an accepted contact cuts it off at once.
	_, err = cb.AcceptContact(ctx, a.ID().String(), "alice")
	require.NoError(t, err)
	waitState(t, a, b, control.StateAccepted)
	_, err = cb.BlockContact(ctx, "alice")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(a.Host().Network().ConnsToPeer(b.ID())) == 0 }, 10*time.Second, 20*time.Millisecond)
	_, err = cb.Send(ctx, "alice", control.SendRequest{Text: "x"})
	require.Equal(t, http.StatusConflict, apiCode(t, err))
}

// TestRequestFlood: one peer flooding requests is rate-limited and
// counted while another peer's request still gets through; a full queue
// of pending requests refuses more.
func TestRequestFlood(t *testing.T) {
	cfg := testConfig(t)
	cfg.Contacts.RequestBurst = 2
	cfg.Contacts.RequestInterval = time.Hour
	cfg.Contacts.MaxPending = 2
	b := newTestNode(t, cfg, "bob")
	ctx := context.Background()
	stranger := func() host.Host {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		require.NoError(t, err)
		t.Cleanup(func() { h.Close() })
		require.NoError(t, h.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}))
		return h
	}
	flooder := stranger()
	statuses := map[string]int{}
	for range 6 {
		resp, err := contact.Send(ctx, flooder, b.ID(), contact.Request{Kind: contact.KindRequest, Note: "let me in"})
		if err != nil {
			require.ErrorIs(t, err, contact.ErrRateLimited)
		}
		statuses[resp.Status.String()]++
	}
	require.Equal(t, map[string]int{"PENDING": 2, "RATE_LIMITED": 4}, statuses)
	require.Equal(t, float64(4), b.metrics.Count("contact", "rate_limited"))

	resp, err := contact.Send(ctx, stranger(), b.ID(), contact.Request{Kind: contact.KindRequest})
	require.NoError(t, err)
	require.Equal(t, contact.StatusPending, resp.Status, "another peer is not affected by the flood")
	resp, err = contact.Send(ctx, stranger(), b.ID(), contact.Request{Kind: contact.KindRequest})
	require.NoError(t, err)
	require.Equal(t, contact.StatusRefused, resp.Status, "max_pending reached")
	require.Contains(t, resp.Reason, "too many requests")
	n, err := b.store.CountState(ctx, store.StatePendingIn)
	require.NoError(t, err)
	require.Equal(t, 2, n)
}
