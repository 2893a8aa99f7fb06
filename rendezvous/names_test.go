package rendezvous_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/names"
	"github.com/natterim/natter/rendezvous"
	"github.com/natterim/natter/rendezvous/store"
)

// TestNamesThroughServer: a node claims a name on a running server; the
// online list shows it; the name survives a restart of the server; the
// metrics count the requests.
func TestNamesThroughServer(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsListen = "127.0.0.1:0"
	s, err := rendezvous.New(context.Background(), cfg, rendezvous.WithLogger(testLogger()))
	require.NoError(t, err)
	n, sk := newKeyedNode(t)
	other, _ := newKeyedNode(t)
	connect(t, n, s)
	connect(t, other, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err = names.Register(ctx, n, s.ID(), sk, "Bob-Smith", names.NextSeq(0, time.Now()))
	require.NoError(t, err)
	rec, _, err := names.Lookup(ctx, other, s.ID(), "bob-smith")
	require.NoError(t, err)
	require.Equal(t, n.ID(), rec.Peer)
	op, ok := onlinePeer(s, n.ID())
	require.True(t, ok)
	require.Equal(t, []string{"bob-smith"}, op.Names)
	op, ok = onlinePeer(s, other.ID())
	require.True(t, ok)
	require.Empty(t, op.Names)

	resp, err := http.Get("http://" + s.MetricsAddr() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(body), `natter_names_requests_total{op="register",status="ok"} 1`)
	require.Contains(t, string(body), `natter_names_requests_total{op="lookup",status="ok"} 1`)

	// Restart: the name is still held, by the same key.
	require.NoError(t, s.Close())
	cfg.MetricsListen = ""
	s2 := startServer(t, cfg)
	connect(t, other, s2)
	rec, _, err = names.Lookup(ctx, other, s2.ID(), "bob-smith")
	require.NoError(t, err)
	require.Equal(t, n.ID(), rec.Peer)
	_, err = names.Register(ctx, other, s2.ID(), mustKey(t, other), "bobsmith", names.NextSeq(0, time.Now()))
	require.ErrorIs(t, err, names.ErrTaken)
}

func TestNamesDisabled(t *testing.T) {
	cfg := testConfig(t)
	cfg.Names.Enabled = false
	s := startServer(t, cfg)
	n, sk := newKeyedNode(t)
	connect(t, n, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := names.Register(ctx, n, s.ID(), sk, "bob", names.NextSeq(0, time.Now()))
	require.ErrorContains(t, err, "protocols not supported")
	op, ok := onlinePeer(s, n.ID())
	require.True(t, ok)
	require.Empty(t, op.Names)
}

// TestNamesPersistAndExpireAcrossRestarts runs the directory on the
// server's database over mocknet with a test clock: names survive a
// restart, and a name not renewed for names.inactive_release is released
// even if the server was down in between.
func TestNamesPersistAndExpireAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	mn := mocknet.New()
	defer mn.Close()
	var hosts []host.Host
	var keys []crypto.PrivKey
	for i := range 3 {
		sk, _, err := crypto.GenerateEd25519Key(nil)
		require.NoError(t, err)
		h, err := mn.AddPeer(sk, ma.StringCast(fmt.Sprintf("/ip4/10.0.0.%d/tcp/4001", i+1)))
		require.NoError(t, err)
		hosts, keys = append(hosts, h), append(keys, sk)
	}
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	server, alice, bob := hosts[0], 1, 2

	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := context.Background()
	limits := names.DefaultLimits()
	limits.InactiveRelease = 30 * 24 * time.Hour
	start := func() (*names.Service, *store.Store) {
		db, err := store.Open(ctx, dir)
		require.NoError(t, err)
		svc, err := names.New(server, names.WithRegistry(db.Names()), names.WithLimits(limits), names.WithClock(clock))
		require.NoError(t, err)
		return svc, db
	}
	var seq uint64
	register := func(i int, name string) error {
		seq = names.NextSeq(seq, clock())
		_, err := names.Register(ctx, hosts[i], server.ID(), keys[i], name, seq)
		return err
	}
	stop := func(svc *names.Service, db *store.Store) {
		require.NoError(t, svc.Close())
		require.NoError(t, db.Close())
	}

	svc, db := start()
	require.NoError(t, register(alice, "alice"))
	require.NoError(t, register(alice, "wonderland"))
	stop(svc, db)

	svc, db = start()
	rec, _, err := names.Lookup(ctx, hosts[bob], server.ID(), "alice")
	require.NoError(t, err)
	require.Equal(t, hosts[alice].ID(), rec.Peer)
	require.ErrorIs(t, register(bob, "alice"), names.ErrTaken)
	// Alice renews one of her names only.
	advance(20 * 24 * time.Hour)
	require.NoError(t, register(alice, "alice"))
	stop(svc, db)

	// Down for 15 days: "wonderland" is now 35 days old, "alice" 15.
	advance(15 * 24 * time.Hour)
	svc, db = start()
	defer stop(svc, db)
	_, _, err = names.Lookup(ctx, hosts[bob], server.ID(), "wonderland")
	require.ErrorIs(t, err, names.ErrNotFound)
	ns, err := svc.NamesOf(ctx, hosts[alice].ID())
	require.NoError(t, err)
	require.Equal(t, []string{"alice"}, ns)
	require.NoError(t, register(bob, "wonderland"))
	require.ErrorIs(t, register(bob, "alice"), names.ErrTaken)
	// What the sweeper deletes, it deletes for good.
	n, err := db.Names().DeleteInactive(ctx, clock().Add(-limits.InactiveRelease))
	require.NoError(t, err)
	require.Zero(t, n, "wonderland was re-registered by bob, alice renewed")
}

func newKeyedNode(t *testing.T) (host.Host, crypto.PrivKey) {
	t.Helper()
	h := newNode(t)
	return h, mustKey(t, h)
}

func mustKey(t *testing.T, h host.Host) crypto.PrivKey {
	t.Helper()
	sk := h.Peerstore().PrivKey(h.ID())
	require.NotNil(t, sk)
	return sk
}
