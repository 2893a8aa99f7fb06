package node

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/identity"
	"github.com/natterim/natter/protocols/mailbox"
	"github.com/natterim/natter/rendezvous"
	rdvstore "github.com/natterim/natter/rendezvous/store"
)

// mailConfig is a loopback node whose rendezvous is at addrs, with short
// mailbox timers and a fixed port (so that it is found again after a
// restart).
func mailConfig(t *testing.T, addrs []string) Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", freePort(t))}
	cfg.Transports = []string{"tcp"}
	cfg.Rendezvous = addrs
	cfg.HolePunching = false
	cfg.Mailbox.After = time.Second
	cfg.Mailbox.Poll = time.Second
	cfg.Mailbox.StatusInterval = time.Second
	return cfg
}

func startRendezvous(t *testing.T) (*rendezvous.Server, rendezvous.Config) {
	t.Helper()
	cfg := rendezvous.DefaultConfig()
	dir, err := os.MkdirTemp("", "rdv")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.DHT.Enabled = false
	s, err := rendezvous.New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, cfg
}

func p2pAddrs(h host.Host) []string {
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.String()+"/p2p/"+h.ID().String())
	}
	return out
}

func waitToken(t *testing.T, n, from *Node) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, exp, err := n.store.Token(context.Background(), from.ID())
		return err == nil && exp.After(time.Now())
	}, 20*time.Second, 20*time.Millisecond, "%s never got a deposit token from %s", n.ID().ShortString(), from.ID().ShortString())
}

// waitOpened waits until n has emptied its mailbox on its (first)
// rendezvous once: from then on it has one there.
func waitOpened(t *testing.T, n *Node) {
	t.Helper()
	require.Eventually(t, func() bool {
		mb, err := apiClient(n).Mailbox(context.Background())
		return err == nil && len(mb.Servers) > 0 && !mb.Servers[0].LastDrain.IsZero()
	}, 10*time.Second, 20*time.Millisecond, "%s never opened its mailbox", n.ID().ShortString())
}

func waitStatuses(t *testing.T, n *Node, contact string, want ...string) []control.Message {
	t.Helper()
	var h []control.Message
	require.Eventually(t, func() bool {
		var err error
		h, err = apiClient(n).History(context.Background(), contact, "", 1000)
		if err != nil {
			return false
		}
		got := 0
		for _, m := range h {
			if m.Direction == "out" {
				if !contains(want, m.Status) {
					return false
				}
				got++
			}
		}
		return got > 0
	}, 30*time.Second, 50*time.Millisecond, "%s: outgoing messages to %s never all %v (last: %v)", n.ID().ShortString(), contact, want, statuses(h))
	return h
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func statuses(h []control.Message) []string {
	var out []string
	for _, m := range h {
		out = append(out, m.Direction+":"+m.Status)
	}
	return out
}

// requireNoPlaintext checks that no file under dir holds any of texts.
func requireNoPlaintext(t *testing.T, dir string, texts ...string) {
	t.Helper()
	files := 0
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for _, s := range texts {
			require.False(t, bytes.Contains(b, []byte(s)), "%s holds %q", p, s)
		}
		return nil
	}))
	require.NotZero(t, files)
}

// TestMailboxOfflineDelivery: alice writes to bob while he is offline and
// then goes offline too; bob comes back and gets every message once, in
// order; his delivered receipt waits in alice's mailbox until she comes
// back and sees them delivered (via the mailbox). The rendezvous never
// holds a message in the clear.
func TestMailboxOfflineDelivery(t *testing.T) {
	ctx := context.Background()
	srv, srvCfg := startRendezvous(t)
	addrs := p2pAddrs(srv.Host())
	cfgA, cfgB := mailConfig(t, addrs), mailConfig(t, addrs)
	skA, err := identity.Generate()
	require.NoError(t, err)
	skB, err := identity.Generate()
	require.NoError(t, err)
	a := startTestNode(t, cfgA, skA, "alice")
	b := startTestNode(t, cfgB, skB, "bob")
	befriend(t, a, "alice", b, "bob")
	waitToken(t, a, b)
	waitToken(t, b, a)
	waitOpened(t, a)
	waitOpened(t, b)

	require.NoError(t, b.Close())
	require.Eventually(t, func() bool { p, _ := a.pathTo(b.ID()); return p == control.PathNone }, 10*time.Second, 20*time.Millisecond)
	ev := subscribe(t, a)
	var texts, ids []string
	for i := range 5 {
		text := fmt.Sprintf("while you were out %d", i)
		m, err := apiClient(a).Send(ctx, "bob", control.SendRequest{Text: text})
		require.NoError(t, err)
		texts, ids = append(texts, text), append(ids, m.ID)
	}
	waitStatuses(t, a, "bob", control.StatusStored)
	e := waitEvent(t, ev, func(e control.Event) bool { return e.Type == control.EventStatus && e.Status == control.StatusStored })
	require.NotEmpty(t, e.IDs)
	mb, err := apiClient(a).Mailbox(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, mb.Contacts[0].Stored)
	require.Equal(t, srv.ID().String(), mb.Contacts[0].Server)
	rep, err := srv.Mailboxes(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, rep.Totals.Boxes)
	requireNoPlaintext(t, srvCfg.DataDir, texts...)

	// A stored message stays stored under --wait (it is not delivered).
	m, err := apiClient(a).Send(ctx, "bob", control.SendRequest{Text: "are you there?", Wait: "3s"})
	require.NoError(t, err)
	require.Equal(t, control.StatusStored, m.Status)
	texts, ids = append(texts, m.Text), append(ids, m.ID)

	require.NoError(t, a.Close())
	b = restart(t, cfgB, skB, a.ID(), cfgA)
	require.Eventually(t, func() bool {
		h, err := apiClient(b).History(ctx, "alice", "", 100)
		return err == nil && len(h) >= 6
	}, 30*time.Second, 50*time.Millisecond)
	h, err := apiClient(b).History(ctx, "alice", "", 100)
	require.NoError(t, err)
	require.Len(t, h, 6)
	for i, m := range h {
		require.Equal(t, ids[i], m.ID)
		require.Equal(t, texts[i], m.Text)
		require.Equal(t, "in", m.Direction)
	}
	// Bob's delivered receipt is stored in alice's mailbox.
	require.Eventually(t, func() bool {
		rep, err := srv.Mailboxes(ctx)
		if err != nil {
			return false
		}
		for _, mb := range rep.Mailboxes {
			if mb.Owner == a.ID() && mb.Boxes == 1 {
				return rep.Totals.Boxes == 1 // bob's own mailbox is empty
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond)

	require.NoError(t, b.Close())
	a = restart(t, cfgA, skA, b.ID(), cfgB)
	h = waitStatuses(t, a, "bob", control.StatusDelivered)
	for _, m := range h {
		require.Equal(t, control.PathMailbox, m.Via)
	}
	require.Eventually(t, func() bool {
		st, err := apiClient(a).Status(ctx)
		return err == nil && st.Contacts[0].Queued == 0
	}, 10*time.Second, 50*time.Millisecond, "delivered messages leave the outbox")
	require.Eventually(t, func() bool {
		rep, err := srv.Mailboxes(ctx)
		return err == nil && rep.Totals.Boxes == 0
	}, 10*time.Second, 50*time.Millisecond, "alice emptied her mailbox")

	// Bob comes back: the receipt he deposited was taken, so it leaves
	// his outbox (he learns it from the rendezvous, even with alice
	// offline); and nothing arrives twice.
	require.NoError(t, a.Close())
	b = restart(t, cfgB, skB, a.ID(), cfgA)
	require.Eventually(t, func() bool {
		st, err := apiClient(b).Status(ctx)
		return err == nil && st.Contacts[0].Queued == 0
	}, 20*time.Second, 50*time.Millisecond, "bob's receipt leaves his outbox")
	h, err = apiClient(b).History(ctx, "alice", "", 100)
	require.NoError(t, err)
	require.Len(t, h, 6)
	requireNoPlaintext(t, srvCfg.DataDir, texts...)
}

// miniRendezvous is a host that serves only the mailbox, with a clock the
// test moves (the real server's expiry runs once a minute).
type miniRendezvous struct {
	h     host.Host
	svc   *mailbox.Service
	clock *testClock
}

type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func startMini(t *testing.T) *miniRendezvous {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	st, err := rdvstore.Open(context.Background(), t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	m := &miniRendezvous{h: h, clock: &testClock{}}
	l := mailbox.DefaultLimits()
	l.MaxAge = time.Hour
	m.svc, err = mailbox.New(h, st, mailbox.WithLimits(l), mailbox.WithClock(m.clock.Now))
	require.NoError(t, err)
	t.Cleanup(func() { m.svc.Close() })
	return m
}

// TestMailboxExpiryAndRefusal: a stored message that expires before its
// recipient fetches it becomes failed, with a reason, and leaves the
// outbox (a --wait in progress says so); a contact that was removed can
// still deposit with the token it has, but the recipient refuses its
// boxes and the sender's messages fail.
func TestMailboxExpiryAndRefusal(t *testing.T) {
	ctx := context.Background()
	mini := startMini(t)
	addrs := p2pAddrs(mini.h)
	cfgA, cfgB := mailConfig(t, addrs), mailConfig(t, addrs)
	skA, err := identity.Generate()
	require.NoError(t, err)
	skB, err := identity.Generate()
	require.NoError(t, err)
	a := startTestNode(t, cfgA, skA, "alice")
	b := startTestNode(t, cfgB, skB, "bob")
	befriend(t, a, "alice", b, "bob")
	waitToken(t, a, b)
	waitToken(t, b, a)
	waitOpened(t, b)

	require.NoError(t, b.Close())
	require.Eventually(t, func() bool { p, _ := a.pathTo(b.ID()); return p == control.PathNone }, 10*time.Second, 20*time.Millisecond)
	type result struct {
		m   control.Message
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := apiClient(a).Send(ctx, "bob", control.SendRequest{Text: "this will not make it", Wait: "60s"})
		done <- result{m, err}
	}()
	waitStatuses(t, a, "bob", control.StatusStored)
	mini.clock.Advance(2 * time.Hour)
	st, err := mini.svc.GC(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Expired)
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, control.StatusFailed, r.m.Status)
	require.Contains(t, r.m.Reason, "expired")
	h := waitStatuses(t, a, "bob", control.StatusFailed)
	require.Contains(t, h[0].Reason, "expired")
	stat, err := apiClient(a).Status(ctx)
	require.NoError(t, err)
	require.Zero(t, stat.Contacts[0].Queued, "a failed message leaves the outbox")

	// Bob comes back and removes alice while she still holds his token;
	// alice, now alone, deposits; bob refuses it.
	b = restart(t, cfgB, skB, a.ID(), cfgA)
	err = apiClient(b).RemoveContact(ctx, "alice")
	require.NoError(t, err)
	require.NoError(t, b.Close())
	require.Eventually(t, func() bool { p, _ := a.pathTo(b.ID()); return p == control.PathNone }, 10*time.Second, 20*time.Millisecond)
	_, err = apiClient(a).Send(ctx, "bob", control.SendRequest{Text: "let me back in"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		h, err := apiClient(a).History(ctx, "bob", "", 10)
		return err == nil && len(h) == 2 && h[1].Status == control.StatusStored
	}, 30*time.Second, 50*time.Millisecond)
	b = restart(t, cfgB, skB, a.ID(), cfgA)
	require.Eventually(t, func() bool {
		h, err := apiClient(a).History(ctx, "bob", "", 10)
		return err == nil && len(h) == 2 && h[1].Status == control.StatusFailed
	}, 30*time.Second, 50*time.Millisecond)
	h, err = apiClient(a).History(ctx, "bob", "", 10)
	require.NoError(t, err)
	require.Contains(t, h[1].Reason, "refused")
	mbB, err := apiClient(b).Mailbox(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, mbB.Servers[0].Rejected)
	n, err := b.store.Unread(ctx)
	require.NoError(t, err)
	require.Empty(t, n, "nothing from a removed contact reaches bob's history")
}

// TestMailboxDuplicateArrivals: the same message reaching the recipient
// both directly and through its mailbox is stored once.
func TestMailboxDuplicateArrivals(t *testing.T) {
	ctx := context.Background()
	srv, _ := startRendezvous(t)
	addrs := p2pAddrs(srv.Host())
	cfgA, cfgB := mailConfig(t, addrs), mailConfig(t, addrs)
	skA, err := identity.Generate()
	require.NoError(t, err)
	skB, err := identity.Generate()
	require.NoError(t, err)
	a := startTestNode(t, cfgA, skA, "alice")
	b := startTestNode(t, cfgB, skB, "bob")
	befriend(t, a, "alice", b, "bob")
	waitToken(t, a, b)
	waitOpened(t, b)

	require.NoError(t, b.Close())
	require.Eventually(t, func() bool { p, _ := a.pathTo(b.ID()); return p == control.PathNone }, 10*time.Second, 20*time.Millisecond)
	var ids []string
	for i := range 10 {
		m, err := apiClient(a).Send(ctx, "bob", control.SendRequest{Text: fmt.Sprint("twice? ", i)})
		require.NoError(t, err)
		ids = append(ids, m.ID)
	}
	waitStatuses(t, a, "bob", control.StatusStored)
	// Bob returns while alice is online: her outbox delivers directly and
	// his mailbox holds the same messages.
	b = restart(t, cfgB, skB, a.ID(), cfgA)
	waitStatuses(t, a, "bob", control.StatusDelivered)
	require.Eventually(t, func() bool {
		rep, err := srv.Mailboxes(ctx)
		return err == nil && rep.Totals.Boxes == 0
	}, 20*time.Second, 50*time.Millisecond, "bob empties his mailbox")
	h, err := apiClient(b).History(ctx, "alice", "", 100)
	require.NoError(t, err)
	require.Len(t, h, 10)
	for i, m := range h {
		require.Equal(t, ids[i], m.ID)
	}
}

func TestMailboxConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		key  string
		edit func(*MailboxConfig)
	}{
		{"mailbox.after", func(m *MailboxConfig) { m.After = 0 }},
		{"mailbox.after", func(m *MailboxConfig) { m.After = 2 * time.Hour }},
		{"mailbox.poll", func(m *MailboxConfig) { m.Poll = time.Millisecond }},
		{"mailbox.status_interval", func(m *MailboxConfig) { m.StatusInterval = 0 }},
		{"mailbox.token_ttl", func(m *MailboxConfig) { m.TokenTTL = time.Minute }},
		{"mailbox.flush_on_stop", func(m *MailboxConfig) { m.FlushOnStop = -time.Second }},
		{"mailbox.flush_on_stop", func(m *MailboxConfig) { m.FlushOnStop = 2 * time.Minute }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			c := DefaultConfig()
			c.DataDir = "/x"
			require.NoError(t, c.Validate())
			tc.edit(&c.Mailbox)
			require.ErrorContains(t, c.Validate(), tc.key+":")
		})
	}
}

// TestMailboxFindsTheRecipientsServer: alice uses two rendezvous servers,
// bob only the second; her deposit lands on the second, and the first, if
// she tried it (she tries the servers she is connected to in order, so
// that depends on whether she was connected to the first at that moment),
// refused it (bob has no mailbox there) and stored nothing. The order
// itself, and the fallback from a refusing server to the next, are
// node/offline's unit tests.
func TestMailboxFindsTheRecipientsServer(t *testing.T) {
	ctx := context.Background()
	one, two := startMini(t), startMini(t)
	cfgA := mailConfig(t, append(p2pAddrs(one.h), p2pAddrs(two.h)...))
	cfgB := mailConfig(t, p2pAddrs(two.h))
	skB, err := identity.Generate()
	require.NoError(t, err)
	a := newTestNode(t, cfgA, "alice")
	b := startTestNode(t, cfgB, skB, "bob")
	befriend(t, a, "alice", b, "bob")
	waitToken(t, a, b)
	waitOpened(t, b)
	require.NoError(t, b.Close())
	require.Eventually(t, func() bool { p, _ := a.pathTo(b.ID()); return p == control.PathNone }, 10*time.Second, 20*time.Millisecond)
	// Connected to both, alice most likely tries one first (the
	// fallback); the assertions below hold either way.
	require.Eventually(t, func() bool {
		return a.Host().Network().Connectedness(one.h.ID()) == network.Connected && a.Host().Network().Connectedness(two.h.ID()) == network.Connected
	}, 10*time.Second, 20*time.Millisecond)
	_, err = apiClient(a).Send(ctx, "bob", control.SendRequest{Text: "which one?"})
	require.NoError(t, err)
	waitStatuses(t, a, "bob", control.StatusStored)
	require.Equal(t, 1.0, two.svc.CountBoxes("ok"))
	var offered float64
	for c := range mailbox.CodeUnavailable + 1 {
		offered += one.svc.CountBoxes(mailbox.CodeName(c))
	}
	require.Equal(t, offered, one.svc.CountBoxes("unknown_recipient"), "one refused every box it was offered as unknown_recipient")
	mb, err := apiClient(a).Mailbox(ctx)
	require.NoError(t, err)
	require.Equal(t, two.h.ID().String(), mb.Contacts[0].Server)

	b = restart(t, cfgB, skB, a.ID(), cfgA)
	require.Eventually(t, func() bool {
		h, err := apiClient(b).History(ctx, "alice", "", 10)
		return err == nil && len(h) == 1 && h[0].Text == "which one?"
	}, 30*time.Second, 50*time.Millisecond)
}

// TestMailboxFlushOnStop: alice writes to bob, who is offline, and stops
// her daemon at once, well within mailbox.after: the clean stop seals the
// message into bob's mailbox, so bob gets it when he comes back while
// alice stays offline.
func TestMailboxFlushOnStop(t *testing.T) {
	ctx := context.Background()
	srv, _ := startRendezvous(t)
	addrs := p2pAddrs(srv.Host())
	cfgA, cfgB := mailConfig(t, addrs), mailConfig(t, addrs)
	cfgA.Mailbox.After = time.Hour // only the stop can deposit
	skA, err := identity.Generate()
	require.NoError(t, err)
	skB, err := identity.Generate()
	require.NoError(t, err)
	a := startTestNode(t, cfgA, skA, "alice")
	b := startTestNode(t, cfgB, skB, "bob")
	befriend(t, a, "alice", b, "bob")
	waitToken(t, a, b)
	waitOpened(t, b)

	require.NoError(t, b.Close())
	require.Eventually(t, func() bool { p, _ := a.pathTo(b.ID()); return p == control.PathNone }, 10*time.Second, 20*time.Millisecond)
	m, err := apiClient(a).Send(ctx, "bob", control.SendRequest{Text: "sent on my way out"})
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, a.Close())
	require.Less(t, time.Since(start), cfgA.Mailbox.FlushOnStop+5*time.Second)
	rep, err := srv.Mailboxes(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Totals.Boxes, "the stop sealed the message into bob's mailbox")

	b = restart(t, cfgB, skB, a.ID(), cfgA)
	require.Eventually(t, func() bool {
		h, err := apiClient(b).History(ctx, "alice", "", 100)
		return err == nil && len(h) == 1 && h[0].ID == m.ID && h[0].Text == m.Text
	}, 30*time.Second, 50*time.Millisecond, "bob gets the message from his mailbox, alice offline")
}
