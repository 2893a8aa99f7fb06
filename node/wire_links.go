package node

import (
	"context"
	"sync"
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
	s.OnRendezvous(func(_ peer.ID, up bool) {
		if up {
			n.kickNames()
		}
	})
	s.OnLink(n.onLink)
	return s, nil
}

// onLink is what the features do when a contact's link changes (until
// they subscribe themselves). It runs on the link's goroutine.
func (n *Node) onLink(e core.LinkEvent) {
	p, l := e.Peer, n.links.get(e.Peer)
	switch e.Change {
	case core.LinkDown:
		if l != nil {
			l.resetPresence()
		}
		name := ""
		if c, err := n.store.ContactByPeer(n.ctx, p); err == nil {
			name = c.Name
		}
		n.publish(control.Event{Type: control.EventPresence, PeerID: p.String(), Name: name, Presence: control.PresenceOffline})
	case core.LinkUp:
		// A connection opened: tell the contact our presence, or deliver
		// our friend request; renew its deposit token.
		if l != nil {
			l.mu.Lock()
			l.lastRequest = time.Now()
			l.mu.Unlock()
		}
		n.goRun(func(ctx context.Context) {
			n.pushPresence(ctx, p)
			n.sendRequest(ctx, p)
			n.pushToken(ctx, p)
		})
	case core.LinkPinged:
		if l != nil {
			n.retryRequest(n.ctx, l)
		}
		n.retryToken(p)
	}
}

// contactLinks is the node's state per contact with a link (between
// startContact and stopContact).
type contactLinks struct {
	mu sync.Mutex // guards m
	m  map[peer.ID]*contactLink
}

func newContactLinks() *contactLinks { return &contactLinks{m: map[peer.ID]*contactLink{}} }

func (cl *contactLinks) get(p peer.ID) *contactLink {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.m[p]
}

// ids lists the contacts that have a link.
func (cl *contactLinks) ids() []peer.ID {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	ids := make([]peer.ID, 0, len(cl.m))
	for id := range cl.m {
		ids = append(ids, id)
	}
	return ids
}

// contactLink is what the node keeps beside the links package's link with
// one contact: its chat deliverer, and the presence and friend-request
// state that social will own.
type contactLink struct {
	id     peer.ID
	n      *Node
	cancel context.CancelFunc // stops the deliverer
	done   chan struct{}      // closed once the deliverer returned

	mu sync.Mutex // guards the following fields
	// Presence the contact pushed (see presence.go); presenceSent is
	// true once ours reached it over the current connection.
	presence     string
	statusMsg    string
	presenceSet  time.Time
	presenceSent bool
	// lastRequest is when our pending friend request was last sent.
	lastRequest time.Time
}

// setErr records err as the link's last error (status shows it).
func (l *contactLink) setErr(err error) { l.n.p2p.SetError(l.id, err) }

// startContact starts keeping a link with p and its chat deliverer. It is
// a no-op if one runs.
func (n *Node) startContact(p peer.ID) {
	n.links.mu.Lock()
	defer n.links.mu.Unlock()
	if _, ok := n.links.m[p]; ok || n.ctx.Err() != nil {
		return
	}
	n.links.m[p] = &contactLink{id: p, n: n}
	n.p2p.StartContact(p)
	n.chat.Open(p)
}

// stopContact stops the link with p and its deliverer, and closes our
// connections to it.
func (n *Node) stopContact(p peer.ID) {
	n.links.mu.Lock()
	_, ok := n.links.m[p]
	delete(n.links.m, p)
	n.links.mu.Unlock()
	n.p2p.StopContact(p)
	if ok {
		n.chat.Drop(p)
	}
}

// retryRequest sends our pending friend request again if the last one is
// older than requestRetry (its answer may have been lost).
func (n *Node) retryRequest(ctx context.Context, l *contactLink) {
	l.mu.Lock()
	due := time.Since(l.lastRequest) >= requestRetry
	if due {
		l.lastRequest = time.Now()
	}
	l.mu.Unlock()
	if !due {
		return
	}
	if c, err := n.store.ContactByPeer(ctx, l.id); err == nil && c.State == store.StatePendingOut {
		p := l.id
		n.goRun(func(ctx context.Context) { n.sendRequest(ctx, p) })
	}
}

// pathTo is the links' Path as the API string, for the callers that still
// compare strings.
func (n *Node) pathTo(p peer.ID) (string, network.Conn) {
	path, c := n.p2p.Path(p)
	return path.String(), c
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
	warnings := n.nameWarnings(ctx)
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
		if l := n.links.get(c.PeerID); l != nil && c.State == store.StateAccepted {
			l.mu.Lock()
			st.Presence, st.StatusMessage = l.presenceLocked(st.Connected)
			l.mu.Unlock()
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
