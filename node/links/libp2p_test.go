package links_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
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
