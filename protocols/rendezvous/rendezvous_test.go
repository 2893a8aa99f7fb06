package rendezvous_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/protocols/rendezvous/pb"
	"github.com/natterim/natter/protocols/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

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

// recorder collects service events.
type recorder struct {
	mu     sync.Mutex
	events []rendezvous.Event
}

func (r *recorder) handle(ev rendezvous.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) kinds() []rendezvous.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []rendezvous.EventKind
	for _, ev := range r.events {
		out = append(out, ev.Kind)
	}
	return out
}

type testEnv struct {
	server  host.Host
	svc     *rendezvous.Service
	clients []host.Host
	clock   *fakeClock
	events  *recorder
	metrics *wire.Metrics
}

// newEnv starts a service on one mocknet host and n connected clients.
func newEnv(t *testing.T, n int, opts ...rendezvous.Option) *testEnv {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	server, err := mn.GenPeer()
	require.NoError(t, err)
	e := &testEnv{
		server:  server,
		clock:   newFakeClock(),
		events:  &recorder{},
		metrics: wire.NewMetrics(prometheus.NewRegistry()),
	}
	for range n {
		h, err := mn.GenPeer()
		require.NoError(t, err)
		e.clients = append(e.clients, h)
	}
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	all := append([]rendezvous.Option{
		rendezvous.WithClock(e.clock.Now),
		rendezvous.WithEventHandler(e.events.handle),
		rendezvous.WithMetrics(e.metrics),
	}, opts...)
	e.svc, err = rendezvous.New(server, all...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.svc.Close() })
	return e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func addr(t *testing.T, s string) ma.Multiaddr {
	t.Helper()
	a, err := ma.NewMultiaddr(s)
	require.NoError(t, err)
	return a
}

func statusOf(t *testing.T, err error) pb.Message_ResponseStatus {
	t.Helper()
	var se *rendezvous.StatusError
	require.ErrorAs(t, err, &se)
	return se.Status
}

func TestRegisterLookupRoundTrip(t *testing.T) {
	e := newEnv(t, 2)
	a, b := e.clients[0], e.clients[1]
	addrs := []ma.Multiaddr{addr(t, "/ip4/198.51.100.7/tcp/4001"), addr(t, "/ip4/198.51.100.7/udp/4001/quic-v1")}

	ttl, err := rendezvous.NewClient(a).Register(ctx(t), e.server.ID(), rendezvous.PeerNamespace(a.ID()), addrs, time.Hour)
	require.NoError(t, err)
	require.Equal(t, time.Hour, ttl)

	reg, ok := e.svc.Lookup(a.ID())
	require.True(t, ok)
	require.Equal(t, rendezvous.PeerNamespace(a.ID()), reg.Namespace)
	require.Equal(t, a.ID(), reg.Peer.ID)
	require.Equal(t, addrs, reg.Peer.Addrs)
	require.Equal(t, e.clock.Now(), reg.Registered)
	require.Equal(t, e.clock.Now().Add(time.Hour), reg.Expires)

	ai, err := rendezvous.NewClient(b).Lookup(ctx(t), e.server.ID(), a.ID())
	require.NoError(t, err)
	require.Equal(t, peer.AddrInfo{ID: a.ID(), Addrs: addrs}, ai)

	_, err = rendezvous.NewClient(a).Lookup(ctx(t), e.server.ID(), b.ID())
	require.ErrorIs(t, err, rendezvous.ErrNotFound)
	_, ok = e.svc.Lookup(b.ID())
	require.False(t, ok)

	require.Equal(t, []rendezvous.EventKind{rendezvous.Registered}, e.events.kinds())
	require.Len(t, e.svc.Registrations(), 1)
}

func TestTTL(t *testing.T) {
	cases := []struct {
		name   string
		ttl    time.Duration
		want   time.Duration
		status pb.Message_ResponseStatus
	}{
		{"zero means default", 0, 2 * time.Hour, pb.Message_OK},
		{"minimum", 2 * time.Minute, 2 * time.Minute, pb.Message_OK},
		{"maximum", 72 * time.Hour, 72 * time.Hour, pb.Message_OK},
		{"fraction rounds up", 150*time.Second + time.Millisecond, 151 * time.Second, pb.Message_OK},
		{"below minimum", time.Minute, 0, pb.Message_E_INVALID_TTL},
		{"one second", time.Second, 0, pb.Message_E_INVALID_TTL},
		{"above maximum", 72*time.Hour + time.Second, 0, pb.Message_E_INVALID_TTL},
		{"huge", 1 << 62, 0, pb.Message_E_INVALID_TTL},
	}
	e := newEnv(t, 1)
	c := rendezvous.NewClient(e.clients[0])
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Register(ctx(t), e.server.ID(), "ttl", nil, tc.ttl)
			if tc.status != pb.Message_OK {
				require.Equal(t, tc.status, statusOf(t, err))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			regs := e.svc.Registrations()
			require.Len(t, regs, 1)
			require.Equal(t, e.clock.Now().Add(tc.want), regs[0].Expires)
		})
	}
	// A raw request with a TTL that overflows time.Duration.
	resp := rawRegister(t, e.clients[0], e.server.ID(), &pb.Message_Register{
		Ns: proto.String("ttl"), SignedPeerRecord: sealRecord(t, e.clients[0], e.clients[0].ID()), Ttl: proto.Uint64(1 << 63),
	})
	require.Equal(t, pb.Message_E_INVALID_TTL, resp.GetStatus())
}

func TestExpiry(t *testing.T) {
	e := newEnv(t, 2, rendezvous.WithGCInterval(5*time.Millisecond))
	a, b := e.clients[0], e.clients[1]
	ca := rendezvous.NewClient(a)
	_, err := ca.Register(ctx(t), e.server.ID(), rendezvous.PeerNamespace(a.ID()), nil, 2*time.Minute)
	require.NoError(t, err)
	_, err = ca.Register(ctx(t), e.server.ID(), "long", nil, time.Hour)
	require.NoError(t, err)

	e.clock.Advance(2*time.Minute - time.Second)
	_, ok := e.svc.Lookup(a.ID())
	require.True(t, ok)
	regs, _, err := rendezvous.NewClient(b).Discover(ctx(t), e.server.ID(), "", 0, nil)
	require.NoError(t, err)
	require.Len(t, regs, 2)

	e.clock.Advance(time.Second)
	// Expired registrations are hidden at once, GC or not...
	_, ok = e.svc.Lookup(a.ID())
	require.False(t, ok)
	_, err = rendezvous.NewClient(b).Lookup(ctx(t), e.server.ID(), a.ID())
	require.ErrorIs(t, err, rendezvous.ErrNotFound)
	require.Len(t, e.svc.Registrations(), 1)
	// ...and the GC loop drops them and reports it.
	require.Eventually(t, func() bool {
		k := e.events.kinds()
		return len(k) == 3 && k[2] == rendezvous.Expired
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, []rendezvous.EventKind{rendezvous.Registered, rendezvous.Registered, rendezvous.Expired}, e.events.kinds())

	e.clock.Advance(time.Hour)
	require.Empty(t, e.svc.Registrations())
}

func TestReRegisterReplaces(t *testing.T) {
	e := newEnv(t, 1)
	a := e.clients[0]
	c := rendezvous.NewClient(a)
	ns := rendezvous.PeerNamespace(a.ID())
	first := []ma.Multiaddr{addr(t, "/ip4/192.0.2.1/tcp/1")}
	second := []ma.Multiaddr{addr(t, "/ip4/192.0.2.2/tcp/2"), addr(t, "/ip4/192.0.2.2/udp/2/quic-v1")}

	_, err := c.Register(ctx(t), e.server.ID(), ns, first, time.Hour)
	require.NoError(t, err)
	e.clock.Advance(time.Minute)
	_, err = c.Register(ctx(t), e.server.ID(), ns, second, 2*time.Hour)
	require.NoError(t, err)

	regs := e.svc.Registrations()
	require.Len(t, regs, 1)
	require.Equal(t, second, regs[0].Peer.Addrs)
	require.Equal(t, e.clock.Now().Add(2*time.Hour), regs[0].Expires)

	found, _, err := c.Discover(ctx(t), e.server.ID(), ns, 0, nil)
	require.NoError(t, err)
	require.Len(t, found, 1)
	require.Equal(t, second, found[0].Peer.Addrs)
	require.Equal(t, []rendezvous.EventKind{rendezvous.Registered, rendezvous.Registered}, e.events.kinds())
}

func TestUnregister(t *testing.T) {
	e := newEnv(t, 2)
	a, b := e.clients[0], e.clients[1]
	ca, cb := rendezvous.NewClient(a), rendezvous.NewClient(b)
	for _, ns := range []string{rendezvous.PeerNamespace(a.ID()), "room", "hall"} {
		_, err := ca.Register(ctx(t), e.server.ID(), ns, nil, 0)
		require.NoError(t, err)
	}
	_, err := cb.Register(ctx(t), e.server.ID(), "room", nil, 0)
	require.NoError(t, err)

	// Unregister returns once the server handled it.
	require.NoError(t, ca.Unregister(ctx(t), e.server.ID(), rendezvous.PeerNamespace(a.ID())))
	_, ok := e.svc.Lookup(a.ID())
	require.False(t, ok)
	require.Len(t, e.svc.Registrations(), 3)

	// b unregistering a namespace it is not in changes nothing.
	require.NoError(t, cb.Unregister(ctx(t), e.server.ID(), "hall"))
	require.Len(t, e.svc.Registrations(), 3)

	// An empty namespace removes all of the peer's registrations.
	require.NoError(t, ca.Unregister(ctx(t), e.server.ID(), ""))
	regs := e.svc.Registrations()
	require.Len(t, regs, 1)
	require.Equal(t, b.ID(), regs[0].Peer.ID)

	k := e.events.kinds()
	require.Len(t, k, 7)
	require.Equal(t, []rendezvous.EventKind{rendezvous.Unregistered, rendezvous.Unregistered, rendezvous.Unregistered}, k[4:])
}

func TestRemovePeer(t *testing.T) {
	e := newEnv(t, 2)
	a, b := e.clients[0], e.clients[1]
	for _, h := range []host.Host{a, b} {
		c := rendezvous.NewClient(h)
		for _, ns := range []string{rendezvous.PeerNamespace(h.ID()), "room"} {
			_, err := c.Register(ctx(t), e.server.ID(), ns, nil, 0)
			require.NoError(t, err)
		}
	}
	e.svc.RemovePeer(a.ID())
	e.svc.RemovePeer(a.ID()) // twice is harmless
	regs := e.svc.Registrations()
	require.Len(t, regs, 2)
	for _, r := range regs {
		require.Equal(t, b.ID(), r.Peer.ID)
	}
	_, err := rendezvous.NewClient(b).Lookup(ctx(t), e.server.ID(), a.ID())
	require.ErrorIs(t, err, rendezvous.ErrNotFound)
	found, _, err := rendezvous.NewClient(b).Discover(ctx(t), e.server.ID(), "room", 0, nil)
	require.NoError(t, err)
	require.Len(t, found, 1)
	k := e.events.kinds()
	require.Equal(t, []rendezvous.EventKind{rendezvous.Unregistered, rendezvous.Unregistered}, k[4:])
}

func TestPeerNamespaceOfAnotherPeer(t *testing.T) {
	e := newEnv(t, 2)
	a, b := e.clients[0], e.clients[1]
	_, err := rendezvous.NewClient(b).Register(ctx(t), e.server.ID(), rendezvous.PeerNamespace(a.ID()), nil, 0)
	require.Equal(t, pb.Message_E_NOT_AUTHORIZED, statusOf(t, err))
	require.Contains(t, err.Error(), "E_NOT_AUTHORIZED")
	_, ok := e.svc.Lookup(a.ID())
	require.False(t, ok)
	// The prefix alone is reserved too.
	_, err = rendezvous.NewClient(b).Register(ctx(t), e.server.ID(), rendezvous.PeerNamespacePrefix+"x", nil, 0)
	require.Equal(t, pb.Message_E_NOT_AUTHORIZED, statusOf(t, err))
	require.Empty(t, e.svc.Registrations())
}

// sealRecord returns a signed envelope of a peer record for id, signed
// with h's key.
func sealRecord(t *testing.T, h host.Host, id peer.ID, addrs ...ma.Multiaddr) []byte {
	t.Helper()
	return sealWith(t, h.Peerstore().PrivKey(h.ID()), id, addrs...)
}

func sealWith(t *testing.T, key crypto.PrivKey, id peer.ID, addrs ...ma.Multiaddr) []byte {
	t.Helper()
	env, err := record.Seal(&peer.PeerRecord{PeerID: id, Addrs: addrs, Seq: peer.TimestampSeq()}, key)
	require.NoError(t, err)
	b, err := env.Marshal()
	require.NoError(t, err)
	return b
}

// exchange sends reqs on one stream, closes the write side and returns
// every response read until the server closed the stream.
func exchange(t *testing.T, h host.Host, server peer.ID, reqs ...*pb.Message) ([]*pb.Message, error) {
	t.Helper()
	s, err := h.NewStream(ctx(t), server, rendezvous.ID)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.SetDeadline(time.Now().Add(10*time.Second)))
	// Write while reading: mocknet streams do not buffer, so a server
	// answering the first request blocks until it is read.
	werr := make(chan error, 1)
	go func() {
		for _, r := range reqs {
			if err := wire.WriteMsg(s, r, 1<<20); err != nil {
				werr <- err
				return
			}
		}
		werr <- s.CloseWrite()
	}()
	defer func() { require.NoError(t, <-werr) }()
	var out []*pb.Message
	for {
		var m pb.Message
		err := wire.ReadMsg(s, &m, rendezvous.MaxResponseSize)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, &m)
	}
}

func rawRegister(t *testing.T, h host.Host, server peer.ID, r *pb.Message_Register) *pb.Message_RegisterResponse {
	t.Helper()
	resps, err := exchange(t, h, server, &pb.Message{Type: pb.Message_REGISTER.Enum(), Register: r})
	require.NoError(t, err)
	require.Len(t, resps, 1)
	require.Equal(t, pb.Message_REGISTER_RESPONSE, resps[0].GetType())
	return resps[0].GetRegisterResponse()
}

func TestRegisterRefused(t *testing.T) {
	e := newEnv(t, 2, rendezvous.WithLimits(func() rendezvous.Limits {
		l := rendezvous.DefaultLimits()
		l.MaxAddrs = 2
		l.MaxRecordSize = 1024
		l.MaxNamespaceLen = 16
		return l
	}()))
	a, b := e.clients[0], e.clients[1]
	otherKey, _, err := crypto.GenerateEd25519Key(nil)
	require.NoError(t, err)
	good := sealRecord(t, a, a.ID())
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-1] ^= 1
	many := make([]ma.Multiaddr, 3)
	for i := range many {
		many[i] = addr(t, fmt.Sprintf("/ip4/192.0.2.%d/tcp/1", i+1))
	}
	big := append(bytes.Clone(good), make([]byte, 1024)...)

	cases := []struct {
		name   string
		ns     string
		record []byte
		want   pb.Message_ResponseStatus
	}{
		{"accepted", "room", good, pb.Message_OK},
		{"record of another peer, signed by it", "room", sealRecord(t, b, b.ID()), pb.Message_E_NOT_AUTHORIZED},
		{"own peer ID signed by a different key", "room", sealWith(t, otherKey, a.ID()), pb.Message_E_INVALID_SIGNED_PEER_RECORD},
		{"corrupt signature", "room", corrupt, pb.Message_E_INVALID_SIGNED_PEER_RECORD},
		{"no record", "room", nil, pb.Message_E_INVALID_SIGNED_PEER_RECORD},
		{"garbage record", "room", []byte("not an envelope"), pb.Message_E_INVALID_SIGNED_PEER_RECORD},
		{"oversize record", "room", big, pb.Message_E_INVALID_SIGNED_PEER_RECORD},
		{"too many addrs", "room", sealRecord(t, a, a.ID(), many...), pb.Message_E_INVALID_SIGNED_PEER_RECORD},
		{"empty namespace", "", good, pb.Message_E_INVALID_NAMESPACE},
		{"long namespace", "0123456789abcdefg", good, pb.Message_E_INVALID_NAMESPACE},
		{"control character", "room\n", good, pb.Message_E_INVALID_NAMESPACE},
		{"invalid UTF-8", "room\xff", good, pb.Message_E_INVALID_NAMESPACE},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawRegister(t, a, e.server.ID(), &pb.Message_Register{Ns: proto.String(tc.ns), SignedPeerRecord: tc.record})
			require.Equal(t, tc.want, resp.GetStatus(), resp.GetStatusText())
			if tc.want != pb.Message_OK {
				require.NotEmpty(t, resp.GetStatusText())
			}
		})
	}
	regs := e.svc.Registrations()
	require.Len(t, regs, 1)
	require.Equal(t, a.ID(), regs[0].Peer.ID)
}

func TestDiscoverPaging(t *testing.T) {
	l := rendezvous.DefaultLimits()
	l.MaxDiscoverLimit = 3
	e := newEnv(t, 5, rendezvous.WithLimits(l))
	for _, h := range e.clients {
		_, err := rendezvous.NewClient(h).Register(ctx(t), e.server.ID(), "room", []ma.Multiaddr{addr(t, "/ip4/192.0.2.1/tcp/1")}, 0)
		require.NoError(t, err)
	}
	_, err := rendezvous.NewClient(e.clients[0]).Register(ctx(t), e.server.ID(), "other", nil, 0)
	require.NoError(t, err)

	c := rendezvous.NewClient(e.clients[0])
	var (
		cookie []byte
		seen   []peer.ID
	)
	for _, want := range []int{2, 2, 1, 0} {
		regs, next, err := c.Discover(ctx(t), e.server.ID(), "room", 2, cookie)
		require.NoError(t, err)
		require.Len(t, regs, want)
		require.NotEmpty(t, next)
		for _, r := range regs {
			require.Equal(t, "room", r.Namespace)
			seen = append(seen, r.Peer.ID)
		}
		cookie = next
	}
	for i, h := range e.clients {
		require.Equal(t, h.ID(), seen[i], "registration order")
	}

	// With the last cookie, only what is newer: a refresh of client 2.
	_, err = rendezvous.NewClient(e.clients[2]).Register(ctx(t), e.server.ID(), "room", nil, time.Hour)
	require.NoError(t, err)
	regs, _, err := c.Discover(ctx(t), e.server.ID(), "room", 0, cookie)
	require.NoError(t, err)
	require.Len(t, regs, 1)
	require.Equal(t, e.clients[2].ID(), regs[0].Peer.ID)
	require.WithinDuration(t, time.Now().Add(time.Hour), regs[0].Expires, time.Minute)

	// Limit 0 and limits above the server's maximum get the maximum.
	for _, limit := range []int{0, 100} {
		regs, _, err := c.Discover(ctx(t), e.server.ID(), "room", limit, nil)
		require.NoError(t, err)
		require.Len(t, regs, 3)
	}

	// The empty namespace pages over every namespace.
	var total int
	cookie = nil
	for range 4 {
		regs, next, err := c.Discover(ctx(t), e.server.ID(), "", 0, cookie)
		require.NoError(t, err)
		total += len(regs)
		cookie = next
	}
	require.Equal(t, 6, total)

	// A namespace nobody registered in.
	regs, next, err := c.Discover(ctx(t), e.server.ID(), "empty", 0, nil)
	require.NoError(t, err)
	require.Empty(t, regs)
	_, _, err = c.Discover(ctx(t), e.server.ID(), "empty", 0, next)
	require.NoError(t, err)
}

func TestBadCookie(t *testing.T) {
	e := newEnv(t, 1)
	c := rendezvous.NewClient(e.clients[0])
	_, err := c.Register(ctx(t), e.server.ID(), "room", nil, 0)
	require.NoError(t, err)
	_, good, err := c.Discover(ctx(t), e.server.ID(), "room", 0, nil)
	require.NoError(t, err)
	_, _, err = c.Discover(ctx(t), e.server.ID(), "room", 0, good)
	require.NoError(t, err)

	future := bytes.Clone(good)
	binary.BigEndian.PutUint64(future[1:9], ^uint64(0))
	cases := map[string]struct {
		ns     string
		cookie []byte
	}{
		"garbage":            {"room", []byte("garbage")},
		"truncated":          {"room", good[:len(good)-1]},
		"extended":           {"room", append(bytes.Clone(good), 0)},
		"other namespace":    {"hall", good},
		"all namespaces":     {"", good},
		"from the future":    {"room", future},
		"unknown version":    {"room", append([]byte{9}, good[1:]...)},
		"namespace cookie 0": {"room", make([]byte, len(good))},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := c.Discover(ctx(t), e.server.ID(), tc.ns, 0, tc.cookie)
			require.Equal(t, pb.Message_E_INVALID_COOKIE, statusOf(t, err))
		})
	}
	_, _, err = c.Discover(ctx(t), e.server.ID(), "bad\x00ns", 0, nil)
	require.Equal(t, pb.Message_E_INVALID_NAMESPACE, statusOf(t, err))
}

func TestLimits(t *testing.T) {
	l := rendezvous.DefaultLimits()
	l.MaxRegistrationsPerPeer = 2
	l.MaxRegistrations = 3
	e := newEnv(t, 2, rendezvous.WithLimits(l))
	ca, cb := rendezvous.NewClient(e.clients[0]), rendezvous.NewClient(e.clients[1])
	reg := func(c *rendezvous.Client, ns string, ttl time.Duration) error {
		_, err := c.Register(ctx(t), e.server.ID(), ns, nil, ttl)
		return err
	}
	require.NoError(t, reg(ca, "a", 2*time.Minute))
	require.NoError(t, reg(ca, "b", time.Hour))
	require.Equal(t, pb.Message_E_NOT_AUTHORIZED, statusOf(t, reg(ca, "c", 0)), "per-peer limit")
	require.NoError(t, reg(ca, "a", 2*time.Minute), "a refresh is not a new registration")

	require.NoError(t, reg(cb, "a", time.Hour))
	require.Equal(t, pb.Message_E_UNAVAILABLE, statusOf(t, reg(cb, "b", 0)), "global limit")

	// Once ca's "a" expired, there is room again under both limits.
	e.clock.Advance(3 * time.Minute)
	require.NoError(t, reg(ca, "c", 0))
	require.Equal(t, pb.Message_E_UNAVAILABLE, statusOf(t, reg(cb, "b", 0)))
	require.Len(t, e.svc.Registrations(), 3)
	require.Contains(t, e.events.kinds(), rendezvous.Expired)
}

func TestMisbehavingPeers(t *testing.T) {
	l := rendezvous.DefaultLimits()
	l.RequestTimeout = 300 * time.Millisecond
	e := newEnv(t, 1, rendezvous.WithLimits(l))
	frame := func(m *pb.Message) []byte {
		var b bytes.Buffer
		require.NoError(t, wire.WriteMsg(&b, m, 1<<20))
		return b.Bytes()
	}
	raw := func(payload []byte) []byte {
		return append(binary.AppendUvarint(nil, uint64(len(payload))), payload...)
	}
	goodDiscover := frame(&pb.Message{Type: pb.Message_DISCOVER.Enum(), Discover: &pb.Message_Discover{Ns: proto.String("room")}})

	cases := []struct {
		name   string
		data   []byte
		close  bool // close the write side after data
		reason string
		// responses read before the reset (a reset may drop unread data,
		// so only where the server waits after answering)
		before int
	}{
		{"garbage bytes", []byte("\xff\xff\xff\xff\xff\xff"), true, "malformed", 0},
		{"garbage payload", raw([]byte{0xff, 0xff, 0xff}), true, "malformed", 0},
		{"oversized length prefix", binary.AppendUvarint(nil, 1<<24), true, "oversize", 0},
		{"over request limit", binary.AppendUvarint(nil, 64<<10), true, "oversize", 0},
		{"unknown type", raw([]byte{0x08, 0x63}), true, "invalid", 0},
		{"no type", raw(nil), true, "malformed", 0},
		{"response type", frame(&pb.Message{Type: pb.Message_REGISTER_RESPONSE.Enum(), RegisterResponse: &pb.Message_RegisterResponse{}}), true, "invalid", 0},
		{"discover response", frame(&pb.Message{Type: pb.Message_DISCOVER_RESPONSE.Enum(), DiscoverResponse: &pb.Message_DiscoverResponse{}}), true, "invalid", 0},
		{"type without body", frame(&pb.Message{Type: pb.Message_REGISTER.Enum()}), true, "malformed", 0},
		{"unregister bad namespace", frame(&pb.Message{Type: pb.Message_UNREGISTER.Enum(), Unregister: &pb.Message_Unregister{Ns: proto.String("a\x00")}}), true, "invalid", 0},
		{"truncated frame", append(binary.AppendUvarint(nil, 10), 1, 2), true, "eof", 0},
		{"good then garbage", append(bytes.Clone(goodDiscover), 0xff, 0xff, 0xff, 0xff, 0xff), true, "malformed", 0},
		{"silent peer", nil, false, "timeout", 0},
		{"stalls after a request", goodDiscover, false, "timeout", 1},
	}
	h := e.clients[0]
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.metrics.Count(string(rendezvous.ID), tc.reason)
			s, err := h.NewStream(ctx(t), e.server.ID(), rendezvous.ID)
			require.NoError(t, err)
			defer s.Reset()
			require.NoError(t, s.SetDeadline(time.Now().Add(5*time.Second)))
			// The server may reset before it read everything: write
			// errors are expected.
			_, _ = s.Write(tc.data)
			if tc.close {
				_ = s.CloseWrite()
			}
			for range tc.before {
				var m pb.Message
				require.NoError(t, wire.ReadMsg(s, &m, rendezvous.MaxResponseSize))
				require.Equal(t, pb.Message_DISCOVER_RESPONSE, m.GetType())
			}
			_, err = io.ReadAll(s)
			require.ErrorIs(t, err, network.ErrReset, "the server must reset the stream")
			require.Eventually(t, func() bool {
				return e.metrics.Count(string(rendezvous.ID), tc.reason) == before+1
			}, 5*time.Second, time.Millisecond)

			// The service still works.
			_, err = rendezvous.NewClient(h).Register(ctx(t), e.server.ID(), rendezvous.PeerNamespace(h.ID()), nil, 0)
			require.NoError(t, err)
		})
	}
}

func TestSequentialRequestsOnOneStream(t *testing.T) {
	e := newEnv(t, 1)
	h := e.clients[0]
	rec := sealRecord(t, h, h.ID())
	resps, err := exchange(t, h, e.server.ID(),
		&pb.Message{Type: pb.Message_REGISTER.Enum(), Register: &pb.Message_Register{Ns: proto.String("room"), SignedPeerRecord: rec}},
		&pb.Message{Type: pb.Message_DISCOVER.Enum(), Discover: &pb.Message_Discover{Ns: proto.String("room")}},
		&pb.Message{Type: pb.Message_UNREGISTER.Enum(), Unregister: &pb.Message_Unregister{Ns: proto.String("room")}},
		&pb.Message{Type: pb.Message_DISCOVER.Enum(), Discover: &pb.Message_Discover{Ns: proto.String("room")}},
		&pb.Message{Type: pb.Message_REGISTER.Enum(), Register: &pb.Message_Register{Ns: proto.String(""), SignedPeerRecord: rec}},
	)
	require.NoError(t, err)
	require.Len(t, resps, 4)
	require.Equal(t, pb.Message_OK, resps[0].GetRegisterResponse().GetStatus())
	require.Equal(t, uint64(7200), resps[0].GetRegisterResponse().GetTtl())
	require.Len(t, resps[1].GetDiscoverResponse().GetRegistrations(), 1)
	require.Equal(t, rec, resps[1].GetDiscoverResponse().GetRegistrations()[0].GetSignedPeerRecord())
	require.Empty(t, resps[2].GetDiscoverResponse().GetRegistrations())
	require.Equal(t, pb.Message_E_INVALID_NAMESPACE, resps[3].GetRegisterResponse().GetStatus())
}

// fakeServer answers every DISCOVER with regs.
func fakeServer(t *testing.T, h host.Host, regs []*pb.Message_Register) {
	h.SetStreamHandler(rendezvous.ID, func(s network.Stream) {
		defer s.Close()
		var req pb.Message
		if err := wire.ReadMsg(s, &req, 1<<20); err != nil {
			_ = s.Reset()
			return
		}
		_ = wire.WriteMsg(s, &pb.Message{
			Type:             pb.Message_DISCOVER_RESPONSE.Enum(),
			DiscoverResponse: &pb.Message_DiscoverResponse{Status: pb.Message_OK.Enum(), Registrations: regs},
		}, 1<<20)
	})
}

func TestLookupVerifiesRecords(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	var hosts []host.Host
	for range 4 {
		h, err := mn.GenPeer()
		require.NoError(t, err)
		hosts = append(hosts, h)
	}
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	server, client, p, q := hosts[0], hosts[1], hosts[2], hosts[3]
	otherKey, _, err := crypto.GenerateEd25519Key(nil)
	require.NoError(t, err)
	pns := rendezvous.PeerNamespace(p.ID())
	pAddr := addr(t, "/ip4/203.0.113.5/tcp/4001")
	bad := []*pb.Message_Register{
		{Ns: proto.String(pns), SignedPeerRecord: sealWith(t, otherKey, p.ID(), addr(t, "/ip4/6.6.6.6/tcp/1"))}, // forged
		{Ns: proto.String(pns), SignedPeerRecord: sealRecord(t, q, q.ID(), addr(t, "/ip4/6.6.6.7/tcp/1"))},      // q's own record
		{Ns: proto.String(pns), SignedPeerRecord: []byte("garbage")},
		{Ns: proto.String("elsewhere"), SignedPeerRecord: sealRecord(t, p, p.ID(), addr(t, "/ip4/6.6.6.8/tcp/1"))}, // wrong namespace
	}
	c := rendezvous.NewClient(client)

	fakeServer(t, server, bad)
	_, err = c.Lookup(ctx(t), server.ID(), p.ID())
	require.ErrorIs(t, err, rendezvous.ErrNotFound)

	good := &pb.Message_Register{Ns: proto.String(pns), SignedPeerRecord: sealRecord(t, p, p.ID(), pAddr), Ttl: proto.Uint64(60)}
	fakeServer(t, server, append(bad, good))
	ai, err := c.Lookup(ctx(t), server.ID(), p.ID())
	require.NoError(t, err)
	require.Equal(t, peer.AddrInfo{ID: p.ID(), Addrs: []ma.Multiaddr{pAddr}}, ai)

	// Discover drops the unverifiable ones too.
	regs, _, err := c.Discover(ctx(t), server.ID(), pns, 0, nil)
	require.NoError(t, err)
	require.Len(t, regs, 1)
	require.WithinDuration(t, time.Now().Add(time.Minute), regs[0].Expires, 5*time.Second)
}

func TestClientErrors(t *testing.T) {
	e := newEnv(t, 1)
	c := rendezvous.NewClient(e.clients[0])
	_, err := c.Register(ctx(t), e.server.ID(), "room", nil, -time.Second)
	require.Error(t, err)

	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Register(cctx, e.server.ID(), "room", nil, 0)
	require.ErrorIs(t, err, context.Canceled)

	// A server that never answers: the context bounds the call.
	release, done := make(chan struct{}), make(chan struct{})
	e.server.SetStreamHandler(rendezvous.ID, func(s network.Stream) {
		defer close(done)
		<-release
		_ = s.Reset()
	})
	tctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = c.Discover(tctx, e.server.ID(), "room", 0, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(release)
	<-done
}

func TestCloseRemovesHandler(t *testing.T) {
	e := newEnv(t, 1)
	c := rendezvous.NewClient(e.clients[0])
	_, err := c.Register(ctx(t), e.server.ID(), "room", nil, 0)
	require.NoError(t, err)
	require.NoError(t, e.svc.Close())
	require.NoError(t, e.svc.Close())
	_, err = c.Register(ctx(t), e.server.ID(), "room", nil, 0)
	require.Error(t, err)
	var se *rendezvous.StatusError
	require.False(t, errors.As(err, &se))
}

func TestInvalidLimits(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	h, err := mn.GenPeer()
	require.NoError(t, err)
	for name, mod := range map[string]func(*rendezvous.Limits){
		"min above max":        func(l *rendezvous.Limits) { l.MinTTL = 100 * time.Hour },
		"default out of range": func(l *rendezvous.Limits) { l.DefaultTTL = time.Minute },
		"huge record":          func(l *rendezvous.Limits) { l.MaxRecordSize = 2 << 20 },
		"zero per peer":        func(l *rendezvous.Limits) { l.MaxRegistrationsPerPeer = 0 },
		"zero timeout":         func(l *rendezvous.Limits) { l.RequestTimeout = 0 },
	} {
		l := rendezvous.DefaultLimits()
		mod(&l)
		_, err := rendezvous.New(h, rendezvous.WithLimits(l))
		require.Error(t, err, name)
	}
}
