package links

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
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

// contactLink is the state of the link with one contact, as status shows
// it.
type contactLink struct {
	id     peer.ID
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards the following fields
	path    core.Path
	remote  ma.Multiaddr
	rtt     time.Duration
	lastErr string
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

// LinkState is the state of the link with one contact, as its loop last
// saw it (Path reads the live path).
type LinkState struct {
	Path   core.Path
	Remote ma.Multiaddr // the remote address of the connection Path chose
	// RTT is the last heartbeat's round trip.
	RTT time.Duration
	// LastError is why the link is not up, or its last failure ("" once
	// direct).
	LastError string
}

// StartContact starts keeping a link with p. It is a no-op if one runs or
// the service is stopping.
func (s *Service) StartContact(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.links[p]; ok || s.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	l := &contactLink{id: p, cancel: cancel, done: make(chan struct{})}
	s.links[p] = l
	s.host.ConnManager().Protect(p, "natter-contact")
	s.goRun(func(context.Context) {
		defer close(l.done)
		s.runContact(ctx, l)
	})
}

// StopContact stops the link with p, waits for its goroutine, and closes
// our connections to p (unless p is a rendezvous server).
func (s *Service) StopContact(p peer.ID) {
	s.mu.Lock()
	l, ok := s.links[p]
	delete(s.links, p)
	s.mu.Unlock()
	if !ok {
		return
	}
	l.cancel()
	<-l.done
	s.host.ConnManager().Unprotect(p, "natter-contact")
	if !s.IsRendezvous(p) {
		_ = s.host.Network().ClosePeer(p)
	}
}

// Contacts lists the peers the service keeps a link with.
func (s *Service) Contacts() []peer.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.links))
}

// LinkState is the state of the link with p; false if none runs.
func (s *Service) LinkState(p peer.ID) (LinkState, bool) {
	l := s.link(p)
	if l == nil {
		return LinkState{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return LinkState{Path: l.path, Remote: l.remote, RTT: l.rtt, LastError: l.lastErr}, true
}

// SetError records err (nil clears it) as the last error of the link with
// p, which status shows; a feature whose exchange over the link failed
// (a friend request refused...) uses it. No-op without a link.
func (s *Service) SetError(p peer.ID, err error) {
	if l := s.link(p); l != nil {
		l.setErr(err)
	}
}

func (s *Service) link(p peer.ID) *contactLink {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.links[p]
}

// runContact keeps the link with one contact up: connect (through the
// relay if need be), watch the path, heartbeat, and while the link stays
// relayed retry the hole punch with backoff.
func (s *Service) runContact(ctx context.Context, l *contactLink) {
	// Dialling before we know our public address makes the peer's hole
	// punch fail (docs/architecture.md, "The contact link"), so wait until
	// the node is ready.
	select {
	case <-ctx.Done():
		return
	case <-s.ready:
	}
	var (
		p          = l.id
		dialBo     = core.NewBackoff(time.Second, time.Minute)
		nextDial   time.Time // no dial before; zero once a link proved itself
		directBo   = core.NewBackoff(s.cfg.DirectRetry, s.cfg.DirectRetryMax)
		nextDirect time.Time
		punching   = make(chan error, 1)
		inPunch    bool
		misses     int
		hb         = time.NewTicker(s.cfg.Heartbeat)
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
	prev := core.PathNone
	for ctx.Err() == nil {
		changed := s.watch.Changed(p)
		path := s.updatePath(ctx, l)
		if path != prev && path != core.PathNone {
			// Measure the new path at once rather than at the next
			// heartbeat, so status shows its RTT.
			if rtt, _, err := s.Ping(ctx, p); err == nil {
				linkUp(rtt)
			}
		}
		prev = path
		var wake time.Duration = time.Hour
		switch path {
		case core.PathNone:
			misses = 0
			if wait := time.Until(nextDial); wait > 0 {
				wake = wait
				break
			}
			// A connection that opens is not yet a link: one the
			// contact closes at once (its gater: we are blocked) must
			// not be dialled again at once, so the backoff only resets
			// when a ping over the link has succeeded.
			err := s.connectContact(ctx, p)
			nextDial = time.Now().Add(dialBo.Next())
			if err == nil {
				nextDirect = time.Now().Add(s.cfg.DirectRetry)
				continue
			}
			if ctx.Err() != nil {
				return
			}
			l.setErr(err)
			s.log.Debug("contact unreachable", "peer", p.ShortString(), "err", err)
			wake = time.Until(nextDial)
		case core.PathRelayed:
			// go-libp2p punches once, when a relayed connection opens; for
			// a retry it has only holepunch.Service.DirectConnect,
			// documented as "exposed for testing". We use it anyway: no
			// other API upgrades a relayed link that stays up. It blocks
			// until the host knows a public address of its own (hence the
			// armed check) and returns ErrHolePunchActive while
			// go-libp2p's own attempt runs; TestHolePunchAPI fails if an
			// upgrade changes either.
			if s.hps.Load() != nil && s.holePunchArmed() && !inPunch && !time.Now().Before(nextDirect) {
				inPunch = true
				s.goRun(func(context.Context) { punching <- s.hps.Load().DirectConnect(p) })
			}
			if !inPunch {
				wake = max(time.Until(nextDirect), 0)
			}
		case core.PathDirect:
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
				if !s.IsRendezvous(p) {
					_ = s.host.Network().ClosePeer(p)
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
				s.log.Debug("hole punch retry failed", "peer", p.ShortString(), "err", err, "next", time.Until(nextDirect).Round(time.Second))
			}
		case <-hb.C:
			if path == core.PathNone {
				continue
			}
			// The features' tick over a live link (a friend request or
			// a token to send again), before the ping as ever.
			s.emit(core.LinkEvent{Peer: p, Change: core.LinkPinged, Path: path})
			rtt, _, err := s.Ping(ctx, p)
			if err != nil {
				misses++
				if misses >= s.cfg.HeartbeatMisses {
					s.log.Info("contact link dead, reconnecting", "peer", p.ShortString(), "misses", misses, "err", err)
					l.setErr(fmt.Errorf("%d heartbeats missed: %w", misses, err))
					_ = s.host.Network().ClosePeer(p)
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
// records it, and announces changes: logged, published as a link event
// for the user, and told to the OnLink subscribers.
func (s *Service) updatePath(ctx context.Context, l *contactLink) core.Path {
	path, c := s.Path(l.id)
	var remote ma.Multiaddr
	if c != nil {
		remote = c.RemoteMultiaddr()
	}
	l.mu.Lock()
	old := l.path
	l.path, l.remote = path, remote
	l.mu.Unlock()
	if old == path {
		return path
	}
	name := ""
	if c, err := s.contacts.ContactByPeer(ctx, l.id); err == nil {
		name = c.Name
	}
	s.log.Info("contact link", "peer", l.id.ShortString(), "name", name, "path", path.String(), "remote", remote)
	s.pub.Publish(control.Event{Type: control.EventLink, PeerID: l.id.String(), Name: name, Connected: path != core.PathNone, Path: path.String()})
	s.emit(core.LinkEvent{Peer: l.id, Change: linkChange(old, path), Path: path})
	return path
}

// linkChange names the change of a link's path from old to path (they
// differ).
func linkChange(old, path core.Path) core.LinkChange {
	switch {
	case path == core.PathNone:
		return core.LinkDown
	case old == core.PathNone:
		return core.LinkUp
	}
	return core.LinkPathChanged
}

// connectContact finds p's addresses and connects, through a relay if that
// is the only way. DCUtR then upgrades a relayed link by itself.
func (s *Service) connectContact(ctx context.Context, p peer.ID) error {
	if err := s.findContact(ctx, p); err != nil {
		return err
	}
	// We pace our own retries (dialBo in runContact); the swarm's dial
	// backoff would refuse a dial we decided to make, and go-libp2p
	// offers no way to clear it but on the *swarm.Swarm itself (the
	// host's Network; TestHostNetworkIsSwarm fails if that changes).
	if sw, ok := s.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
	dctx, cancel := context.WithTimeout(ctx, contactDialTimeout)
	defer cancel()
	// The contact may connect to us meanwhile (it restarted and dialled
	// first): stop waiting for our own dial then, so the link sees the new
	// connection, and its heartbeats run, at once.
	go func() {
		for dctx.Err() == nil {
			changed := s.watch.Changed(p)
			if path, _ := s.Path(p); path != core.PathNone {
				cancel()
				return
			}
			select {
			case <-changed:
			case <-dctx.Done():
			}
		}
	}()
	err := s.host.Connect(network.WithAllowLimitedConn(dctx, "natter-contact"), peer.AddrInfo{ID: p})
	if path, _ := s.Path(p); path != core.PathNone {
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
func (s *Service) findContact(ctx context.Context, p peer.ID) error {
	lctx, cancel := context.WithTimeout(ctx, contactLookupTimeout)
	defer cancel()
	found := false
	var lastErr error
	for _, l := range s.rdvs {
		if !l.isConnected() {
			continue
		}
		ai, err := s.rdvc.Lookup(lctx, l.info.ID, p)
		if err != nil {
			if !errors.Is(err, rdvproto.ErrNotFound) {
				lastErr = err
			}
			continue
		}
		s.host.Peerstore().AddAddrs(p, ai.Addrs, s.cfg.RegistrationTTL)
		found = found || len(ai.Addrs) > 0
	}
	if found {
		return nil
	}
	if c, err := s.contacts.ContactByPeer(ctx, p); err == nil {
		circuit := ma.StringCast("/p2p-circuit/p2p/" + p.String())
		for _, a := range c.Rendezvous {
			if _, err := peer.IDFromP2PAddr(a); err != nil {
				continue
			}
			s.host.Peerstore().AddAddr(p, a.Encapsulate(circuit), peerstore.TempAddrTTL)
			found = true
		}
	}
	if !found && s.dht != nil {
		ai, err := s.dht.FindPeer(lctx, p)
		if err == nil && len(ai.Addrs) > 0 {
			s.host.Peerstore().AddAddrs(p, ai.Addrs, peerstore.TempAddrTTL)
			return nil
		}
		if err != nil {
			lastErr = err
		}
	}
	if found || len(s.host.Peerstore().Addrs(p)) > 0 {
		return nil
	}
	if lastErr != nil {
		return fmt.Errorf("%w: %v", errNoAddrs, lastErr)
	}
	return errNoAddrs
}
