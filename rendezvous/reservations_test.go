package rendezvous_test

import (
	"context"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/rendezvous"
)

// nodeWithKey is a node-like client with identity sk whose connections
// come from ip: the same node across restarts.
func nodeWithKey(t *testing.T, ip string, sk crypto.PrivKey) host.Host {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	h, err := libp2p.New(
		libp2p.Identity(sk),
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport, tcp.WithDialerForAddr(func(ma.Multiaddr) (tcp.ContextDialer, error) { return d, nil })),
		libp2p.ListenAddrStrings("/p2p-circuit"),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	)
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

func newKey(t *testing.T) crypto.PrivKey {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	return sk
}

// A node restarted many times in a row (as a user troubleshooting would,
// or a benchmark) gets its reservation every time: each one replaces the
// one before, it is not a new one for rate_limits.reservations_per_peer
// (3 at once here). Odd restarts overlap: the new process reserves while
// the server still holds the old one's connection (a crash, a connection
// not yet timed out).
func TestReservationAcrossRestarts(t *testing.T) {
	s := startServer(t, abuseConfig(t))
	addr, _ := tcpAddr(t, s)
	srv := peer.AddrInfo{ID: s.ID(), Addrs: []ma.Multiaddr{addr}}
	sk := newKey(t)
	id, err := peer.IDFromPrivateKey(sk)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var prev host.Host
	for i := range 8 {
		overlap := i%2 == 1
		if prev != nil && !overlap {
			require.NoError(t, prev.Close())
			require.Eventually(t, func() bool {
				_, online := onlinePeer(s, id)
				return !online
			}, 10*time.Second, 10*time.Millisecond, "restart %d: the server sees the old process leave", i)
		}
		h := nodeWithKey(t, "127.0.0.8", sk)
		require.NoError(t, h.Connect(ctx, srv), "restart %d", i)
		rsvp, err := client.Reserve(ctx, h, srv)
		require.NoError(t, err, "restart %d: reservation", i)
		require.True(t, rsvp.Expiration.After(time.Now()))
		if prev != nil && overlap {
			require.NoError(t, prev.Close())
		}
		prev = h
	}
	require.Eventually(t, func() bool {
		op, ok := onlinePeer(s, id)
		return ok && op.Reservation && len(op.RemoteAddrs) == 1
	}, 10*time.Second, 10*time.Millisecond, "the last process holds the reservation")
	require.Zero(t, refused(t, s, "reservation", "rate_limited"))

	// Renewing in a loop on one connection is still limited per peer: the
	// first reservation was new and took one of the bucket's 3, the
	// replacements none.
	granted := 0
	for range 5 {
		if _, err := client.Reserve(ctx, prev, srv); err == nil {
			granted++
		}
	}
	require.Equal(t, 2, granted)
	require.Positive(t, refused(t, s, "reservation", "rate_limited"))
}

// A flood of distinct keys from one address, each connecting, reserving
// and leaving (so the relay's per-IP cap never fills), is refused by
// rate_limits.reservations_per_ip; so are the same keys coming back on
// new connections (replacements are charged per IP), and a key that
// keeps asking on one connection is refused per peer.
func TestReservationFloodOfKeys(t *testing.T) {
	cfg := abuseConfig(t)
	cfg.RateLimits.ReservationsPerIP = rendezvous.Rate{Burst: 6, Interval: time.Minute}
	// Keys that just left may still hold their slot for a moment.
	cfg.Relay.MaxReservationsPerIP = 64
	s := startServer(t, cfg)
	addr, _ := tcpAddr(t, s)
	srv := peer.AddrInfo{ID: s.ID(), Addrs: []ma.Multiaddr{addr}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	reserveOnce := func(sk crypto.PrivKey) error {
		h := nodeWithKey(t, "127.0.0.9", sk)
		defer h.Close()
		require.NoError(t, h.Connect(ctx, srv))
		_, err := client.Reserve(ctx, h, srv)
		return err
	}
	keys := make([]crypto.PrivKey, 10)
	granted := 0
	for i := range keys {
		keys[i] = newKey(t)
		if reserveOnce(keys[i]) == nil {
			granted++
		}
	}
	for _, sk := range keys {
		if reserveOnce(sk) == nil {
			granted++
		}
	}
	// The per-IP bucket (6, then one a minute; the test takes seconds).
	require.LessOrEqual(t, granted, 7)
	require.GreaterOrEqual(t, granted, 6)
	require.Positive(t, refused(t, s, "reservation", "rate_limited"))

	// Another address is not affected; one key asking in a loop on one
	// connection gets reservations_per_peer (3) and no more.
	h := nodeWithKey(t, "127.0.0.10", newKey(t))
	require.NoError(t, h.Connect(ctx, srv))
	granted = 0
	for range 6 {
		if _, err := client.Reserve(ctx, h, srv); err == nil {
			granted++
		}
	}
	require.Equal(t, 3, granted)
}
