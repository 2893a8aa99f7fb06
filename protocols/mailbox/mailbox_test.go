package mailbox_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/mailbox"
	"github.com/natterim/natter/protocols/mailbox/pb"
	"github.com/natterim/natter/protocols/mailbox/seal"
	"github.com/natterim/natter/protocols/wire"
	"github.com/natterim/natter/rendezvous/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// node is a mocknet host with its Ed25519 identity.
type node struct {
	host.Host
	key crypto.PrivKey
}

type env struct {
	mn      mocknet.Mocknet
	server  host.Host
	svc     *mailbox.Service
	st      *store.Store
	clock   *fakeClock
	metrics *wire.Metrics
	limits  mailbox.Limits
}

func addNode(t *testing.T, mn mocknet.Mocknet, key crypto.PrivKey) node {
	t.Helper()
	if key == nil {
		var err error
		key, _, err = crypto.GenerateEd25519Key(rand.Reader)
		require.NoError(t, err)
	}
	ip := make(net.IP, 16)
	_, _ = rand.Read(ip[12:])
	ip[0], ip[1] = 0x20, 0x01
	a, err := ma.NewMultiaddr("/ip6/" + ip.String() + "/tcp/4001")
	require.NoError(t, err)
	h, err := mn.AddPeer(key, a)
	require.NoError(t, err)
	return node{h, key}
}

// newEnv starts a mailbox service (backed by the rendezvous store in a
// temporary dir) on a mocknet host.
func newEnv(t *testing.T, edit func(*mailbox.Limits)) *env {
	t.Helper()
	e := &env{
		mn:      mocknet.New(),
		clock:   &fakeClock{now: time.Unix(1_700_000_000, 0)},
		metrics: wire.NewMetrics(prometheus.NewRegistry()),
		limits:  mailbox.DefaultLimits(),
	}
	t.Cleanup(func() { _ = e.mn.Close() })
	e.limits.RequestTimeout = 2 * time.Second
	if edit != nil {
		edit(&e.limits)
	}
	e.server = addNode(t, e.mn, nil).Host
	var err error
	e.st, err = store.Open(context.Background(), t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { e.st.Close() })
	e.svc, err = mailbox.New(e.server, e.st,
		mailbox.WithLimits(e.limits),
		mailbox.WithClock(e.clock.Now),
		mailbox.WithMetrics(e.metrics),
		mailbox.WithRegisterer(prometheus.NewRegistry()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.svc.Close()) })
	return e
}

// client adds a node linked and connected to the server.
func (e *env) client(t *testing.T) node {
	t.Helper()
	n := addNode(t, e.mn, nil)
	require.NoError(t, e.mn.LinkAll())
	_, err := e.mn.ConnectPeers(n.ID(), e.server.ID())
	require.NoError(t, err)
	return n
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func did(b byte) mailbox.DepositID {
	var d mailbox.DepositID
	d[0], d[15] = b, 0x5a
	return d
}

func token(t *testing.T, issuer node, sender peer.ID, exp time.Time) []byte {
	t.Helper()
	tok, err := mailbox.IssueToken(issuer.key, sender, exp)
	require.NoError(t, err)
	return tok
}

func sealed(t *testing.T, from node, to peer.ID, id mailbox.DepositID, text string) mailbox.Item {
	t.Helper()
	b, err := seal.Seal(from.key, to, id, []byte(text), time.Now())
	require.NoError(t, err)
	return mailbox.Item{ID: id, Box: b}
}

// open registers n's mailbox on the server (its first fetch) and returns
// what it holds.
func fetchAll(t *testing.T, n node, server peer.ID) []mailbox.StoredBox {
	t.Helper()
	c := mailbox.NewClient(n)
	var (
		out   []mailbox.StoredBox
		after uint64
	)
	for range 100 {
		boxes, more, err := c.Fetch(ctx(t), server, after, 2)
		require.NoError(t, err)
		out = append(out, boxes...)
		if !more {
			return out
		}
		after = boxes[len(boxes)-1].Seq
	}
	t.Fatal("fetch never ended")
	return nil
}

func TestDepositFetchDeleteStatus(t *testing.T) {
	e := newEnv(t, nil)
	alice, bob := e.client(t), e.client(t)
	require.Empty(t, fetchAll(t, bob, e.server.ID()), "bob's first fetch opens his mailbox")

	ca := mailbox.NewClient(alice)
	tok := token(t, bob, alice.ID(), e.clock.Now().Add(time.Hour))
	its := []mailbox.Item{
		sealed(t, alice, bob.ID(), did(1), "one"),
		sealed(t, alice, bob.ID(), did(2), "two"),
		sealed(t, alice, bob.ID(), did(3), "three"),
	}
	codes, err := ca.Deposit(ctx(t), e.server.ID(), bob.ID(), tok, its)
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{mailbox.CodeOK, mailbox.CodeOK, mailbox.CodeOK}, codes)
	ids := []mailbox.DepositID{did(1), did(2), did(3)}
	fates, err := ca.Status(ctx(t), e.server.ID(), ids)
	require.NoError(t, err)
	for _, f := range fates {
		require.Equal(t, mailbox.StatePending, f.State)
	}

	boxes := fetchAll(t, bob, e.server.ID())
	require.Len(t, boxes, 3)
	for i, b := range boxes {
		require.Equal(t, ids[i], b.ID)
		o, err := seal.Open(bob.key, b.Box, 1<<20)
		require.NoError(t, err)
		require.Equal(t, alice.ID(), o.Sender)
		require.Equal(t, [16]byte(ids[i]), o.DepositID)
		require.Equal(t, []string{"one", "two", "three"}[i], string(o.Payload))
	}
	fates, err = ca.Status(ctx(t), e.server.ID(), ids)
	require.NoError(t, err)
	require.Equal(t, mailbox.StateFetched, fates[0].State)

	n, err := mailbox.NewClient(bob).Delete(ctx(t), e.server.ID(), ids[:2], ids[2:])
	require.NoError(t, err)
	require.Equal(t, 3, n)
	fates, err = ca.Status(ctx(t), e.server.ID(), ids)
	require.NoError(t, err)
	require.Equal(t, []mailbox.State{mailbox.StateDelivered, mailbox.StateDelivered, mailbox.StateRejected},
		[]mailbox.State{fates[0].State, fates[1].State, fates[2].State})
	require.Empty(t, fetchAll(t, bob, e.server.ID()))
	require.Equal(t, 3.0, e.svc.CountBoxes("ok"))
}

// TestRefusals: misbehaving or unlucky clients, one per row. Every refusal
// is answered with its code and counted.
func TestRefusals(t *testing.T) {
	e := newEnv(t, func(l *mailbox.Limits) {
		l.MaxMessages = 3
		l.MaxBoxSize = 2 << 10
		l.DepositBurst = 20
		l.DepositInterval = time.Hour
	})
	alice, bob, carol, mallory := e.client(t), e.client(t), e.client(t), e.client(t)
	srv := e.server.ID()
	fetchAll(t, bob, srv)
	fetchAll(t, carol, srv)
	// dave is a recipient who never came to this server.
	dave := addNode(t, e.mn, nil)
	// An identity whose peer ID does not inline its key.
	ecKey, _, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	require.NoError(t, err)
	ec := addNode(t, e.mn, ecKey)
	require.NoError(t, e.mn.LinkAll())
	_, err = e.mn.ConnectPeers(ec.ID(), srv)
	require.NoError(t, err)
	fetchAll(t, ec, srv)

	exp := e.clock.Now().Add(time.Hour)
	good := token(t, bob, alice.ID(), exp)
	stolen := token(t, bob, carol.ID(), exp) // carol's, used by alice
	// Mallory signs a token "from bob" with her own key.
	mtok, err := mailbox.IssueToken(mallory.key, alice.ID(), exp)
	require.NoError(t, err)
	var forged pb.Token
	require.NoError(t, proto.Unmarshal(mtok, &forged))
	forged.Recipient = []byte(bob.ID())
	forgedTok, err := proto.Marshal(&forged)
	require.NoError(t, err)
	expired := token(t, bob, alice.ID(), e.clock.Now().Add(-time.Second))

	box := func(id byte) mailbox.Item { return sealed(t, alice, bob.ID(), did(id), "hi") }
	type row struct {
		name     string
		from     node
		to       peer.ID
		tok      []byte
		items    []mailbox.Item
		whole    mailbox.Code   // refused as a whole (0: not)
		perItem  []mailbox.Code // else these
		countKey string         // natter_mailbox_deposits_total label that must grow
	}
	rows := []row{
		{name: "no token", from: alice, to: bob.ID(), items: []mailbox.Item{box(1)}, whole: mailbox.CodeBadToken, countKey: "bad_token"},
		{name: "forged token", from: alice, to: bob.ID(), tok: forgedTok, items: []mailbox.Item{box(1)}, whole: mailbox.CodeBadToken, countKey: "bad_token"},
		{name: "someone else's token", from: alice, to: bob.ID(), tok: stolen, items: []mailbox.Item{box(1)}, whole: mailbox.CodeBadToken, countKey: "bad_token"},
		{name: "token for another mailbox", from: alice, to: carol.ID(), tok: good, items: []mailbox.Item{box(1)}, whole: mailbox.CodeBadToken, countKey: "bad_token"},
		{name: "expired token", from: alice, to: bob.ID(), tok: expired, items: []mailbox.Item{box(1)}, whole: mailbox.CodeBadToken, countKey: "bad_token"},
		{name: "garbage token", from: alice, to: bob.ID(), tok: []byte("not a token"), items: []mailbox.Item{box(1)}, whole: mailbox.CodeBadToken, countKey: "bad_token"},
		{name: "recipient without an inline key", from: alice, to: ec.ID(), tok: good, items: []mailbox.Item{box(1)}, whole: mailbox.CodeBadToken, countKey: "bad_token"},
		{name: "unknown recipient", from: alice, to: dave.ID(), tok: token(t, dave, alice.ID(), exp), items: []mailbox.Item{box(1)}, whole: mailbox.CodeUnknownRecipient, countKey: "unknown_recipient"},
		{name: "oversized box", from: alice, to: bob.ID(), tok: good, items: []mailbox.Item{{ID: did(2), Box: make([]byte, 3<<10)}, box(3)},
			perItem: []mailbox.Code{mailbox.CodeTooLarge, mailbox.CodeOK}, countKey: "too_large"},
		{name: "box too short to be sealed", from: alice, to: bob.ID(), tok: good, items: []mailbox.Item{{ID: did(4), Box: []byte("plain text")}},
			perItem: []mailbox.Code{mailbox.CodeMalformed}, countKey: "malformed"},
		{name: "replayed deposit", from: alice, to: bob.ID(), tok: good, items: []mailbox.Item{box(3)},
			perItem: []mailbox.Code{mailbox.CodeDuplicate}, countKey: "duplicate"},
		{name: "over quota", from: alice, to: bob.ID(), tok: good, items: []mailbox.Item{box(5), box(6), box(7)},
			perItem: []mailbox.Code{mailbox.CodeOK, mailbox.CodeOK, mailbox.CodeOverQuota}, countKey: "over_quota"},
		{name: "rate limited", from: alice, to: bob.ID(), tok: good, items: func() []mailbox.Item {
			var its []mailbox.Item
			for i := range 20 {
				its = append(its, box(byte(100+i)))
			}
			return its
		}(), whole: mailbox.CodeRateLimited, countKey: "rate_limited"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			before := e.svc.CountBoxes(r.countKey)
			codes, err := mailbox.NewClient(r.from).Deposit(ctx(t), srv, r.to, r.tok, r.items)
			if r.whole != 0 {
				var re *mailbox.RefusedError
				require.ErrorAs(t, err, &re)
				require.Equal(t, r.whole, re.Code, re.Reason)
				require.NotEmpty(t, re.Reason)
			} else {
				require.NoError(t, err)
				require.Equal(t, r.perItem, codes)
			}
			require.Greater(t, e.svc.CountBoxes(r.countKey), before, "refusal %s not counted", r.countKey)
		})
	}
	// Nothing refused reached bob's mailbox: boxes 3, 5, 6.
	got := fetchAll(t, bob, srv)
	require.Equal(t, []mailbox.DepositID{did(3), did(5), did(6)}, []mailbox.DepositID{got[0].ID, got[1].ID, got[2].ID})
	require.Len(t, got, 3)

	t.Run("someone else's fetch", func(t *testing.T) {
		resp := rawExchange(t, mallory, srv, &pb.Request{Body: &pb.Request_Fetch{Fetch: &pb.Fetch{Owner: []byte(bob.ID())}}})
		require.Equal(t, mailbox.CodeNotOwner, resp.GetCode())
		require.Empty(t, resp.GetItems())
		require.Equal(t, 1.0, e.svc.Count("fetch", "not_owner"))
	})
	t.Run("someone else's delete", func(t *testing.T) {
		resp := rawExchange(t, mallory, srv, &pb.Request{Body: &pb.Request_Delete{Delete: &pb.Delete{Owner: []byte(bob.ID()), Ids: [][]byte{did(3).Bytes()}}}})
		require.Equal(t, mailbox.CodeNotOwner, resp.GetCode())
		require.Equal(t, 1.0, e.svc.Count("delete", "not_owner"))
		require.Len(t, fetchAll(t, bob, srv), 3, "nothing was deleted")
		// Deleting through her own mailbox does not reach bob's boxes.
		n, err := mailbox.NewClient(mallory).Delete(ctx(t), srv, []mailbox.DepositID{did(3)}, nil)
		require.NoError(t, err)
		require.Zero(t, n)
	})
	t.Run("someone else's status", func(t *testing.T) {
		fates, err := mailbox.NewClient(mallory).Status(ctx(t), srv, []mailbox.DepositID{did(3)})
		require.NoError(t, err)
		require.Equal(t, mailbox.StateUnknown, fates[0].State)
		fates, err = mailbox.NewClient(alice).Status(ctx(t), srv, []mailbox.DepositID{did(3)})
		require.NoError(t, err)
		require.Equal(t, mailbox.StateFetched, fates[0].State)
	})
	t.Run("malformed ids", func(t *testing.T) {
		resp := rawExchange(t, alice, srv, &pb.Request{Body: &pb.Request_Deposit{Deposit: &pb.Deposit{
			Recipient: []byte(bob.ID()), Token: good, Items: []*pb.Item{{Id: []byte{1, 2, 3}, Box: box(9).Box}}}}})
		require.Equal(t, mailbox.CodeMalformed, resp.GetCode())
		resp = rawExchange(t, alice, srv, &pb.Request{Body: &pb.Request_Status{Status: &pb.StatusQuery{Ids: [][]byte{{1}}}}})
		require.Equal(t, mailbox.CodeMalformed, resp.GetCode())
		resp = rawExchange(t, alice, srv, &pb.Request{Body: &pb.Request_Deposit{Deposit: &pb.Deposit{Recipient: []byte("x"), Token: good, Items: []*pb.Item{{Id: did(9).Bytes()}}}}})
		require.Equal(t, mailbox.CodeMalformed, resp.GetCode())
	})
}

// rawExchange writes one request as a client would and reads the answer.
func rawExchange(t *testing.T, h host.Host, server peer.ID, req *pb.Request) *pb.Response {
	t.Helper()
	s, err := h.NewStream(ctx(t), server, mailbox.ID)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, wire.WriteMsg(s, req, mailbox.MaxFrameSize))
	require.NoError(t, s.CloseWrite())
	var resp pb.Response
	require.NoError(t, wire.ReadMsg(s, &resp, mailbox.MaxFrameSize))
	return &resp
}

// TestMisbehavingStreams: what cannot be answered resets the stream and is
// counted, and the service goes on working.
func TestMisbehavingStreams(t *testing.T) {
	e := newEnv(t, func(l *mailbox.Limits) { l.RequestTimeout = 300 * time.Millisecond })
	alice := e.client(t)
	frame := func(m *pb.Request) []byte {
		var b bytes.Buffer
		require.NoError(t, wire.WriteMsg(&b, m, mailbox.MaxFrameSize))
		return b.Bytes()
	}
	raw := func(p []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(p))), p...) }
	cases := []struct {
		name   string
		data   []byte
		close  bool
		reason string
	}{
		{"garbage bytes", []byte("\xff\xff\xff\xff\xff\xff"), true, "malformed"},
		{"garbage payload", raw([]byte{0xff, 0xff, 0xff}), true, "malformed"},
		{"oversized frame", binary.AppendUvarint(nil, mailbox.MaxFrameSize+1), true, "oversize"},
		{"huge length prefix", binary.AppendUvarint(nil, 1<<40), true, "malformed"},
		{"request without a body", frame(&pb.Request{}), true, "invalid"},
		{"truncated frame", append(binary.AppendUvarint(nil, 100), 1, 2, 3), true, "eof"},
		{"silent peer", nil, false, "timeout"},
		{"stalls inside a frame", binary.AppendUvarint(nil, 50), false, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.metrics.Count("mailbox", tc.reason)
			s, err := alice.NewStream(ctx(t), e.server.ID(), mailbox.ID)
			require.NoError(t, err)
			defer s.Reset()
			require.NoError(t, s.SetDeadline(time.Now().Add(5*time.Second)))
			_, _ = s.Write(tc.data)
			if tc.close {
				_ = s.CloseWrite()
			}
			_, err = io.ReadAll(s)
			require.ErrorIs(t, err, network.ErrReset, "the server must reset the stream")
			require.Eventually(t, func() bool { return e.metrics.Count("mailbox", tc.reason) == before+1 },
				5*time.Second, time.Millisecond)
			_, _, err = mailbox.NewClient(alice).Fetch(ctx(t), e.server.ID(), 0, 10)
			require.NoError(t, err, "the service still works")
		})
	}
}

func TestExpiryAndFates(t *testing.T) {
	e := newEnv(t, func(l *mailbox.Limits) { l.MaxAge = time.Hour; l.FateTTL = 2 * time.Hour })
	alice, bob := e.client(t), e.client(t)
	srv := e.server.ID()
	fetchAll(t, bob, srv)
	ca := mailbox.NewClient(alice)
	tok := token(t, bob, alice.ID(), e.clock.Now().Add(24*time.Hour))
	_, err := ca.Deposit(ctx(t), srv, bob.ID(), tok, []mailbox.Item{sealed(t, alice, bob.ID(), did(1), "old")})
	require.NoError(t, err)
	e.clock.Advance(30 * time.Minute)
	_, err = ca.Deposit(ctx(t), srv, bob.ID(), tok, []mailbox.Item{sealed(t, alice, bob.ID(), did(2), "newer")})
	require.NoError(t, err)

	e.clock.Advance(30 * time.Minute)
	st, err := e.svc.GC(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 1, st.Expired)
	fates, err := ca.Status(ctx(t), srv, []mailbox.DepositID{did(1), did(2)})
	require.NoError(t, err)
	require.Equal(t, mailbox.StateExpired, fates[0].State)
	require.False(t, fates[0].Fetched)
	require.True(t, fates[0].At.Equal(e.clock.Now()))
	require.Equal(t, mailbox.StatePending, fates[1].State)
	got := fetchAll(t, bob, srv)
	require.Len(t, got, 1)
	require.Equal(t, did(2), got[0].ID)

	// The replay window is the fate's life.
	codes, err := ca.Deposit(ctx(t), srv, bob.ID(), tok, []mailbox.Item{sealed(t, alice, bob.ID(), did(1), "old")})
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{mailbox.CodeDuplicate}, codes)
	e.clock.Advance(2*time.Hour + time.Minute)
	_, err = e.svc.GC(ctx(t))
	require.NoError(t, err)
	fates, err = ca.Status(ctx(t), srv, []mailbox.DepositID{did(1), did(2)})
	require.NoError(t, err)
	require.Equal(t, mailbox.StateUnknown, fates[0].State)
	require.Equal(t, mailbox.StateExpired, fates[1].State, "fetched, then expired")
	require.True(t, fates[1].Fetched)
}

func TestCloseIsIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	alice := e.client(t)
	require.NoError(t, e.svc.Close())
	require.NoError(t, e.svc.Close())
	_, _, err := mailbox.NewClient(alice).Fetch(ctx(t), e.server.ID(), 0, 1)
	require.Error(t, err, "the handler is gone")
}

func TestInvalidLimits(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	h := addNode(t, mn, nil)
	st, err := store.Open(context.Background(), t.TempDir())
	require.NoError(t, err)
	defer st.Close()
	l := mailbox.DefaultLimits()
	l.MaxBoxSize = 10 << 20
	_, err = mailbox.New(h, st, mailbox.WithLimits(l))
	require.ErrorContains(t, err, "max box size")
}

// tokenBook is a TokenReceiver.
type tokenBook struct {
	mu       sync.Mutex
	contacts map[peer.ID]bool
	got      map[peer.ID]mailbox.Token
}

func (b *tokenBook) Allow(_ context.Context, p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.contacts[p]
}

func (b *tokenBook) Token(_ context.Context, from peer.ID, t mailbox.Token) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got[from] = t
	return nil
}

func TestTokenPush(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	alice, bob, mallory := addNode(t, mn, nil), addNode(t, mn, nil), addNode(t, mn, nil)
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	m := wire.NewMetrics(prometheus.NewRegistry())
	book := &tokenBook{contacts: map[peer.ID]bool{bob.ID(): true}, got: map[peer.ID]mailbox.Token{}}
	svc := mailbox.NewTokenService(alice, book, mailbox.WithMetrics(m))
	defer func() { require.NoError(t, svc.Close()) }()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)

	require.NoError(t, mailbox.NewClient(bob).PushToken(ctx(t), alice.ID(), token(t, bob, alice.ID(), exp)))
	require.True(t, book.got[bob.ID()].Expires.Equal(exp))
	require.Equal(t, alice.ID(), book.got[bob.ID()].Sender)

	for _, tc := range []struct {
		name   string
		from   node
		tok    []byte
		reason string
	}{
		{"not a contact", mallory, token(t, mallory, alice.ID(), exp), "refused"},
		{"token naming someone else", bob, token(t, bob, mallory.ID(), exp), "invalid"},
		{"token issued by someone else", bob, token(t, mallory, alice.ID(), exp), "invalid"},
		{"expired token", bob, token(t, bob, alice.ID(), time.Now().Add(-time.Minute)), "invalid"},
		{"garbage", bob, []byte("garbage"), "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := m.Count("mailbox-token", tc.reason)
			err := mailbox.NewClient(tc.from).PushToken(ctx(t), alice.ID(), tc.tok)
			require.Error(t, err)
			require.True(t, errors.Is(err, network.ErrReset) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), "%v", err)
			require.Eventually(t, func() bool { return m.Count("mailbox-token", tc.reason) == before+1 }, 5*time.Second, time.Millisecond)
		})
	}
	require.Len(t, book.got, 1)
	require.NoError(t, svc.Close())
	require.NoError(t, svc.Close())
	err := mailbox.NewClient(bob).PushToken(ctx(t), alice.ID(), token(t, bob, alice.ID(), exp))
	require.Error(t, err, "the handler is gone")
}

// blockingBook is a TokenReceiver whose Allow waits until its context
// ends (the service's, on Close) or release is closed.
type blockingBook struct {
	entered chan struct{}
	release chan struct{}
	left    chan struct{}
}

func (b *blockingBook) Allow(ctx context.Context, _ peer.ID) bool {
	close(b.entered)
	defer close(b.left)
	select {
	case <-ctx.Done():
	case <-b.release:
	}
	return false
}

func (b *blockingBook) Token(context.Context, peer.ID, mailbox.Token) error { return nil }

// TestTokenServiceCloseWaits: Close resets a push being handled and
// returns only once its handler has.
func TestTokenServiceCloseWaits(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	alice, bob := addNode(t, mn, nil), addNode(t, mn, nil)
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	book := &blockingBook{entered: make(chan struct{}), release: make(chan struct{}), left: make(chan struct{})}
	svc := mailbox.NewTokenService(alice, book, mailbox.WithTimeout(time.Minute))
	pushed := make(chan error, 1)
	go func() {
		pushed <- mailbox.NewClient(bob).PushToken(ctx(t), alice.ID(), token(t, bob, alice.ID(), time.Now().Add(time.Hour)))
	}()
	<-book.entered
	require.NoError(t, svc.Close())
	select {
	case <-book.left:
	default:
		t.Fatal("Close returned while a handler was still running")
	}
	require.Error(t, <-pushed)
	require.NoError(t, svc.Close())
}

// TestClientTimeout: WithTimeout bounds a request to a server that never
// answers, even on a transport without deadlines.
func TestClientTimeout(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	alice, srv := addNode(t, mn, nil), addNode(t, mn, nil)
	require.NoError(t, mn.LinkAll())
	_, err := mn.ConnectPeers(alice.ID(), srv.ID())
	require.NoError(t, err)
	// The server reads the request and never answers.
	release := make(chan struct{})
	defer close(release)
	srv.SetStreamHandler(mailbox.ID, func(s network.Stream) {
		_, _ = io.Copy(io.Discard, s)
		<-release
		_ = s.Reset()
	})

	c := mailbox.NewClient(alice, mailbox.WithTimeout(200*time.Millisecond))
	_, _, err = c.Fetch(context.Background(), srv.ID(), 0, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestRateLimitSurvivesRestart: a sender that used its deposit burst does
// not get a fresh one by the server restarting: the buckets are saved on
// Close and restored by New on the same store.
func TestRateLimitSurvivesRestart(t *testing.T) {
	e := newEnv(t, func(l *mailbox.Limits) {
		l.DepositBurst = 3
		l.DepositInterval = time.Hour
	})
	alice, bob := e.client(t), e.client(t)
	srv := e.server.ID()
	fetchAll(t, bob, srv)
	ca := mailbox.NewClient(alice)
	tok := token(t, bob, alice.ID(), e.clock.Now().Add(time.Hour))
	codes, err := ca.Deposit(ctx(t), srv, bob.ID(), tok, []mailbox.Item{
		sealed(t, alice, bob.ID(), did(1), "one"),
		sealed(t, alice, bob.ID(), did(2), "two"),
	})
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{mailbox.CodeOK, mailbox.CodeOK}, codes)

	// Restart the service on the same store.
	require.NoError(t, e.svc.Close())
	svc, err := mailbox.New(e.server, e.st, mailbox.WithLimits(e.limits), mailbox.WithClock(e.clock.Now),
		mailbox.WithMetrics(e.metrics), mailbox.WithRegisterer(prometheus.NewRegistry()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })

	_, err = ca.Deposit(ctx(t), srv, bob.ID(), tok, []mailbox.Item{
		sealed(t, alice, bob.ID(), did(3), "three"),
		sealed(t, alice, bob.ID(), did(4), "four"),
	})
	var re *mailbox.RefusedError
	require.ErrorAs(t, err, &re, "one token left of three, not a fresh burst")
	require.Equal(t, mailbox.CodeRateLimited, re.Code)
	codes, err = ca.Deposit(ctx(t), srv, bob.ID(), tok, []mailbox.Item{sealed(t, alice, bob.ID(), did(3), "three")})
	require.NoError(t, err)
	require.Equal(t, []mailbox.Code{mailbox.CodeOK}, codes)
}
