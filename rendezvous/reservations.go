package rendezvous

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	rdvproto "github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/protocols/wire"
)

// A peer's relay reservation requests fall in three kinds, and
// rate_limits.reservations_per_peer charges two of them:
//
//	new          the peer holds no reservation admitted within
//	             relay.reservation_ttl: charged per peer and per IP
//	refresh      again on the connection its reservation was admitted on
//	             (a node renews at 3/4 of the TTL, when its bucket is long
//	             full again): charged per peer and per IP, so a peer that
//	             asks in a loop is refused
//	replacement  on a connection opened after its last reservation was
//	             admitted, still within the TTL: the same node back after a
//	             restart or a reconnect (the relay dropped its reservation
//	             with the old connection, or replaces it). Not a new
//	             reservation: charged per IP only. One per connection, and
//	             connections are rate-limited per IP
//	             (rate_limits.connections_per_ip)
//
// Without the replacement kind, the fifth restart of a node within a
// minute got PERMISSION_DENIED and the node stayed unreachable through
// the relay for a minute. A flood of distinct keys is made only of new
// reservations, and the per-IP buckets and caps still stop it.

// admitted is the last reservation the ACL admitted for a peer. It
// outlives the peer's connections (the relay forgets a reservation when
// the peer disconnects), until it expires.
type admitted struct {
	at      time.Time // when it was admitted
	expires time.Time // at + relay.reservation_ttl
}

// maxAdmitted bounds the admitted reservations remembered: twice the
// reservations the relay may hold. When full, a peer's reservation is not
// remembered and its next request counts as new: the limits only get
// stricter.
func (s *Server) maxAdmitted() int { return 2 * s.cfg.Relay.MaxReservations }

// isReplacement reports whether p's reservation request on the connection
// from addr replaces the reservation last admitted for it (see above).
func (s *Server) isReplacement(p peer.ID, addr ma.Multiaddr, now time.Time) bool {
	s.mu.Lock()
	last, ok := s.admitted[p]
	s.mu.Unlock()
	if !ok || !last.expires.After(now) {
		return false
	}
	c := connFrom(s.h.Network(), p, addr)
	return c != nil && c.Stat().Opened.After(last.at)
}

// admit remembers a reservation admitted for p at now. s.mu must be held.
func (s *Server) admit(p peer.ID, now, expires time.Time) {
	if _, ok := s.admitted[p]; !ok && len(s.admitted) >= s.maxAdmitted() {
		return
	}
	s.admitted[p] = admitted{at: now, expires: expires}
}

// forgetExpiredAdmitted drops the remembered reservations that expired.
// s.mu must be held.
func (s *Server) forgetExpiredAdmitted(now time.Time) {
	for p, a := range s.admitted {
		if !a.expires.After(now) {
			delete(s.admitted, p)
		}
	}
}

// connFrom returns p's connection whose remote end is addr (the oldest if
// several are), or nil.
func connFrom(n network.Network, p peer.ID, addr ma.Multiaddr) network.Conn {
	var found network.Conn
	for _, c := range n.ConnsToPeer(p) {
		if !c.RemoteMultiaddr().Equal(addr) {
			continue
		}
		if found == nil || c.Stat().Opened.Before(found.Stat().Opened) {
			found = c
		}
	}
	return found
}

// acl is the relay service's access control: it admits everyone (the
// relay enforces the limits) within the rate limits, and records
// reservations and circuits.
type acl struct{ s *Server }

func (a acl) AllowReserve(p peer.ID, addr ma.Multiaddr) bool {
	s := a.s
	now := time.Now()
	if l := s.limits; l != nil {
		replacement := s.isReplacement(p, addr, now)
		src, ok := wire.SourceKey(addr)
		// Per peer first, as for the registry (registryGate).
		if (!replacement && !l.rsvpPerPeer.Allow(p)) || (ok && !l.rsvpPerIP.Allow(src)) {
			s.metrics.refused.WithLabelValues(reqReservation, rdvproto.RefusedRateLimited).Inc()
			s.log.Debug("relay reservation refused: rate limited", "peer", p, "remote_addr", addr, "replacement", replacement)
			return false
		}
	}
	exp := now.Add(s.cfg.Relay.ReservationTTL)
	s.mu.Lock()
	s.state(p).reservationExpires = exp
	s.admit(p, now, exp)
	s.mu.Unlock()
	s.metrics.reservationRequests.Inc()
	s.log.Info("relay reservation", "peer", p, "remote_addr", addr, "expires", exp.Format(time.RFC3339))
	return true
}

func (a acl) AllowConnect(src peer.ID, srcAddr ma.Multiaddr, dest peer.ID) bool {
	s := a.s
	if s.limits != nil && !s.limits.circuitsPeer.Allow(src) {
		s.metrics.refused.WithLabelValues(reqCircuit, rdvproto.RefusedRateLimited).Inc()
		s.log.Debug("relay circuit refused: rate limited", "src", src, "dst", dest)
		return false
	}
	s.metrics.circuitRequests.Inc()
	s.log.Info("relay circuit", "src", src, "src_addr", srcAddr, "dst", dest)
	return true
}
