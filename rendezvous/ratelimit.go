package rendezvous

import (
	"fmt"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	rdvproto "github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/protocols/rendezvous/pb"
	"github.com/natterim/natter/protocols/wire"
)

// newBuckets is a token bucket per key for one of the rate_limits.* (the
// config has the interval between requests; Validate keeps it above 0).
func newBuckets[K comparable](r Rate) *wire.Limiter[K] {
	return wire.NewLimiter[K](1/r.Interval.Seconds(), r.Burst)
}

// limiters holds the server's rate limits (rate_limits.*).
type limiters struct {
	connsPerIP   *wire.Limiter[netip.Prefix]
	regPerPeer   *wire.Limiter[peer.ID]
	regPerIP     *wire.Limiter[netip.Prefix]
	rsvpPerPeer  *wire.Limiter[peer.ID]
	rsvpPerIP    *wire.Limiter[netip.Prefix]
	circuitsPeer *wire.Limiter[peer.ID]
	pingsPerPeer *wire.Limiter[peer.ID]
}

func newLimiters(r RateLimitsConfig) *limiters {
	return &limiters{
		connsPerIP:   newBuckets[netip.Prefix](r.ConnectionsPerIP),
		regPerPeer:   newBuckets[peer.ID](r.RegistryPerPeer),
		regPerIP:     newBuckets[netip.Prefix](r.RegistryPerIP),
		rsvpPerPeer:  newBuckets[peer.ID](r.ReservationsPerPeer),
		rsvpPerIP:    newBuckets[netip.Prefix](r.ReservationsPerIP),
		circuitsPeer: newBuckets[peer.ID](r.CircuitsPerPeer),
		pingsPerPeer: newBuckets[peer.ID](r.PingsPerPeer),
	}
}

// Labels of natter_rendezvous_refused_total{request}.
const (
	reqConnection  = "connection"
	reqReservation = "reservation"
	reqCircuit     = "circuit"
	reqPing        = "ping"
	reqUnregister  = "unregister"
)

// registryGate is the registry's Gate: requests per peer and per source.
func (s *Server) registryGate(r rdvproto.Request) error {
	var err error
	// Per peer first: a peer over its own limit must not drain the
	// bucket it shares with its neighbours behind the same address.
	switch {
	case !s.limits.regPerPeer.Allow(r.Peer):
		err = fmt.Errorf("registry requests of %s: %w", r.Peer, wire.ErrRateLimited)
	case r.Source.IsValid() && !s.limits.regPerIP.Allow(r.Source):
		err = fmt.Errorf("registry requests from %s: %w", r.Source, wire.ErrRateLimited)
	default:
		return nil
	}
	// REGISTER and DISCOVER refusals come back through WithRefusals;
	// UNREGISTER has no answer and is counted here.
	if r.Type == pb.Message_UNREGISTER {
		s.metrics.refused.WithLabelValues(reqUnregister, rdvproto.RefusedRateLimited).Inc()
	}
	return err
}

// gater refuses inbound connections from an address over its rate
// (rate_limits.connections_per_ip) before any handshake.
type gater struct{ s *Server }

var _ interface {
	InterceptAccept(network.ConnMultiaddrs) bool
} = gater{}

func (g gater) InterceptPeerDial(peer.ID) bool               { return true }
func (g gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (g gater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (g gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

func (g gater) InterceptAccept(cm network.ConnMultiaddrs) bool {
	src, ok := wire.SourceKey(cm.RemoteMultiaddr())
	if !ok || g.s.limits.connsPerIP.Allow(src) {
		return true
	}
	g.s.metrics.refused.WithLabelValues(reqConnection, rdvproto.RefusedRateLimited).Inc()
	g.s.log.Debug("connection refused: rate limited", "remote_addr", cm.RemoteMultiaddr())
	return false
}
