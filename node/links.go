package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	rdvproto "github.com/natterim/natter/protocols/rendezvous"
)

const (
	// contactLookupTimeout bounds finding a contact's addresses.
	contactLookupTimeout = 10 * time.Second
	// contactDialTimeout bounds one connection attempt.
	contactDialTimeout = 20 * time.Second
	// punchBusyRetry is when to try a hole punch again after finding
	// go-libp2p's own attempt running.
	punchBusyRetry = 2 * time.Second
)

var errNoAddrs = errors.New("not found on any rendezvous server or in the DHT (offline?)")

// contactLinks are the node's links with its contacts, one per contact.
type contactLinks struct {
	mu sync.Mutex
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

// contactLink is the state of the link with one contact, as status shows
// it.
type contactLink struct {
	id     peer.ID
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	path    string
	remote  ma.Multiaddr
	rtt     time.Duration
	lastErr string

	// Presence the contact pushed (see presence.go); presenceSent is
	// true once ours reached it over the current connection.
	presence     string
	statusMsg    string
	presenceSet  time.Time
	presenceSent bool
	// lastRequest is when our pending friend request was last sent.
	lastRequest time.Time
}

func (l *contactLink) setErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.lastErr = ""
	} else {
		l.lastErr = err.Error()
	}
}

// startContact starts keeping a link with p. It is a no-op if one runs.
func (n *Node) startContact(p peer.ID) {
	n.links.mu.Lock()
	defer n.links.mu.Unlock()
	if _, ok := n.links.m[p]; ok || n.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(n.ctx)
	l := &contactLink{id: p, cancel: cancel, done: make(chan struct{}), path: control.PathNone}
	n.links.m[p] = l
	n.host.ConnManager().Protect(p, "natter-contact")
	ob := n.chat.box(p)
	n.goRun(func(context.Context) {
		defer close(l.done)
		delivered := make(chan struct{})
		go func() {
			defer close(delivered)
			n.chat.run(ctx, ob)
		}()
		n.runContact(ctx, l)
		<-delivered
	})
}

// stopContact stops the link with p and closes our connections to it.
func (n *Node) stopContact(p peer.ID) {
	n.links.mu.Lock()
	l, ok := n.links.m[p]
	delete(n.links.m, p)
	n.links.mu.Unlock()
	if !ok {
		return
	}
	l.cancel()
	<-l.done
	n.chat.dropBox(p)
	n.host.ConnManager().Unprotect(p, "natter-contact")
	if !n.isRendezvous(p) {
		_ = n.host.Network().ClosePeer(p)
	}
}

func (n *Node) isRendezvous(p peer.ID) bool {
	for _, l := range n.rdvs {
		if l.info.ID == p {
			return true
		}
	}
	return false
}

// runContact keeps the link with one contact up: connect (through the
// relay if need be), watch the path, heartbeat, and while the link stays
// relayed retry the hole punch with backoff.
func (n *Node) runContact(ctx context.Context, l *contactLink) {
	// Dialling before we know our public address makes the peer's hole
	// punch fail (docs/architecture.md, "The contact link"), so wait until
	// the node is ready.
	select {
	case <-ctx.Done():
		return
	case <-n.ready:
	}
	var (
		p          = l.id
		dialBo     = core.NewBackoff(time.Second, time.Minute)
		nextDial   time.Time // no dial before; zero once a link proved itself
		directBo   = core.NewBackoff(n.cfg.DirectRetry, n.cfg.DirectRetryMax)
		nextDirect time.Time
		punching   = make(chan error, 1)
		inPunch    bool
		misses     int
		hb         = time.NewTicker(n.cfg.Heartbeat)
		timer      = time.NewTimer(time.Hour)
	)
	defer hb.Stop()
	defer timer.Stop()
	// linkUp records a ping that got through: the link works, so the
	// next dial after it breaks need not wait.
	linkUp := func(rtt time.Duration) {
		l.mu.Lock()
		l.rtt = rtt
		l.mu.Unlock()
		dialBo.Reset()
		nextDial = time.Time{}
	}
	prev := control.PathNone
	for ctx.Err() == nil {
		changed := n.watch.changed(p)
		path := n.updatePath(ctx, l)
		if path != prev && path != control.PathNone {
			// Measure the new path at once rather than at the next
			// heartbeat, so status shows its RTT.
			if rtt, _, err := n.pingPeer(ctx, p); err == nil {
				linkUp(rtt)
			}
		}
		prev = path
		var wake time.Duration = time.Hour
		switch path {
		case control.PathNone:
			misses = 0
			if wait := time.Until(nextDial); wait > 0 {
				wake = wait
				break
			}
			// A connection that opens is not yet a link: one the
			// contact closes at once (its gater: we are blocked) must
			// not be dialled again at once, so the backoff only resets
			// when a ping over the link has succeeded.
			err := n.connectContact(ctx, p)
			nextDial = time.Now().Add(dialBo.Next())
			if err == nil {
				nextDirect = time.Now().Add(n.cfg.DirectRetry)
				continue
			}
			if ctx.Err() != nil {
				return
			}
			l.setErr(err)
			n.log.Debug("contact unreachable", "peer", p.ShortString(), "err", err)
			wake = time.Until(nextDial)
		case control.PathRelayed:
			if n.hps.Load() != nil && n.holePunchArmed() && !inPunch && !time.Now().Before(nextDirect) {
				inPunch = true
				n.goRun(func(context.Context) { punching <- n.hps.Load().DirectConnect(p) })
			}
			if !inPunch {
				wake = max(time.Until(nextDirect), 0)
			}
		case control.PathDirect:
			directBo.Reset()
			l.setErr(nil)
		}
		timer.Reset(wake)
		select {
		case <-ctx.Done():
			if inPunch {
				// DirectConnect waits for the contact's answer for up to
				// a minute and watches no context (closing the service
				// does not end it either): closing our connections to the
				// contact does, and the link is going away anyway.
				if !n.isRendezvous(p) {
					_ = n.host.Network().ClosePeer(p)
				}
				<-punching
			}
			return
		case <-changed:
		case <-timer.C:
		case err := <-punching:
			inPunch = false
			if errors.Is(err, holepunch.ErrHolePunchActive) {
				// go-libp2p's own punch (on a new relayed connection) is
				// running: not a failure; look again soon, without
				// backing off.
				nextDirect = time.Now().Add(punchBusyRetry)
				break
			}
			nextDirect = time.Now().Add(directBo.Next())
			if err != nil {
				n.log.Debug("hole punch retry failed", "peer", p.ShortString(), "err", err, "next", time.Until(nextDirect).Round(time.Second))
			}
		case <-hb.C:
			if path == control.PathNone {
				continue
			}
			n.retryRequest(ctx, l)
			n.offline.HandleLink(core.LinkEvent{Peer: p, Change: core.LinkPinged, Path: corePath(path)})
			rtt, _, err := n.pingPeer(ctx, p)
			if err != nil {
				misses++
				if misses >= n.cfg.HeartbeatMisses {
					n.log.Info("contact link dead, reconnecting", "peer", p.ShortString(), "misses", misses, "err", err)
					l.setErr(fmt.Errorf("%d heartbeats missed: %w", misses, err))
					_ = n.host.Network().ClosePeer(p)
					misses = 0
				}
				continue
			}
			misses = 0
			linkUp(rtt)
		}
	}
}

// updatePath reads the current path to l's peer from the open connections,
// records it, and announces changes.
func (n *Node) updatePath(ctx context.Context, l *contactLink) string {
	path, c := n.pathTo(l.id)
	var remote ma.Multiaddr
	if c != nil {
		remote = c.RemoteMultiaddr()
	}
	l.mu.Lock()
	old := l.path
	l.path, l.remote = path, remote
	l.mu.Unlock()
	if old != path {
		name := ""
		if c, err := n.store.ContactByPeer(ctx, l.id); err == nil {
			name = c.Name
		}
		n.log.Info("contact link", "peer", l.id.ShortString(), "name", name, "path", path, "remote", remote)
		n.publish(control.Event{Type: control.EventLink, PeerID: l.id.String(), Name: name, Connected: path != control.PathNone, Path: path})
		switch {
		case path == control.PathNone:
			l.resetPresence()
			n.publish(control.Event{Type: control.EventPresence, PeerID: l.id.String(), Name: name, Presence: control.PresenceOffline})
		case old == control.PathNone:
			// A connection opened: tell the contact our presence, or
			// deliver our friend request; renew its deposit token.
			l.mu.Lock()
			l.lastRequest = time.Now()
			l.mu.Unlock()
			p := l.id
			n.goRun(func(ctx context.Context) {
				n.pushPresence(ctx, p)
				n.sendRequest(ctx, p)
			})
			n.offline.HandleLink(core.LinkEvent{Peer: p, Change: core.LinkUp, Path: corePath(path)})
		}
	}
	return path
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

// pathTo names the best connection to p: direct if any connection is
// neither relayed nor limited, relayed if only relayed ones are open.
func (n *Node) pathTo(p peer.ID) (string, network.Conn) {
	var relayed network.Conn
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if c.IsClosed() {
			continue
		}
		if isCircuit(c.RemoteMultiaddr()) || c.Stat().Limited {
			relayed = c
			continue
		}
		return control.PathDirect, c
	}
	if relayed != nil {
		return control.PathRelayed, relayed
	}
	return control.PathNone, nil
}

// connectContact finds p's addresses and connects, through a relay if that
// is the only way. DCUtR then upgrades a relayed link by itself.
func (n *Node) connectContact(ctx context.Context, p peer.ID) error {
	if err := n.findContact(ctx, p); err != nil {
		return err
	}
	if sw, ok := n.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p) // we pace our own retries
	}
	dctx, cancel := context.WithTimeout(ctx, contactDialTimeout)
	defer cancel()
	// The contact may connect to us meanwhile (it restarted and dialled
	// first): stop waiting for our own dial then, so the link sees the new
	// connection, and its heartbeats run, at once.
	go func() {
		for dctx.Err() == nil {
			changed := n.watch.changed(p)
			if path, _ := n.pathTo(p); path != control.PathNone {
				cancel()
				return
			}
			select {
			case <-changed:
			case <-dctx.Done():
			}
		}
	}()
	err := n.host.Connect(network.WithAllowLimitedConn(dctx, "natter-contact"), peer.AddrInfo{ID: p})
	if path, _ := n.pathTo(p); path != control.PathNone {
		return nil
	}
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	return nil
}

// findContact puts fresh addresses of p into the peerstore: its
// registration on each rendezvous server we are connected to, relay
// addresses through the servers its invite named, and as a last resort the
// DHT.
func (n *Node) findContact(ctx context.Context, p peer.ID) error {
	lctx, cancel := context.WithTimeout(ctx, contactLookupTimeout)
	defer cancel()
	found := false
	var lastErr error
	for _, l := range n.rdvs {
		if !l.isConnected() {
			continue
		}
		ai, err := n.rdvc.Lookup(lctx, l.info.ID, p)
		if err != nil {
			if !errors.Is(err, rdvproto.ErrNotFound) {
				lastErr = err
			}
			continue
		}
		n.host.Peerstore().AddAddrs(p, ai.Addrs, n.cfg.RegistrationTTL)
		found = found || len(ai.Addrs) > 0
	}
	if found {
		return nil
	}
	if c, err := n.store.ContactByPeer(ctx, p); err == nil {
		circuit := ma.StringCast("/p2p-circuit/p2p/" + p.String())
		for _, a := range c.Rendezvous {
			if _, err := peer.IDFromP2PAddr(a); err != nil {
				continue
			}
			n.host.Peerstore().AddAddr(p, a.Encapsulate(circuit), peerstore.TempAddrTTL)
			found = true
		}
	}
	if !found && n.dht != nil {
		ai, err := n.dht.FindPeer(lctx, p)
		if err == nil && len(ai.Addrs) > 0 {
			n.host.Peerstore().AddAddrs(p, ai.Addrs, peerstore.TempAddrTTL)
			return nil
		}
		if err != nil {
			lastErr = err
		}
	}
	if found || len(n.host.Peerstore().Addrs(p)) > 0 {
		return nil
	}
	if lastErr != nil {
		return fmt.Errorf("%w: %v", errNoAddrs, lastErr)
	}
	return errNoAddrs
}

// pingPeer measures one round trip over the connection libp2p picks for a
// new stream (the direct one when there is one) and returns that
// connection.
func (n *Node) pingPeer(ctx context.Context, p peer.ID) (time.Duration, network.Conn, error) {
	pctx, cancel := context.WithTimeout(ctx, n.pingTimeout())
	defer cancel()
	s, err := n.host.NewStream(network.WithNoDial(network.WithAllowLimitedConn(pctx, "ping"), "ping"), p, ping.ID)
	if err != nil {
		return 0, nil, err
	}
	defer s.Close()
	if dl, ok := pctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	buf := make([]byte, ping.PingSize)
	if _, err := rand.Read(buf); err != nil {
		s.Reset()
		return 0, nil, err
	}
	start := time.Now()
	if _, err := s.Write(buf); err != nil {
		s.Reset()
		return 0, nil, err
	}
	got := make([]byte, ping.PingSize)
	if _, err := io.ReadFull(s, got); err != nil {
		s.Reset()
		return 0, nil, err
	}
	rtt := time.Since(start)
	if !bytes.Equal(buf, got) {
		s.Reset()
		return 0, nil, errors.New("ping: wrong echo")
	}
	n.host.Peerstore().RecordLatency(p, rtt)
	return rtt, s.Conn(), nil
}

// pingTimeout bounds one heartbeat: half the interval, at most 5 s. A
// contact whose node died is offline after at most
// heartbeat*heartbeat_misses + pingTimeout.
func (n *Node) pingTimeout() time.Duration { return min(n.cfg.Heartbeat/2, 5*time.Second) }

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
		st := control.ContactStatus{PeerID: c.PeerID.String(), Name: c.Name, State: string(c.State), Path: control.PathNone, Warning: warnings[c.PeerID]}
		path, conn := n.pathTo(c.PeerID)
		st.Path = path
		st.Connected = path != control.PathNone
		if conn != nil {
			st.RemoteAddr = conn.RemoteMultiaddr().String()
			st.Transport = transportName(conn.RemoteMultiaddr())
			if path == control.PathDirect {
				// Read off the connection itself, so that it agrees with
				// path even before the link's loop has noticed the change.
				st.DirectSince = conn.Stat().Opened
			}
		}
		st.Presence = control.PresenceOffline
		if l := n.links.get(c.PeerID); l != nil {
			l.mu.Lock()
			st.RTTMillis = millis(l.rtt)
			st.LastError = l.lastErr
			if c.State == store.StateAccepted {
				st.Presence, st.StatusMessage = l.presenceLocked(st.Connected)
			}
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
