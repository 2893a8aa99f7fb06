package node

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/presence"
)

// Presence (protocols/presence). Our own presence is what the user set
// (online, away, busy, invisible; kept in settings so it survives
// restarts) turned into "away" while the user is idle for
// presence.idle_away. It is pushed to each accepted contact when a
// connection to it opens and to every connected one when it changes.
//
// A contact's presence as we show it: offline while there is no
// connection to it; otherwise what it last pushed ("online" until its
// first push arrives). A contact that stops cleanly pushes offline and
// closes its connections; one whose daemon dies is noticed by the link's
// heartbeat: offline within heartbeat*heartbeat_misses + the ping timeout
// (25 s with the defaults), sooner when the kernel closes its sockets.

const (
	settingPresence = "presence"
	// offlinePushTimeout bounds telling contacts we are leaving.
	offlinePushTimeout = time.Second
)

// selfPresence is our own presence.
type selfPresence struct {
	mu       sync.Mutex
	manual   string    // online, away, busy, invisible
	set      time.Time // when it last changed (as contacts see it)
	active   time.Time // last activity on the control API
	autoAway bool
}

// effective is the state contacts see (invisible stays invisible here;
// the wire turns it into offline).
func (s *selfPresence) effectiveLocked() string {
	if s.manual == presence.Online && s.autoAway {
		return presence.Away
	}
	return s.manual
}

func (n *Node) loadPresence(ctx context.Context) error {
	v, err := n.store.Setting(ctx, settingPresence)
	if err != nil {
		return err
	}
	st, err := presence.ParseState(v)
	if err != nil {
		st = presence.Online
	}
	now := time.Now()
	n.self.manual, n.self.set, n.self.active = st, now, now
	return nil
}

// ownPresence is what we push.
func (n *Node) ownPresence(ctx context.Context) presence.Presence {
	n.self.mu.Lock()
	p := presence.Presence{State: n.self.effectiveLocked(), Set: n.self.set}
	n.self.mu.Unlock()
	if prof, err := n.store.OwnProfile(ctx); err == nil {
		p.Message = prof.Status
		p.ProfileVersion = prof.Version
	}
	return p
}

// touch records user activity; it ends an automatic away.
func (n *Node) touch() {
	n.self.mu.Lock()
	n.self.active = time.Now()
	wasAway := n.self.autoAway
	if wasAway {
		n.self.autoAway = false
		n.self.set = time.Now()
	}
	n.self.mu.Unlock()
	if wasAway {
		n.log.Info("back from idle")
		n.broadcastPresence()
	}
}

// idleLoop turns on automatic away after presence.idle_away without
// activity.
func (n *Node) idleLoop(ctx context.Context) {
	idle := n.cfg.Presence.IdleAway
	if idle <= 0 {
		return
	}
	t := time.NewTicker(min(idle/4, 15*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n.checkIdle(now, idle)
		}
	}
}

// checkIdle shows us away if the user has been idle for idle at now.
func (n *Node) checkIdle(now time.Time, idle time.Duration) {
	n.self.mu.Lock()
	goAway := !n.self.autoAway && n.self.manual == presence.Online && now.Sub(n.self.active) >= idle
	if goAway {
		n.self.autoAway = true
		n.self.set = time.Now()
	}
	n.self.mu.Unlock()
	if goAway {
		n.log.Info("idle: showing away", "after", idle)
		n.broadcastPresence()
	}
}

// SetPresence sets our presence and/or status message and tells contacts.
func (n *Node) SetPresence(ctx context.Context, req control.PresenceRequest) (control.Status, error) {
	var state string
	if req.State != "" {
		st, err := presence.ParseState(req.State)
		if err != nil {
			return control.Status{}, core.Invalid(err)
		}
		state = st
	}
	if req.Message != nil {
		if err := presence.ValidateMessage(*req.Message); err != nil {
			return control.Status{}, core.Invalid(err)
		}
		msg := *req.Message
		if _, err := n.store.SetOwnProfile(ctx, func(p *store.Profile) { p.Status = msg }); err != nil {
			return control.Status{}, err
		}
	}
	if state != "" {
		if err := n.store.SetSetting(ctx, settingPresence, state); err != nil {
			return control.Status{}, err
		}
		n.self.mu.Lock()
		n.self.manual = state
		n.self.mu.Unlock()
	}
	n.self.mu.Lock()
	n.self.set = time.Now()
	n.self.mu.Unlock()
	n.touch()
	n.broadcastPresence()
	return n.Status(ctx)
}

// broadcastPresence is called whenever our presence changes: it tells
// control-API clients (a self event) and pushes it to every connected
// accepted contact.
func (n *Node) broadcastPresence() {
	n.publishSelf()
	for _, p := range n.links.ids() {
		if path, _ := n.pathTo(p); path == control.PathNone {
			continue
		}
		n.goRun(func(ctx context.Context) { n.pushPresence(ctx, p) })
	}
}

// publishSelf publishes our presence as status shows it: the state the
// user set (invisible included) and whether idleness shows us away.
func (n *Node) publishSelf() {
	n.self.mu.Lock()
	e := control.Event{Type: control.EventSelf, Presence: n.self.manual, AutoAway: n.self.autoAway}
	n.self.mu.Unlock()
	if prof, err := n.store.OwnProfile(n.ctx); err == nil {
		e.StatusMessage = prof.Status
	}
	n.publish(e)
}

// sharesPresence reports whether p gets our presence: an accepted contact
// we are connected to.
func (n *Node) sharesPresence(ctx context.Context, p peer.ID) bool {
	if path, _ := n.pathTo(p); path == control.PathNone {
		return false
	}
	return n.isAccepted(ctx, p)
}

// pushPresence pushes our presence to p if it is a connected, accepted
// contact, and records that it got it.
func (n *Node) pushPresence(ctx context.Context, p peer.ID) {
	if !n.sharesPresence(ctx, p) {
		return
	}
	err := presence.Push(ctx, n.host, p, n.ownPresence(ctx))
	l := n.links.get(p)
	if err != nil {
		n.log.Debug("presence push failed", "peer", p.ShortString(), "err", err)
		return
	}
	if l != nil {
		l.mu.Lock()
		l.presenceSent = true
		l.mu.Unlock()
	}
}

// pushOffline tells connected contacts we are going (a clean stop),
// bounded by offlinePushTimeout.
func (n *Node) pushOffline() {
	if n.links == nil || n.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), offlinePushTimeout)
	defer cancel()
	var wg sync.WaitGroup
	off := presence.Presence{State: presence.Offline, Set: time.Now()}
	for _, p := range n.links.ids() {
		if !n.sharesPresence(ctx, p) {
			continue
		}
		wg.Go(func() { _ = presence.Push(ctx, n.host, p, off) })
	}
	wg.Wait()
}

// presenceReceiver applies contacts' pushes (presence.Receiver).
type presenceReceiver struct{ n *Node }

func (r presenceReceiver) Allow(ctx context.Context, p peer.ID) bool { return r.n.isAccepted(ctx, p) }

func (r presenceReceiver) Presence(from peer.ID, _ network.Conn, p presence.Presence) {
	n := r.n
	l := n.links.get(from)
	if l == nil {
		return
	}
	l.mu.Lock()
	if p.Set.Before(l.presenceSet) {
		l.mu.Unlock()
		return // an older push overtaken by a newer one
	}
	changed := l.presence != p.State || l.statusMsg != p.Message
	l.presence, l.statusMsg, l.presenceSet = p.State, p.Message, p.Set
	pushBack := !l.presenceSent
	l.mu.Unlock()
	if changed {
		n.publish(control.Event{Type: control.EventPresence, PeerID: from.String(), Presence: p.State, StatusMessage: p.Message})
	}
	n.profileAnnounced(from, p.ProfileVersion)
	if pushBack {
		// They may have pushed before they could accept ours (a request
		// just accepted): answer with ours.
		n.goRun(func(ctx context.Context) { n.pushPresence(ctx, from) })
	}
}

// presenceLocked is what status shows for the link's contact: offline
// without a connection, else what it pushed (online until it does).
func (l *contactLink) presenceLocked(connected bool) (string, string) {
	if !connected || l.presence == "" {
		if connected {
			return presence.Online, ""
		}
		return presence.Offline, ""
	}
	return l.presence, l.statusMsg
}

// resetPresence forgets what the contact pushed: the link went down.
func (l *contactLink) resetPresence() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.presence, l.statusMsg, l.presenceSent = "", "", false
}
