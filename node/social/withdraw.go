package social

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/protocols/contact"
)

// Withdrawn requests. Removing a pending_out contact withdraws our
// request; the receiver must hear of it, or it keeps a pending_in entry
// (and may accept a request we no longer make). The withdrawal is queued
// in the store with the contact's removal (RemoveWithdrawing) and
// delivered over the contact protocol (WITHDRAW) when the receiver is
// reachable:
//
//	RemoveContact(pending_out) ─> store: contact gone + withdrawal queued
//	  ├─ connected now: WITHDRAW at once ─ answered ─> dropped, link stops
//	  └─ else: StopContact, then KeepLink (a bare link: no chat, no
//	     presence, no token) ─ LinkUp ─> WITHDRAW ─ answered ─> dropped,
//	     link stops; not answered: again on the next LinkUp, or on a
//	     heartbeat once RequestRetry passed
//	restart ─> New loads the queue ─> KeepLink for each
//	WithdrawGiveUp (30 days) without an answer ─> dropped, link stops
//	AddContact / BlockContact of the peer ─> dropped (the new request,
//	  or the block, supersedes it)
//
// An answer is OK (dropped, or already gone) or a refusal other than a
// temporary failure (the receiver has no request from us any more: it
// answered it meanwhile); both end the withdrawal.

// withdrawals are our withdrawn requests the receiver has not heard of.
type withdrawals struct {
	mu sync.Mutex // guards m; held while a bare link is started for one
	m  map[peer.ID]*withdrawal
}

type withdrawal struct {
	queued  time.Time // when the request was withdrawn
	lastTry time.Time // when WITHDRAW was last sent
	busy    bool      // a WITHDRAW is in flight
}

func (w *withdrawals) init() { w.m = map[peer.ID]*withdrawal{} }

func (w *withdrawals) add(p peer.ID, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.m[p] = &withdrawal{queued: at}
}

// pending reports whether a withdrawal to p is queued.
func (w *withdrawals) pending(p peer.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.m[p] != nil
}

// begin marks an attempt to deliver p's withdrawal; false if none is
// queued or one is in flight.
func (w *withdrawals) begin(p peer.ID, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	wd := w.m[p]
	if wd == nil || wd.busy {
		return false
	}
	wd.busy, wd.lastTry = true, now
	return true
}

func (w *withdrawals) end(p peer.ID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wd := w.m[p]; wd != nil {
		wd.busy = false
	}
}

// due reports whether p's withdrawal may be sent again over a live link.
func (w *withdrawals) due(p peer.ID, now time.Time, retry time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	wd := w.m[p]
	return wd != nil && !wd.busy && now.Sub(wd.lastTry) >= retry
}

// remove forgets p's withdrawal; it reports whether there was one.
func (w *withdrawals) remove(p peer.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.m[p]
	delete(w.m, p)
	return ok
}

// olderThan lists the withdrawals queued before t.
func (w *withdrawals) olderThan(t time.Time) []peer.ID {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []peer.ID
	for p, wd := range w.m {
		if wd.queued.Before(t) {
			out = append(out, p)
		}
	}
	return out
}

func (w *withdrawals) ids() []peer.ID {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Collect(maps.Keys(w.m))
}

// PendingWithdrawals lists the peers still owed a withdrawal (for status
// and tests).
func (s *Service) PendingWithdrawals() []peer.ID { return s.wds.ids() }

// withdrawLoop keeps a bare link with every receiver owed a withdrawal
// from before the start (loaded; those queued since have theirs), and
// gives up on withdrawals older than WithdrawGiveUp, for the Service's
// lifetime.
func (s *Service) withdrawLoop(ctx context.Context, loaded []peer.ID) {
	s.expireWithdrawals(ctx)
	for _, p := range loaded {
		s.keepWithdrawLink(p)
	}
	t := time.NewTicker(s.cfg.WithdrawCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.expireWithdrawals(ctx)
		}
	}
}

// expireWithdrawals drops the withdrawals nobody answered for
// WithdrawGiveUp.
func (s *Service) expireWithdrawals(ctx context.Context) {
	for _, p := range s.wds.olderThan(s.now().Add(-s.cfg.WithdrawGiveUp)) {
		s.log.Info("friend request withdrawal given up; the contact was not reachable", "peer", p.ShortString(), "after", s.cfg.WithdrawGiveUp)
		s.finishWithdrawal(ctx, p, true)
	}
}

// keepWithdrawLink starts a bare link with p if its withdrawal is still
// queued (decided under the withdrawals' lock, so that a withdrawal that
// ends meanwhile stops the link after it started).
func (s *Service) keepWithdrawLink(p peer.ID) {
	s.wds.mu.Lock()
	defer s.wds.mu.Unlock()
	if s.wds.m[p] != nil {
		s.links.KeepLink(p)
	}
}

// handleWithdrawLink follows the bare link kept for p's withdrawal: it
// sends WITHDRAW when the link comes up, and again on a heartbeat once
// RequestRetry passed since the last try.
func (s *Service) handleWithdrawLink(ev core.LinkEvent) {
	p := ev.Peer
	switch ev.Change {
	case core.LinkUp:
		s.goRun(func(ctx context.Context) { s.sendWithdraw(ctx, p, true) })
	case core.LinkPinged:
		if s.wds.due(p, s.now(), s.cfg.RequestRetry) {
			s.goRun(func(ctx context.Context) { s.sendWithdraw(ctx, p, true) })
		}
	}
}

// sendWithdraw sends p the withdrawal of our request, bounded by
// WithdrawTimeout, and ends the withdrawal if p answered (stopping the
// bare link if stopLink); it reports whether it did.
func (s *Service) sendWithdraw(ctx context.Context, p peer.ID, stopLink bool) bool {
	if !s.wds.begin(p, s.now()) {
		return false
	}
	defer s.wds.end(p)
	cctx, cancel := context.WithTimeout(ctx, s.cfg.WithdrawTimeout)
	resp, err := s.net.SendContact(cctx, p, contact.Request{Kind: contact.KindWithdraw})
	cancel()
	if err == nil && resp.Status != contact.StatusOK && (resp.Status != contact.StatusRefused || resp.Reason == tryLater.Reason) {
		err = fmt.Errorf("%s: %s", resp.Status, resp.Reason)
	}
	if err != nil {
		s.log.Debug("friend request withdrawal not delivered yet", "peer", p.ShortString(), "err", err)
		return false
	}
	s.log.Info("friend request withdrawal delivered", "peer", p.ShortString(), "answer", resp.Status.String())
	s.finishWithdrawal(ctx, p, stopLink)
	return true
}

// finishWithdrawal forgets p's withdrawal (delivered, or given up) and,
// if stopLink, stops the bare link kept for it.
func (s *Service) finishWithdrawal(ctx context.Context, p peer.ID, stopLink bool) {
	s.reqs.mu.Lock()
	existed := s.dropWithdrawal(ctx, p)
	s.reqs.mu.Unlock()
	if !existed || !stopLink {
		return // AddContact or BlockContact took it over; or the caller stops the link
	}
	s.goRun(func(ctx context.Context) {
		s.links.StopContact(p)
		// p may have been added again between the drop and the stop:
		// its new request needs the link back.
		if c, err := s.store.ContactByPeer(ctx, p); err == nil && WantsLink(c.State) {
			s.links.StartContact(p)
		}
	})
}

// dropWithdrawal forgets p's withdrawal, in memory and in the store; it
// reports whether there was one. Callers hold reqs.mu.
func (s *Service) dropWithdrawal(ctx context.Context, p peer.ID) bool {
	existed := s.wds.remove(p)
	if _, err := s.store.DropWithdrawal(context.WithoutCancel(ctx), p); err != nil {
		// Kept in the store: sent again after a restart, where the
		// receiver answers "already gone".
		s.log.Warn("forget friend request withdrawal", "peer", p.ShortString(), "err", err)
	}
	return existed
}
