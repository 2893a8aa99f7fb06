package rendezvous

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"

	rdvproto "github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/protocols/wire"
)

// registeredTag marks, in the connection manager, peers registered under
// their own namespace (the relay tags reservations with weight 10).
const (
	registeredTag       = "natter-registered"
	registeredTagWeight = 5
)

// OnlinePeer is one connected peer as the server sees it.
type OnlinePeer struct {
	PeerID peer.ID `json:"peer_id"`
	// Names are the directory names it holds (empty if none).
	Names []string `json:"names"`
	// Addrs are the addresses the peer registered (empty if it did not).
	Addrs []ma.Multiaddr `json:"addrs"`
	// RemoteAddrs are the remote ends of its current connections.
	RemoteAddrs []ma.Multiaddr `json:"remote_addrs"`
	// Registered and Expires bound its rendezvous registration.
	Registered time.Time `json:"registered,omitzero"`
	Expires    time.Time `json:"expires,omitzero"`
	// Reservation tells whether it holds a relay reservation, until
	// ReservationExpires (it refreshes it before then).
	Reservation        bool      `json:"reservation"`
	ReservationExpires time.Time `json:"reservation_expires,omitzero"`
	// LastHeartbeat is the last ping it sent us.
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	// ConnectedSince is when its oldest open connection was opened.
	ConnectedSince time.Time `json:"connected_since"`
	// Circuits is the number of relayed connections it has open through us
	// (as source or destination).
	Circuits int `json:"circuits"`
	// Presence is the server's own view, from registration and heartbeats:
	// "online" (registered, heartbeat within HeartbeatStale), "stale"
	// (registered, heartbeats overdue: about to be dropped), or
	// "connected" (not registered: starting up, or not a natter node).
	// What users set (away, busy) is shared with their contacts only.
	Presence string `json:"presence"`
}

// HeartbeatStale is how old a registered peer's last heartbeat may be
// before the online list calls it stale (nodes ping every 10 s by
// default).
const HeartbeatStale = time.Minute

// Presence values of OnlinePeer.Presence.
const (
	PresenceOnline    = "online"
	PresenceStale     = "stale"
	PresenceConnected = "connected"
)

func presenceOf(op OnlinePeer, now time.Time) string {
	if op.Registered.IsZero() {
		return PresenceConnected
	}
	last := op.Registered
	for _, t := range []time.Time{op.LastHeartbeat, op.ConnectedSince} {
		if t.After(last) {
			last = t
		}
	}
	if now.Sub(last) > HeartbeatStale {
		return PresenceStale
	}
	return PresenceOnline
}

// Status summarises the server.
type Status struct {
	PeerID        peer.ID        `json:"peer_id"`
	Addrs         []ma.Multiaddr `json:"addrs"`
	Started       time.Time      `json:"started"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	OnlinePeers   int            `json:"online_peers"`
	Reservations  int            `json:"reservations"`
	Registrations int            `json:"registrations"`
	Circuits      int            `json:"circuits"`
	DHT           bool           `json:"dht"`
	DHTPeers      int            `json:"dht_peers"`
}

// Online lists the connected peers, sorted by peer ID.
func (s *Server) Online() []OnlinePeer {
	now := time.Now()
	var out []OnlinePeer
	for _, p := range s.h.Network().Peers() {
		conns := s.h.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		op := OnlinePeer{PeerID: p, Addrs: []ma.Multiaddr{}, Names: s.namesOf(p)}
		if op.Names == nil {
			op.Names = []string{}
		}
		for _, c := range conns {
			op.RemoteAddrs = append(op.RemoteAddrs, c.RemoteMultiaddr())
			if opened := c.Stat().Opened; op.ConnectedSince.IsZero() || opened.Before(op.ConnectedSince) {
				op.ConnectedSince = opened
			}
			op.Circuits += circuitsOn(c)
		}
		if reg, ok := s.rdv.Lookup(p); ok {
			op.Addrs = reg.Peer.Addrs
			op.Registered, op.Expires = reg.Registered, reg.Expires
		}
		s.mu.Lock()
		if st := s.peers[p]; st != nil {
			op.LastHeartbeat = st.lastHeartbeat
			op.ReservationExpires = st.reservationExpires
		}
		s.mu.Unlock()
		op.Reservation = s.hasReservation(p, op.ReservationExpires, now)
		if !op.Reservation {
			op.ReservationExpires = time.Time{}
		}
		op.Presence = presenceOf(op, now)
		out = append(out, op)
	}
	slices.SortFunc(out, func(a, b OnlinePeer) int { return cmpString(a.PeerID.String(), b.PeerID.String()) })
	return out
}

// Status returns counts for the admin API.
func (s *Server) Status() Status {
	online := s.Online()
	st := Status{
		PeerID:        s.h.ID(),
		Addrs:         s.Addrs(),
		Started:       s.started,
		UptimeSeconds: time.Since(s.started).Seconds(),
		OnlinePeers:   len(online),
		Registrations: len(s.rdv.Registrations()),
		DHT:           s.dht != nil,
	}
	for _, p := range online {
		if p.Reservation {
			st.Reservations++
		}
		st.Circuits += p.Circuits
	}
	st.Circuits /= 2 // each circuit is counted at both ends
	if s.dht != nil {
		st.DHTPeers = s.dht.RoutingTable().Size()
	}
	return st
}

// reservations counts the peers holding a relay reservation.
func (s *Server) reservations() int {
	now := time.Now()
	s.mu.Lock()
	cand := make(map[peer.ID]time.Time, len(s.peers))
	for p, st := range s.peers {
		if st.reservationExpires.After(now) {
			cand[p] = st.reservationExpires
		}
	}
	s.mu.Unlock()
	n := 0
	for p, exp := range cand {
		if s.hasReservation(p, exp, now) {
			n++
		}
	}
	return n
}

// hasReservation: the ACL saw the request (exp) and the relay accepted it
// (it tags the peer in the connection manager only then, and drops the
// tag when the reservation expires or the peer leaves).
func (s *Server) hasReservation(p peer.ID, exp, now time.Time) bool {
	if !exp.After(now) {
		return false
	}
	ti := s.h.ConnManager().GetTagInfo(p)
	return ti != nil && ti.Tags[reservationTag] != 0
}

// circuitsOn counts the relayed connections carried by c: a circuit is an
// inbound hop stream from its source and an outbound stop stream to its
// destination, both open for the life of the circuit.
func circuitsOn(c network.Conn) int {
	n := 0
	for _, st := range c.GetStreams() {
		switch st.Protocol() {
		case circuitproto.ProtoIDv2Hop:
			if st.Stat().Direction == network.DirInbound {
				n++
			}
		case circuitproto.ProtoIDv2Stop:
			if st.Stat().Direction == network.DirOutbound {
				n++
			}
		}
	}
	return n
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *Server) state(p peer.ID) *peerState {
	st := s.peers[p]
	if st == nil {
		st = &peerState{}
		s.peers[p] = st
	}
	return st
}

// handlePing serves libp2p ping, recording each ping a peer sends as its
// heartbeat, then lets go-libp2p's handler echo it. A peer over
// rate_limits.pings_per_peer has its ping stream closed.
func (s *Server) handlePing(ps *ping.PingService, st network.Stream) {
	p := st.Conn().RemotePeer()
	ps.PingHandler(&heartbeatStream{Stream: st, beat: func() bool { return s.heartbeat(p) }})
}

func (s *Server) heartbeat(p peer.ID) bool {
	if s.limits != nil && !s.limits.pingsPerPeer.Allow(p) {
		s.metrics.refused.WithLabelValues(reqPing, rdvproto.RefusedRateLimited).Inc()
		return false
	}
	s.mu.Lock()
	s.state(p).lastHeartbeat = time.Now()
	s.mu.Unlock()
	s.metrics.heartbeats.Inc()
	return true
}

// heartbeatStream calls beat as each ping payload (ping.PingSize bytes)
// starts to arrive; once beat refuses, reads fail.
type heartbeatStream struct {
	network.Stream
	beat func() bool
	read int // bytes read so far
}

func (h *heartbeatStream) Read(b []byte) (int, error) {
	n, err := h.Stream.Read(b)
	for i := 0; i < n; i++ {
		if h.read%ping.PingSize == 0 && !h.beat() {
			return 0, fmt.Errorf("pings: %w", wire.ErrRateLimited)
		}
		h.read++
	}
	return n, err
}

func (s *Server) connected(_ network.Network, c network.Conn) {
	t := connTransport(c.RemoteMultiaddr())
	s.metrics.connsOpened.WithLabelValues(t).Inc()
	s.log.Info("peer connected", "peer", c.RemotePeer(), "transport", t, "remote_addr", c.RemoteMultiaddr(), "direction", c.Stat().Direction.String())
}

func (s *Server) disconnected(n network.Network, c network.Conn) {
	p := c.RemotePeer()
	t := connTransport(c.RemoteMultiaddr())
	s.metrics.connsClosed.WithLabelValues(t).Inc()
	if n.Connectedness(p) == network.Connected {
		s.log.Debug("connection closed", "peer", p, "transport", t, "remote_addr", c.RemoteMultiaddr())
		return
	}
	s.mu.Lock()
	delete(s.peers, p)
	s.mu.Unlock()
	s.rdv.RemovePeer(p)
	s.log.Info("peer disconnected", "peer", p, "transport", t, "remote_addr", c.RemoteMultiaddr())
}

func (s *Server) onRegistryEvent(e rdvproto.Event) {
	r := e.Registration
	if r.Namespace == rdvproto.PeerNamespace(r.Peer.ID) {
		// A registered node is worth more than an anonymous connection
		// when the connection manager trims.
		if e.Kind == rdvproto.Registered {
			s.h.ConnManager().TagPeer(r.Peer.ID, registeredTag, registeredTagWeight)
		} else {
			s.h.ConnManager().UntagPeer(r.Peer.ID, registeredTag)
		}
	}
	switch e.Kind {
	case rdvproto.Registered:
		s.log.Info("peer registered", "peer", r.Peer.ID, "namespace", r.Namespace, "addrs", len(r.Peer.Addrs), "expires", r.Expires.Format(time.RFC3339))
	case rdvproto.Unregistered:
		s.log.Info("peer unregistered", "peer", r.Peer.ID, "namespace", r.Namespace)
	case rdvproto.Expired:
		s.log.Info("registration expired", "peer", r.Peer.ID, "namespace", r.Namespace)
	}
}

func connTransport(a ma.Multiaddr) string {
	if t := transportOf(a); t != "" {
		return t
	}
	return "other"
}
