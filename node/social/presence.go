package social

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
// restarts) turned into "away" while the user is idle for IdleAway. It is
// pushed to each accepted contact when a connection to it opens and to
// every connected one when it changes.
//
// A contact's presence as we show it: offline while there is no
// connection to it; otherwise what it last pushed ("online" until its
// first push arrives). A contact that stops cleanly pushes offline and
// closes its connections; one whose daemon dies is noticed by the link's
// heartbeat (LinkDown).

// settingPresence is the setting that keeps what the user set.
const settingPresence = "presence"

// selfPresence is our own presence.
type selfPresence struct {
	mu       sync.Mutex // guards the following fields
	manual   string     // online, away, busy, invisible
	set      time.Time  // when it last changed (as contacts see it)
	active   time.Time  // last activity on the control API
	autoAway bool
}

// effectiveLocked is the state contacts see (invisible stays invisible
// here; the wire turns it into offline).
func (s *selfPresence) effectiveLocked() string {
	if s.manual == presence.Online && s.autoAway {
		return presence.Away
	}
	return s.manual
}

func (s *Service) loadPresence(ctx context.Context) error {
	v, err := s.store.Setting(ctx, settingPresence)
	if err != nil {
		return err
	}
	st, err := presence.ParseState(v)
	if err != nil {
		st = presence.Online
	}
	now := s.now()
	s.self.manual, s.self.set, s.self.active = st, now, now
	return nil
}

// Self is our presence as status shows it: what the user set, and
// whether idleness shows us away (only while the user set online).
func (s *Service) Self() (state string, autoAway bool) {
	s.self.mu.Lock()
	defer s.self.mu.Unlock()
	return s.self.manual, s.self.autoAway && s.self.manual == control.PresenceOnline
}

// ContactPresence is what status shows of contact p's presence: offline
// when not connected, else what it pushed (online until it does), and its
// status message.
func (s *Service) ContactPresence(p peer.ID, connected bool) (state, message string) {
	if !connected {
		return presence.Offline, ""
	}
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	e := s.peers.m[p]
	if e == nil || e.presence == "" {
		return presence.Online, ""
	}
	return e.presence, e.statusMsg
}

// ownPresence is what we push.
func (s *Service) ownPresence(ctx context.Context) presence.Presence {
	s.self.mu.Lock()
	p := presence.Presence{State: s.self.effectiveLocked(), Set: s.self.set}
	s.self.mu.Unlock()
	if prof, err := s.store.OwnProfile(ctx); err == nil {
		p.Message = prof.Status
		p.ProfileVersion = prof.Version
	}
	return p
}

// Touch records user activity (the control API calls it on sends,
// typing, reads, POST /v1/activity...); it ends an automatic away.
func (s *Service) Touch() {
	now := s.now()
	s.self.mu.Lock()
	s.self.active = now
	wasAway := s.self.autoAway
	if wasAway {
		s.self.autoAway = false
		s.self.set = now
	}
	s.self.mu.Unlock()
	if wasAway {
		s.log.Info("back from idle")
		s.broadcastPresence()
	}
}

// idleLoop turns on automatic away after IdleAway without activity.
func (s *Service) idleLoop(ctx context.Context) {
	idle := s.cfg.IdleAway
	if idle <= 0 {
		return
	}
	t := time.NewTicker(min(idle/4, 15*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.CheckIdle(s.now())
		}
	}
}

// CheckIdle shows us away if at now the user has been idle for IdleAway
// (the idle loop calls it; tests call it with a time of their choosing).
func (s *Service) CheckIdle(now time.Time) {
	idle := s.cfg.IdleAway
	if idle <= 0 {
		return
	}
	s.self.mu.Lock()
	goAway := !s.self.autoAway && s.self.manual == presence.Online && now.Sub(s.self.active) >= idle
	if goAway {
		s.self.autoAway = true
		s.self.set = s.now()
	}
	s.self.mu.Unlock()
	if goAway {
		s.log.Info("idle: showing away", "after", idle)
		s.broadcastPresence()
	}
}

// SetPresence sets our presence and/or status message and tells contacts.
func (s *Service) SetPresence(ctx context.Context, req control.PresenceRequest) (control.Status, error) {
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
		if _, err := s.store.SetOwnProfile(ctx, func(p *store.Profile) { p.Status = msg }); err != nil {
			return control.Status{}, err
		}
	}
	if state != "" {
		if err := s.store.SetSetting(ctx, settingPresence, state); err != nil {
			return control.Status{}, err
		}
		s.self.mu.Lock()
		s.self.manual = state
		s.self.mu.Unlock()
	}
	s.self.mu.Lock()
	s.self.set = s.now()
	s.self.mu.Unlock()
	s.broadcastPresence()
	return s.status.Status(ctx)
}

// broadcastPresence is called whenever our presence changes: it tells
// control-API clients (a self event) and pushes it to every connected
// accepted contact.
func (s *Service) broadcastPresence() {
	s.publishSelf()
	for _, p := range s.peers.ids() {
		if path, _ := s.links.Path(p); path == core.PathNone {
			continue
		}
		s.goRun(func(ctx context.Context) { s.pushPresence(ctx, p) })
	}
}

// publishSelf publishes our presence as status shows it: the state the
// user set (invisible included) and whether idleness shows us away.
func (s *Service) publishSelf() {
	s.self.mu.Lock()
	e := control.Event{Type: control.EventSelf, Presence: s.self.manual, AutoAway: s.self.autoAway}
	s.self.mu.Unlock()
	if prof, err := s.store.OwnProfile(s.life.Context()); err == nil {
		e.StatusMessage = prof.Status
	}
	s.pub.Publish(e)
}

// sharesPresence reports whether p gets our presence: an accepted contact
// we are connected to.
func (s *Service) sharesPresence(ctx context.Context, p peer.ID) bool {
	if path, _ := s.links.Path(p); path == core.PathNone {
		return false
	}
	return s.IsAccepted(ctx, p)
}

// pushPresence pushes our presence to p if it is a connected, accepted
// contact, and records that it got it.
func (s *Service) pushPresence(ctx context.Context, p peer.ID) {
	if !s.sharesPresence(ctx, p) {
		return
	}
	if err := s.net.PushPresence(ctx, p, s.ownPresence(ctx)); err != nil {
		s.log.Debug("presence push failed", "peer", p.ShortString(), "err", err)
		return
	}
	s.peers.mu.Lock()
	s.peers.getLocked(p).presenceSent = true
	s.peers.mu.Unlock()
}

// pushOffline tells connected contacts we are going (a clean stop),
// bounded by OfflinePushTimeout.
func (s *Service) pushOffline() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.OfflinePushTimeout)
	defer cancel()
	var wg sync.WaitGroup
	off := presence.Presence{State: presence.Offline, Set: s.now()}
	for _, p := range s.peers.ids() {
		if !s.sharesPresence(ctx, p) {
			continue
		}
		wg.Go(func() { _ = s.net.PushPresence(ctx, p, off) })
	}
	wg.Wait()
}

// presenceReceiver applies contacts' pushes (presence.Receiver).
type presenceReceiver struct{ s *Service }

func (r presenceReceiver) Allow(ctx context.Context, p peer.ID) bool { return r.s.IsAccepted(ctx, p) }

func (r presenceReceiver) Presence(from peer.ID, _ network.Conn, p presence.Presence) {
	r.s.ReceivePresence(from, p)
}

// ReceivePresence applies a presence push from the accepted contact from
// (the presence protocol's receiver, after its Allow).
func (s *Service) ReceivePresence(from peer.ID, p presence.Presence) {
	s.peers.mu.Lock()
	e := s.peers.getLocked(from)
	if p.Set.Before(e.presenceSet) {
		s.peers.mu.Unlock()
		return // an older push overtaken by a newer one
	}
	changed := e.presence != p.State || e.statusMsg != p.Message
	e.presence, e.statusMsg, e.presenceSet = p.State, p.Message, p.Set
	pushBack := !e.presenceSent
	s.peers.mu.Unlock()
	if changed {
		s.pub.Publish(control.Event{Type: control.EventPresence, PeerID: from.String(), Presence: p.State, StatusMessage: p.Message})
	}
	s.profileAnnounced(from, p.ProfileVersion)
	if pushBack {
		// They may have pushed before they could accept ours (a request
		// just accepted): answer with ours.
		s.goRun(func(ctx context.Context) { s.pushPresence(ctx, from) })
	}
}
