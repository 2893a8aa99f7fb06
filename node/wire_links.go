package node

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/links"
	"github.com/natterim/natter/node/store"
)

// newLinks builds the links service (the libp2p host, rendezvous and
// contact links) from the node's config and plugs the features in: a
// rendezvous connection wakes the names loop; a contact's link events
// drive presence, friend requests and deposit tokens (onLink).
func (n *Node) newLinks(rdvs []peer.AddrInfo, contacts []store.Contact, reg prometheus.Registerer) (*links.Service, error) {
	var blocked []peer.ID
	for _, c := range contacts {
		if c.State == store.StateBlocked {
			blocked = append(blocked, c.PeerID)
		}
	}
	s, err := links.New(n.key, links.Config{
		Listen:          n.cfg.listenAddrs(),
		Transports:      n.cfg.Transports,
		UserAgent:       "natter/" + Version,
		NATPortMap:      n.cfg.NATPortMap,
		HolePunching:    n.cfg.HolePunching,
		DHT:             n.cfg.DHT,
		Rendezvous:      rdvs,
		Blocked:         blocked,
		RegistrationTTL: n.cfg.RegistrationTTL,
		Heartbeat:       n.cfg.Heartbeat,
		HeartbeatMisses: n.cfg.HeartbeatMisses,
		DirectRetry:     n.cfg.DirectRetry,
		DirectRetryMax:  n.cfg.DirectRetryMax,
	}, n.store, n.events, links.WithLogger(n.log), links.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	// The hooks run only once Start is called, after every feature exists.
	s.OnRendezvous(func(_ peer.ID, up bool) {
		if up {
			n.social.KickNames()
		}
	})
	s.OnLink(n.onLink)
	return s, nil
}

// onLink hands a contact's link events to the features that follow them.
// It runs on the link's goroutine, so each returns at once.
func (n *Node) onLink(e core.LinkEvent) {
	n.social.HandleLink(e)
	n.offline.HandleLink(e)
}

// startContact starts keeping a link with p and its chat deliverer. It is
// a no-op if one runs.
func (n *Node) startContact(p peer.ID) {
	if n.ctx.Err() != nil {
		return
	}
	n.p2p.StartContact(p)
	n.chat.Open(p)
}

// stopContact stops the link with p and its deliverer, and closes our
// connections to it.
func (n *Node) stopContact(p peer.ID) {
	n.p2p.StopContact(p)
	n.chat.Drop(p)
}

// rdvRequestTimeout bounds one request to a rendezvous server (names).
const rdvRequestTimeout = 10 * time.Second
