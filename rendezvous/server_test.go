package rendezvous_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	rdvproto "github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/rendezvous"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Process-wide workers of go-libp2p and its dependencies that
		// outlive any one host.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/resource-manager.(*stats).background"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/tcpreuse.(*ConnMgr).run"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/net/swarm.(*dialWorker).loop"),
	)
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testConfig(t *testing.T) rendezvous.Config {
	t.Helper()
	cfg := rendezvous.DefaultConfig()
	// A short data dir path: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "rdv")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	return cfg
}

func startServer(t *testing.T, cfg rendezvous.Config) *rendezvous.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := rendezvous.New(ctx, cfg, rendezvous.WithLogger(testLogger()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// newNode is a plain libp2p host, as a natter node behind NAT would be:
// relay transport on, listening for relayed connections too.
func newNode(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/p2p-circuit"),
		libp2p.DisableMetrics(),
	)
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

func serverInfo(s *rendezvous.Server) peer.AddrInfo {
	return peer.AddrInfo{ID: s.ID(), Addrs: s.Host().Addrs()}
}

func connect(t *testing.T, h host.Host, s *rendezvous.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.Connect(ctx, serverInfo(s)))
}

func onlinePeer(s *rendezvous.Server, p peer.ID) (rendezvous.OnlinePeer, bool) {
	for _, op := range s.Online() {
		if op.PeerID == p {
			return op, true
		}
	}
	return rendezvous.OnlinePeer{}, false
}

func TestIdentifyAndAddrs(t *testing.T) {
	s := startServer(t, testConfig(t))
	addrs := s.Addrs()
	require.NotEmpty(t, addrs)
	for _, a := range addrs {
		id, err := peer.IDFromP2PAddr(a)
		require.NoError(t, err)
		require.Equal(t, s.ID(), id)
	}

	n := newNode(t)
	connect(t, n, s)
	// Identify: the node learns the server's protocols, the relay among
	// them, and the server learns the node's.
	require.Eventually(t, func() bool {
		protos, err := n.Peerstore().GetProtocols(s.ID())
		if err != nil {
			return false
		}
		has := map[string]bool{}
		for _, p := range protos {
			has[string(p)] = true
		}
		return has["/libp2p/circuit/relay/0.2.0/hop"] && has[string(rdvproto.ID)] && has["/natter/kad/1.0.0"] && has[ping.ID]
	}, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		av, err := s.Host().Peerstore().Get(n.ID(), "AgentVersion")
		return err == nil && av != nil
	}, 10*time.Second, 20*time.Millisecond)

	op, ok := onlinePeer(s, n.ID())
	require.True(t, ok)
	require.NotEmpty(t, op.RemoteAddrs)
	require.False(t, op.ConnectedSince.IsZero())
	require.False(t, op.Reservation)
}

func TestReservationRelayAndLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.Relay.CircuitDataLimit = 8 << 20
	s := startServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	b := newNode(t) // the one behind NAT, reachable only through the relay
	connect(t, b, s)
	rsvp, err := client.Reserve(ctx, b, serverInfo(s))
	require.NoError(t, err)
	require.Equal(t, rendezvous.UnlimitedCircuitDuration, rsvp.LimitDuration, "relayed connections must not be cut after a time")
	require.Equal(t, uint64(cfg.Relay.CircuitDataLimit), rsvp.LimitData)
	require.WithinDuration(t, time.Now().Add(cfg.Relay.ReservationTTL), rsvp.Expiration, time.Minute)

	op, ok := onlinePeer(s, b.ID())
	require.True(t, ok)
	require.True(t, op.Reservation)
	require.WithinDuration(t, time.Now().Add(cfg.Relay.ReservationTTL), op.ReservationExpires, time.Minute)
	require.Equal(t, 1, s.Status().Reservations)

	// A reaches B through the relay.
	const echo = "/test/echo/1.0.0"
	b.SetStreamHandler(echo, func(st network.Stream) {
		defer st.Close()
		_, _ = io.Copy(st, st)
	})
	a := newNode(t)
	connect(t, a, s)
	circuit := ma.StringCast("/p2p/" + s.ID().String() + "/p2p-circuit")
	var relayAddrs []ma.Multiaddr
	for _, sa := range s.Host().Addrs() {
		relayAddrs = append(relayAddrs, sa.Encapsulate(circuit))
	}
	require.NoError(t, a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: relayAddrs}))
	conns := a.Network().ConnsToPeer(b.ID())
	require.Len(t, conns, 1)
	st := conns[0].Stat()
	require.True(t, st.Limited, "relayed connections stay limited for the nodes")
	require.Equal(t, rendezvous.UnlimitedCircuitDuration, st.Extra[client.StatLimitDuration])
	require.Equal(t, uint64(cfg.Relay.CircuitDataLimit), st.Extra[client.StatLimitData])

	str, err := a.NewStream(network.WithAllowLimitedConn(ctx, "test"), b.ID(), echo)
	require.NoError(t, err)
	defer str.Close()
	roundTrip := func(msg string) {
		t.Helper()
		require.NoError(t, str.SetDeadline(time.Now().Add(10*time.Second)))
		_, err := str.Write([]byte(msg))
		require.NoError(t, err)
		buf := make([]byte, len(msg))
		_, err = io.ReadFull(str, buf)
		require.NoError(t, err)
		require.Equal(t, msg, string(buf))
	}
	roundTrip("hello through the relay")

	require.Eventually(t, func() bool {
		oa, _ := onlinePeer(s, a.ID())
		ob, _ := onlinePeer(s, b.ID())
		return oa.Circuits == 1 && ob.Circuits == 1 && s.Status().Circuits == 1
	}, 10*time.Second, 20*time.Millisecond)

	// The circuit survives a pause and keeps carrying data: there is no
	// deadline on it (with go-libp2p's defaults it would die after 2
	// minutes or 128 KiB).
	time.Sleep(time.Second)
	roundTrip(strings.Repeat("x", 200<<10))
}

func TestRegisterAndLookup(t *testing.T) {
	s := startServer(t, testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a := newNode(t)
	connect(t, a, s)
	ttl, err := rdvproto.NewClient(a).Register(ctx, s.ID(), rdvproto.PeerNamespace(a.ID()), a.Addrs(), 0)
	require.NoError(t, err)
	require.Equal(t, 2*time.Hour, ttl)

	c := newNode(t)
	connect(t, c, s)
	ai, err := rdvproto.NewClient(c).Lookup(ctx, s.ID(), a.ID())
	require.NoError(t, err)
	require.Equal(t, a.ID(), ai.ID)
	require.ElementsMatch(t, a.Addrs(), ai.Addrs)

	op, ok := onlinePeer(s, a.ID())
	require.True(t, ok)
	require.ElementsMatch(t, a.Addrs(), op.Addrs)
	require.False(t, op.Registered.IsZero())
	require.True(t, op.Expires.After(time.Now()))
	require.Equal(t, 1, s.Status().Registrations)

	// A leaves: it drops off the online list and out of the registry.
	require.NoError(t, a.Network().ClosePeer(s.ID()))
	require.Eventually(t, func() bool {
		_, ok := onlinePeer(s, a.ID())
		return !ok
	}, 10*time.Second, 20*time.Millisecond)
	_, err = rdvproto.NewClient(c).Lookup(ctx, s.ID(), a.ID())
	require.ErrorIs(t, err, rdvproto.ErrNotFound)
	require.Equal(t, 0, s.Status().Registrations)
}

func TestDisconnectDropsReservation(t *testing.T) {
	s := startServer(t, testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := newNode(t)
	connect(t, b, s)
	_, err := client.Reserve(ctx, b, serverInfo(s))
	require.NoError(t, err)
	require.Equal(t, 1, s.Status().Reservations)
	require.NoError(t, b.Network().ClosePeer(s.ID()))
	require.Eventually(t, func() bool { return s.Status().OnlinePeers == 0 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 0, s.Status().Reservations)

	// Back again without a new reservation: none is shown.
	connect(t, b, s)
	op, ok := onlinePeer(s, b.ID())
	require.True(t, ok)
	require.False(t, op.Reservation)
}

func TestHeartbeat(t *testing.T) {
	s := startServer(t, testConfig(t))
	n := newNode(t)
	connect(t, n, s)
	op, _ := onlinePeer(s, n.ID())
	require.True(t, op.LastHeartbeat.IsZero())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := time.Now()
	res := <-ping.Ping(ctx, n, s.ID())
	require.NoError(t, res.Error)
	require.Eventually(t, func() bool {
		op, _ := onlinePeer(s, n.ID())
		return !op.LastHeartbeat.Before(before)
	}, 5*time.Second, 10*time.Millisecond)
}

func TestAdminSocket(t *testing.T) {
	cfg := testConfig(t)
	s := startServer(t, cfg)
	sock := filepath.Join(cfg.DataDir, rendezvous.AdminSocket)
	fi, err := os.Stat(sock)
	require.NoError(t, err)
	require.Equal(t, os.ModeSocket, fi.Mode().Type())
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(cfg.DataDir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	ki, err := os.Stat(filepath.Join(cfg.DataDir, rendezvous.KeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), ki.Mode().Perm())

	n := newNode(t)
	connect(t, n, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ac := rendezvous.NewAdminClient(cfg.DataDir)
	peers, err := ac.Peers(ctx)
	require.NoError(t, err)
	require.Len(t, peers, 1)
	require.Equal(t, n.ID(), peers[0].PeerID)
	require.NotEmpty(t, peers[0].RemoteAddrs)
	st, err := ac.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, s.ID(), st.PeerID)
	require.Equal(t, 1, st.OnlinePeers)
	require.NotEmpty(t, st.Addrs)

	// Close removes the socket; the client then says nobody is running.
	require.NoError(t, s.Close())
	_, err = os.Stat(sock)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = ac.Peers(ctx)
	require.ErrorIs(t, err, rendezvous.ErrNotRunning)
}

func TestStaleSocketIsReplaced(t *testing.T) {
	cfg := testConfig(t)
	require.NoError(t, rendezvous.EnsureDataDir(cfg.DataDir))
	// A socket left by a killed server.
	ln, err := net.Listen("unix", filepath.Join(cfg.DataDir, rendezvous.AdminSocket))
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	startServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = rendezvous.NewAdminClient(cfg.DataDir).Status(ctx)
	require.NoError(t, err)
}

func TestTwoServersOneDataDir(t *testing.T) {
	cfg := testConfig(t)
	s := startServer(t, cfg)
	_, err := rendezvous.New(context.Background(), cfg)
	require.ErrorIs(t, err, rendezvous.ErrAlreadyRunning)
	require.ErrorContains(t, err, cfg.DataDir)
	// The first one is unharmed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := rendezvous.NewAdminClient(cfg.DataDir).Status(ctx)
	require.NoError(t, err)
	require.Equal(t, s.ID(), st.PeerID)
}

func TestSameKeyAcrossRestarts(t *testing.T) {
	cfg := testConfig(t)
	s, err := rendezvous.New(context.Background(), cfg)
	require.NoError(t, err)
	id := s.ID()
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	s2 := startServer(t, cfg)
	require.Equal(t, id, s2.ID())
}

func TestPortInUse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen func(t *testing.T) (string, io.Closer)
	}{
		{"tcp", func(t *testing.T) (string, io.Closer) {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			require.NoError(t, err)
			return "/ip4/127.0.0.1/tcp/" + portOf(l.Addr().String()), l
		}},
		{"quic", func(t *testing.T) (string, io.Closer) {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			require.NoError(t, err)
			return "/ip4/127.0.0.1/udp/" + portOf(c.LocalAddr().String()) + "/quic-v1", c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, c := tc.listen(t)
			defer c.Close()
			cfg := testConfig(t)
			cfg.Listen = append(cfg.Listen, addr)
			_, err := rendezvous.New(context.Background(), cfg)
			require.ErrorIs(t, err, rendezvous.ErrAddrInUse)
			require.EqualError(t, err, "listen "+addr+": address already in use")
			// Nothing is left behind: the data dir can be used at once.
			cfg.Listen = cfg.Listen[:2]
			startServer(t, cfg)
		})
	}
}

func portOf(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

func TestMetrics(t *testing.T) {
	cfg := testConfig(t)
	cfg.MetricsListen = "127.0.0.1:0"
	s := startServer(t, cfg)
	n := newNode(t)
	connect(t, n, s)
	base := "http://" + s.MetricsAddr()

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, body := get("/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)

	code, body = get("/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "natter_rendezvous_online_peers 1")
	require.Contains(t, body, "natter_rendezvous_reservations 0")
	require.Contains(t, body, "natter_rendezvous_registrations 0")
	require.Contains(t, body, `natter_rendezvous_connections_opened_total{transport=`)
	require.Contains(t, body, "libp2p_", "libp2p's own metrics are exported too")
}

func TestMetricsOffByDefault(t *testing.T) {
	s := startServer(t, testConfig(t))
	require.Empty(t, s.MetricsAddr())
}

func TestMetricsPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	cfg := testConfig(t)
	cfg.MetricsListen = l.Addr().String()
	_, err = rendezvous.New(context.Background(), cfg)
	require.EqualError(t, err, "metrics_listen "+l.Addr().String()+": address already in use")
}

func TestAnnounce(t *testing.T) {
	cfg := testConfig(t)
	cfg.Announce = []string{"/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1"}
	s := startServer(t, cfg)
	want := []string{
		"/ip4/203.0.113.7/tcp/4001/p2p/" + s.ID().String(),
		"/ip4/203.0.113.7/udp/4001/quic-v1/p2p/" + s.ID().String(),
	}
	var got []string
	for _, a := range s.Addrs() {
		got = append(got, a.String())
	}
	require.Equal(t, want, got)
	d, err := rendezvous.DialableAddrs(cfg, s.ID())
	require.NoError(t, err)
	require.Len(t, d, 2)
	require.Equal(t, want[0], d[0].String())
}

func TestDHTBootstrap(t *testing.T) {
	s1 := startServer(t, testConfig(t))
	cfg := testConfig(t)
	for _, a := range s1.Addrs() {
		cfg.DHT.Bootstrap = append(cfg.DHT.Bootstrap, a.String())
	}
	s2 := startServer(t, cfg)
	require.Eventually(t, func() bool {
		return s2.Status().DHTPeers == 1 && s1.Status().DHTPeers == 1
	}, 20*time.Second, 50*time.Millisecond)
}

func TestNewRejectsBadConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.Listen = []string{"/ip4/nope"}
	_, err := rendezvous.New(context.Background(), cfg)
	require.ErrorContains(t, err, "listen:")
	_, statErr := os.Stat(cfg.DataDir)
	require.True(t, errors.Is(statErr, os.ErrNotExist), "nothing is created for a bad config")
}
