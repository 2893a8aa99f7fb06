package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/identity"
	"github.com/natterim/natter/node/store"
)

// befriend makes a and b contacts of each other (names as given) and
// teaches each the other's loopback addresses (there is no rendezvous).
func befriend(t *testing.T, a *Node, aName string, b *Node, bName string) {
	t.Helper()
	ctx := context.Background()
	a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), peerstore.PermanentAddrTTL)
	b.Host().Peerstore().AddAddrs(a.ID(), a.Host().Addrs(), peerstore.PermanentAddrTTL)
	_, err := apiClient(a).AddContact(ctx, control.AddContactRequest{Target: b.ID().String(), Name: bName})
	require.NoError(t, err)
	_, err = apiClient(b).AddContact(ctx, control.AddContactRequest{Target: a.ID().String(), Name: aName})
	require.NoError(t, err)
	waitAccepted(t, a, b)
	waitAccepted(t, b, a)
}

// waitAccepted waits until n has other as an accepted contact (two users
// who add each other are accepted once their requests cross).
func waitAccepted(t *testing.T, n, other *Node) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := n.store.ContactByPeer(context.Background(), other.ID())
		return err == nil && c.State == control.StateAccepted
	}, 20*time.Second, 20*time.Millisecond, "%s never accepted %s", n.ID().ShortString(), other.ID().ShortString())
}

// waitEvent reads events until one satisfies ok.
func waitEvent(t *testing.T, r *eventReader, ok func(control.Event) bool) control.Event {
	t.Helper()
	for {
		e, err := r.next()
		require.NoError(t, err)
		if ok(e) {
			return e
		}
	}
}

func subscribe(t *testing.T, n *Node) *eventReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	body, err := apiClient(n).Stream(ctx, "/events")
	require.NoError(t, err)
	t.Cleanup(func() { cancel(); body.Close() })
	r := newEventReader(body)
	e, err := r.next()
	require.NoError(t, err)
	require.Equal(t, control.EventHello, e.Type)
	return r
}

func TestChatLoopback(t *testing.T) {
	a := newTestNode(t, testConfig(t), "alice")
	b := newTestNode(t, testConfig(t), "bob")
	ctx := context.Background()
	ca, cb := apiClient(a), apiClient(b)
	evA, evB := subscribe(t, a), subscribe(t, b)
	befriend(t, a, "alice", b, "bob")

	// Send with wait: durable, delivered, and says how.
	m, err := ca.Send(ctx, "bob", control.SendRequest{Text: "hello bob", Wait: "20s"})
	require.NoError(t, err)
	require.Equal(t, control.StatusDelivered, m.Status)
	require.Equal(t, control.PathDirect, m.Via)
	require.Equal(t, "out", m.Direction)
	require.Equal(t, a.ID().String(), m.From)
	require.Equal(t, uint64(1), m.Seq)

	e := waitEvent(t, evB, func(e control.Event) bool { return e.Type == control.EventMessage })
	require.Equal(t, "hello bob", e.Message.Text)
	require.Equal(t, "in", e.Message.Direction)
	require.Equal(t, "alice", e.Name)
	require.Equal(t, m.ID, e.Message.ID)

	// A burst without waiting arrives complete and in order.
	var ids []string
	for i := range 300 {
		m, err := ca.Send(ctx, "bob", control.SendRequest{Text: fmt.Sprintf("burst %03d", i)})
		require.NoError(t, err)
		ids = append(ids, m.ID)
	}
	require.Eventually(t, func() bool {
		h, err := cb.History(ctx, "alice", "", 1000)
		return err == nil && len(h) == 301
	}, 30*time.Second, 50*time.Millisecond)
	h, err := cb.History(ctx, "alice", "", 1000)
	require.NoError(t, err)
	for i, m := range h[1:] {
		require.Equal(t, fmt.Sprintf("burst %03d", i), m.Text)
		require.Equal(t, ids[i], m.ID)
		require.Equal(t, uint64(i+2), m.Seq)
	}
	require.Eventually(t, func() bool {
		h, err := ca.History(ctx, "bob", "", 1000)
		if err != nil || len(h) != 301 {
			return false
		}
		for _, m := range h {
			if m.Status != control.StatusDelivered {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "every message reaches delivered at the sender")

	// Paging.
	page, err := cb.History(ctx, "alice", h[100].ID, 2)
	require.NoError(t, err)
	require.Equal(t, []string{h[98].ID, h[99].ID}, []string{page[0].ID, page[1].ID})

	// Reading sends a read receipt; the sender sees read.
	st, err := cb.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, 301, st.Contacts[0].Unread)
	evA = subscribe(t, a) // a fresh subscription: skip the burst's events
	evB = subscribe(t, b)
	rr, err := cb.MarkRead(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, 301, rr.Marked)
	require.True(t, rr.Receipts)
	// Every client of bob's learns the conversation is read.
	e = waitEvent(t, evB, func(e control.Event) bool { return e.Type == control.EventRead })
	require.Equal(t, a.ID().String(), e.PeerID)
	waitEvent(t, evA, func(e control.Event) bool {
		return e.Type == control.EventStatus && e.Status == control.StatusRead && len(e.IDs) == 301
	})
	h, err = ca.History(ctx, "bob", "", 1)
	require.NoError(t, err)
	require.Equal(t, control.StatusRead, h[0].Status)

	// Receipts off for alice: marking read tells her nothing.
	_, err = cb.SetReceipts(ctx, "alice", "off")
	require.NoError(t, err)
	m, err = ca.Send(ctx, "bob", control.SendRequest{Text: "secret reading", Wait: "20s"})
	require.NoError(t, err)
	rr, err = cb.MarkRead(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, 1, rr.Marked)
	require.False(t, rr.Receipts)
	st, err = cb.Status(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Contacts[0].Queued, "no receipt queued")

	// Nudge and typing reach the other side as events.
	evB = subscribe(t, b)
	tr, err := ca.Typing(ctx, "bob", true)
	require.NoError(t, err)
	require.True(t, tr.Sent)
	e = waitEvent(t, evB, func(e control.Event) bool { return e.Type == control.EventTyping })
	require.True(t, *e.Typing)
	_, err = ca.Send(ctx, "bob", control.SendRequest{Kind: control.KindNudge})
	require.NoError(t, err)
	e = waitEvent(t, evB, func(e control.Event) bool { return e.Type == control.EventNudge })
	require.Equal(t, control.KindNudge, e.Message.Kind)

	// Replies go the other way on their own stream.
	_, err = cb.Send(ctx, "alice", control.SendRequest{Text: "hi alice, café?", Wait: "20s"})
	require.NoError(t, err)
	found, err := ca.Search(ctx, "cafe", "", 10)
	require.NoError(t, err)
	require.Len(t, found, 1)
	require.Equal(t, "in", found[0].Direction)
	found, err = ca.Search(ctx, "burst", "bob", 5)
	require.NoError(t, err)
	require.Len(t, found, 5)
	require.Equal(t, "burst 299", found[4].Text, "the newest matches, oldest first")
}

func TestChatBadInput(t *testing.T) {
	a := newTestNode(t, testConfig(t), "alice")
	b := newTestNode(t, testConfig(t), "bob")
	ctx := context.Background()
	ca := apiClient(a)
	befriend(t, a, "alice", b, "bob")

	for _, tc := range []struct {
		req  control.SendRequest
		code int
		msg  string
	}{
		{control.SendRequest{Text: ""}, http.StatusBadRequest, "empty"},
		{control.SendRequest{Text: string(make([]byte, 70_000))}, http.StatusBadRequest, "longer than"},
		{control.SendRequest{Kind: "shout", Text: "x"}, http.StatusBadRequest, "unknown message kind"},
		{control.SendRequest{Kind: control.KindNudge, Text: "x"}, http.StatusBadRequest, "no text"},
		{control.SendRequest{Text: "x", Wait: "forever"}, http.StatusBadRequest, "wait"},
	} {
		_, err := ca.Send(ctx, "bob", tc.req)
		var ae *control.APIError
		require.True(t, errors.As(err, &ae), "%q: %v", tc.msg, err)
		require.Equal(t, tc.code, ae.Code, ae.Message)
		require.Contains(t, ae.Message, tc.msg)
	}
	// Invalid UTF-8: the client refuses it, and so does the daemon if a
	// client sends it anyway.
	_, err := ca.Send(ctx, "bob", control.SendRequest{Text: "bad \xff utf-8"})
	require.ErrorIs(t, err, control.ErrNotUTF8)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", a.socketPath())
	}}}
	resp, err := hc.Post("http://natter/v1/contacts/bob/messages", "application/json", strings.NewReader("{\"text\":\"bad \xff utf-8\"}"))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), "not valid UTF-8")

	_, err = ca.Send(ctx, "nobody", control.SendRequest{Text: "x"})
	var ae *control.APIError
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusNotFound, ae.Code)
	_, err = ca.History(ctx, "bob", "not-an-id", 10)
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusBadRequest, ae.Code)
	_, err = ca.Search(ctx, "   ", "", 10)
	require.True(t, errors.As(err, &ae))
	require.Equal(t, http.StatusBadRequest, ae.Code)
	h, err := ca.History(ctx, "bob", "", 10)
	require.NoError(t, err)
	require.Empty(t, h, "refused sends leave no trace")

}

// TestChatDiskFull: on a full file system send fails with a clear error,
// nothing is corrupted, and sending works again once there is room.
func TestChatDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=3m"))
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	cfg := testConfig(t)
	cfg.DataDir = dir
	a := newTestNode(t, cfg, "alice")
	b := newTestNode(t, testConfig(t), "bob")
	ctx := context.Background()
	ca := apiClient(a)
	befriend(t, a, "alice", b, "bob")
	m, err := ca.Send(ctx, "bob", control.SendRequest{Text: "before the disk filled", Wait: "20s"})
	require.NoError(t, err)

	// Fill the file system, leaving a little room for the database.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	var full error
	big := strings.Repeat("x", 60_000)
	for range 100 {
		if _, full = ca.Send(ctx, "bob", control.SendRequest{Text: big}); full != nil {
			break
		}
	}
	var ae *control.APIError
	require.True(t, errors.As(full, &ae), "%v", full)
	require.Equal(t, http.StatusInsufficientStorage, ae.Code, ae.Message)
	require.Contains(t, ae.Message, "disk full")

	require.NoError(t, os.Remove(filler))
	var ok string
	require.NoError(t, a.store.DB().QueryRow(`PRAGMA integrity_check`).Scan(&ok))
	require.Equal(t, "ok", ok)
	h, err := ca.History(ctx, "bob", "", 1000)
	require.NoError(t, err)
	require.Equal(t, m.ID, h[0].ID)
	for _, m := range h[1:] {
		require.Equal(t, big, m.Text, "what was accepted is intact")
	}
	_, err = ca.Send(ctx, "bob", control.SendRequest{Text: "room again", Wait: "20s"})
	require.NoError(t, err)
}

// TestChatRefusesStrangers: a peer that is not a contact cannot put
// anything in the history; the stream is refused and counted.
func TestChatRefusesStrangers(t *testing.T) {
	a := newTestNode(t, testConfig(t), "alice")
	b := newTestNode(t, testConfig(t), "bob")
	ctx := context.Background()
	// Only alice knows bob, and she believes he accepted her.
	a.Host().Peerstore().AddAddrs(b.ID(), b.Host().Addrs(), peerstore.PermanentAddrTTL)
	require.NoError(t, a.store.AddContact(ctx, store.Contact{PeerID: b.ID(), Name: "bob", State: store.StateAccepted}))
	a.startContact(b.ID())
	m, err := apiClient(a).Send(ctx, "bob", control.SendRequest{Text: "let me in", Wait: "2s"})
	require.NoError(t, err)
	require.NotEqual(t, control.StatusDelivered, m.Status)
	require.Eventually(t, func() bool { return b.metrics.Count("chat", "refused") > 0 }, 10*time.Second, 20*time.Millisecond)
	n, err := b.store.Unread(ctx)
	require.NoError(t, err)
	require.Empty(t, n)
}

// TestChatResumesAfterRestart: messages queued while the contact is down
// are delivered when it comes back, and the sender's outbox survives the
// sender's own restart.
func TestChatResumesAfterRestart(t *testing.T) {
	ctx := context.Background()
	cfgA, cfgB := testConfig(t), testConfig(t)
	// Fixed ports so that the restarted nodes are found where they were.
	cfgA.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t))}
	cfgB.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t))}
	skA, err := identity.Generate()
	require.NoError(t, err)
	skB, err := identity.Generate()
	require.NoError(t, err)
	a := startTestNode(t, cfgA, skA, "alice")
	b := startTestNode(t, cfgB, skB, "bob")
	befriend(t, a, "alice", b, "bob")
	_, err = apiClient(a).Send(ctx, "bob", control.SendRequest{Text: "first", Wait: "20s"})
	require.NoError(t, err)

	require.NoError(t, b.Close())
	// Long texts: 20 of them overflow one frame, so the outbox goes in
	// several batches.
	long := strings.Repeat("x", 60<<10)
	text := func(i int) string { return fmt.Sprint("while away ", i, " ", long) }
	for i := range 20 {
		_, err := apiClient(a).Send(ctx, "bob", control.SendRequest{Text: text(i)})
		require.NoError(t, err)
	}
	// The sender restarts too, with everything still queued.
	require.NoError(t, a.Close())
	a = restart(t, cfgA, skA, b.ID(), cfgB)
	b = restart(t, cfgB, skB, a.ID(), cfgA)

	require.Eventually(t, func() bool {
		h, err := apiClient(b).History(ctx, "alice", "", 100)
		return err == nil && len(h) == 21
	}, 60*time.Second, 100*time.Millisecond)
	h, err := apiClient(b).History(ctx, "alice", "", 100)
	require.NoError(t, err)
	for i, m := range h[1:] {
		require.Equal(t, text(i), m.Text)
	}
	require.Eventually(t, func() bool {
		st, err := apiClient(a).Status(ctx)
		return err == nil && st.Contacts[0].Queued == 0
	}, 30*time.Second, 100*time.Millisecond)
}

func restart(t *testing.T, cfg Config, sk crypto.PrivKey, other peer.ID, otherCfg Config) *Node {
	t.Helper()
	n, err := New(context.Background(), cfg, sk)
	require.NoError(t, err)
	t.Cleanup(func() { n.Close() })
	n.Host().Peerstore().AddAddrs(other, otherCfg.listenAddrs(), peerstore.PermanentAddrTTL)
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
