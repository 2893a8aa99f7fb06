package node

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/node/control"
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

// contactStatus is the status of every contact's link.
func (n *Node) contactStatus(ctx context.Context) ([]control.ContactStatus, error) {
	cs, err := n.store.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	unread, err := n.store.Unread(ctx)
	if err != nil {
		return nil, err
	}
	queued, err := n.store.Queued(ctx)
	if err != nil {
		return nil, err
	}
	warnings := n.social.NameWarnings(ctx)
	out := make([]control.ContactStatus, 0, len(cs))
	for _, c := range cs {
		st := control.ContactStatus{PeerID: c.PeerID.String(), Name: c.Name, State: string(c.State), Warning: warnings[c.PeerID]}
		path, conn := n.p2p.Path(c.PeerID)
		st.Path = path.String()
		st.Connected = path != core.PathNone
		if conn != nil {
			st.RemoteAddr = conn.RemoteMultiaddr().String()
			st.Transport = links.Transport(conn.RemoteMultiaddr())
			if path == core.PathDirect {
				// Read off the connection itself, so that it agrees with
				// path even before the link's loop has noticed the change.
				st.DirectSince = conn.Stat().Opened
			}
		}
		st.Presence = control.PresenceOffline
		if ls, ok := n.p2p.LinkState(c.PeerID); ok {
			st.RTTMillis = millis(ls.RTT)
			st.LastError = ls.LastError
		}
		if c.State == store.StateAccepted {
			st.Presence, st.StatusMessage = n.social.ContactPresence(c.PeerID, st.Connected)
		}
		if !st.Connected {
			st.RTTMillis = 0
		}
		st.Unread, st.Queued = unread[c.PeerID], queued[c.PeerID]
		out = append(out, st)
	}
	return out, nil
}

// reachabilityString names the AutoNAT verdict.
func reachabilityString(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rdvRequestTimeout bounds one request to a rendezvous server (names.go).
const rdvRequestTimeout = 10 * time.Second
