package links_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	rdvproto "github.com/natterim/natter/protocols/rendezvous"
)

// Where natter leans on go-libp2p behaviour that is not a documented
// contract, these tests fail if an upgrade changes it.

// TestHolePunchAPI: holepunch.Service still has DirectConnect (documented
// as exposed for testing; the contact links retry punches with it) and
// its "a punch is running" error.
func TestHolePunchAPI(t *testing.T) {
	var directConnect func(*holepunch.Service, peer.ID) error = (*holepunch.Service).DirectConnect
	require.NotNil(t, directConnect)
	require.Error(t, holepunch.ErrHolePunchActive)
}

// TestHostNetworkIsSwarm: the host's Network is the *swarm.Swarm, whose
// dial backoff the contact links clear before a dial they pace
// themselves.
func TestHostNetworkIsSwarm(t *testing.T) {
	s, _ := startService(t, testConfig(), &fakeContacts{}, nil)
	_, ok := s.Host().Network().(*swarm.Swarm)
	require.True(t, ok, "host network is %T", s.Host().Network())
}

// denyReservations is a relay ACL that refuses every reservation.
type denyReservations struct{}

func (denyReservations) AllowReserve(peer.ID, ma.Multiaddr) bool          { return false }
func (denyReservations) AllowConnect(peer.ID, ma.Multiaddr, peer.ID) bool { return false }

// TestRendezvousLink: against a server that listens on TCP and QUIC, runs
// the registry and a relay that refuses our reservation, the rendezvous
// link
//   - connects once per transport (the dial plan hands each concurrent
//     Connect one transport's addresses, and go-libp2p keeps both
//     connections: what the plan relies on);
//   - registers although the reservation was refused;
//   - says why the reservation failed, in status and in the log, with
//     the relay's answer rather than "err: %!s(<nil>)".
func TestRendezvousLink(t *testing.T) {
	server, err := libp2p.New(libp2p.ListenAddrs(loopbackAddrs()...))
	require.NoError(t, err)
	defer server.Close()
	registry, err := rdvproto.New(server)
	require.NoError(t, err)
	defer registry.Close()
	relay, err := relayv2.New(server, relayv2.WithACL(denyReservations{}))
	require.NoError(t, err)
	defer relay.Close()

	cfg := testConfig()
	cfg.Rendezvous = []peer.AddrInfo{{ID: server.ID(), Addrs: server.Addrs()}}
	logs := &syncBuffer{}
	s, rec := startService(t, cfg, &fakeContacts{}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))

	select {
	case id := <-rec.rdvs:
		require.Equal(t, server.ID(), id)
	case <-time.After(10 * time.Second):
		t.Fatal("rendezvous never connected")
	}
	e := nextEvent(t, rec, control.EventRendezvous)
	require.True(t, e.Connected)
	require.Equal(t, server.ID().String(), e.PeerID)

	var st control.RendezvousStatus
	require.Eventually(t, func() bool {
		st = s.RendezvousStatus()[0]
		return st.Registered
	}, 10*time.Second, 20*time.Millisecond, "registered without a reservation")
	require.True(t, st.Connected)
	require.Equal(t, []string{"quic", "tcp"}, st.Transports, "one connection per transport")
	require.Equal(t, "none", st.Reservation)
	require.Contains(t, st.LastError, "relay reservation")
	require.Contains(t, st.LastError, "PERMISSION_DENIED")
	require.NotContains(t, st.LastError, "%!")
	t.Log("last error:", st.LastError)
	require.Contains(t, logs.String(), "relay reservation failed")
	require.NotContains(t, logs.String(), "%!")

	require.True(t, s.IsRendezvous(server.ID()))
	require.Contains(t, s.ConnectedRendezvous(), server.ID())
	require.Equal(t, []peer.AddrInfo{{ID: server.ID(), Addrs: server.Addrs()}}, s.Rendezvous())
}

// TestForceDirectDialReusesDirectConn: a Connect with
// network.WithForceDirectDial to a peer we already have a direct
// connection with does not dial, even when handed only the addresses of
// another transport: go-libp2p (swarm.dialPeer and the dial worker both
// return bestAcceptableConnToPeer, which with force-direct only skips
// relayed connections) gives back the connection it has. So a second
// transport cannot be added to a live rendezvous connection; the
// rendezvous link redials every transport at once instead (see
// redialTransports).
func TestForceDirectDialReusesDirectConn(t *testing.T) {
	server, err := libp2p.New(libp2p.ListenAddrs(loopbackAddrs()...))
	require.NoError(t, err)
	defer server.Close()
	client, err := libp2p.New(libp2p.ListenAddrs(loopbackAddrs()...))
	require.NoError(t, err)
	defer client.Close()

	only := func(tr string) peer.AddrInfo {
		ai := peer.AddrInfo{ID: server.ID()}
		for _, a := range server.Addrs() {
			if core.Transport(a) == tr {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		require.NotEmpty(t, ai.Addrs, tr)
		return ai
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, client.Connect(ctx, only("quic")))
	client.Peerstore().ClearAddrs(server.ID())
	require.NoError(t, client.Connect(network.WithForceDirectDial(ctx, "second transport"), only("tcp")))
	var ts []string
	for _, c := range client.Network().ConnsToPeer(server.ID()) {
		ts = append(ts, core.Transport(c.RemoteMultiaddr()))
	}
	require.Equal(t, []string{"quic"}, ts, "go-libp2p now dials a second direct connection: redialTransports could dial only the missing transport")
}

// TestRendezvousLinkRedialsLostTransport: when the session loses its TCP
// connection to the server, it reconnects over both transports, takes its
// relay reservation again and registers again, without the session
// ending.
func TestRendezvousLinkRedialsLostTransport(t *testing.T) {
	server, err := libp2p.New(libp2p.ListenAddrs(loopbackAddrs()...))
	require.NoError(t, err)
	defer server.Close()
	registry, err := rdvproto.New(server)
	require.NoError(t, err)
	defer registry.Close()
	relay, err := relayv2.New(server)
	require.NoError(t, err)
	defer relay.Close()

	cfg := testConfig()
	cfg.Rendezvous = []peer.AddrInfo{{ID: server.ID(), Addrs: server.Addrs()}}
	cfg.TransportRedial = 200 * time.Millisecond
	logs := &syncBuffer{}
	s, rec := startService(t, cfg, &fakeContacts{}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	select {
	case <-rec.rdvs:
	case <-time.After(10 * time.Second):
		t.Fatal("rendezvous never connected")
	}
	ready := func() bool {
		st := s.RendezvousStatus()[0]
		return st.Connected && st.Registered && st.Reservation == "active" && slices.Equal(st.Transports, []string{"quic", "tcp"})
	}
	require.Eventually(t, ready, 10*time.Second, 20*time.Millisecond, "both transports, reserved, registered")

	for _, c := range s.Host().Network().ConnsToPeer(server.ID()) {
		if core.Transport(c.RemoteMultiaddr()) == "tcp" {
			require.NoError(t, c.Close())
		}
	}
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "reconnecting over every transport") }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, ready, 10*time.Second, 20*time.Millisecond, "tcp back, reserved and registered again")
	require.Eventually(t, func() bool { return strings.Count(logs.String(), `msg="relay reservation"`) >= 2 }, 10*time.Second, 20*time.Millisecond, "reserved again")
	require.NotContains(t, logs.String(), "rendezvous unavailable", "the session went on")
	var observed []string
	for _, a := range s.ObservedAddrs() {
		observed = append(observed, core.Transport(ma.StringCast(a)))
	}
	require.Contains(t, observed, "tcp")
	require.Contains(t, observed, "quic")
}
