package offline

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/protocols/mailbox"
)

// tokenPush is the state of giving one contact its token.
type tokenPush struct {
	inFlight bool
	retry    time.Time // after a failure, not before
	bo       *core.Backoff
}

// tokenDue reports whether p should be given a token now: none was given
// by this daemon lately, none is on its way, and no failure is recent.
func (s *Service) tokenDue(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenDueLocked(p)
}

// tokenDueLocked is tokenDue for callers that hold s.mu.
func (s *Service) tokenDueLocked(p peer.ID) bool {
	if !s.cfg.Enabled {
		return false
	}
	tp := s.pushing[p]
	return time.Since(s.pushed[p]) >= s.cfg.TokenTTL/8 && (tp == nil || !tp.inFlight && !time.Now().Before(tp.retry))
}

// PushToken gives p a fresh deposit token if it is an accepted contact we
// are connected to and it has not had one from this daemon lately. It
// runs on the caller's goroutine, bounded by ctx (a contact just accepted
// gets one at once).
func (s *Service) PushToken(ctx context.Context, p peer.ID) {
	if !s.tokenDue(p) || !s.policy.Allow(ctx, p) {
		return
	}
	s.mu.Lock()
	// Again under the lock: another push may have ended meanwhile.
	if !s.tokenDueLocked(p) {
		s.mu.Unlock()
		return
	}
	tp := s.pushing[p]
	if tp == nil {
		tp = &tokenPush{bo: core.NewBackoff(2*s.cfg.Heartbeat, 30*time.Minute)}
		s.pushing[p] = tp
	}
	tp.inFlight = true
	s.mu.Unlock()
	err := s.giveToken(ctx, p)
	s.mu.Lock()
	defer s.mu.Unlock()
	tp.inFlight = false
	if err != nil {
		tp.retry = time.Now().Add(tp.bo.Next())
		s.log.Debug("deposit token not delivered", "peer", p.ShortString(), "err", err)
		return
	}
	tp.bo.Reset()
	s.pushed[p] = time.Now()
}

func (s *Service) giveToken(ctx context.Context, p peer.ID) error {
	tok, err := mailbox.IssueToken(s.key, p, time.Now().Add(s.cfg.TokenTTL))
	if err != nil {
		return err
	}
	if err := s.remote.PushToken(ctx, p, tok); err != nil {
		return fmt.Errorf("push token: %w", err)
	}
	return nil
}

// TokenReceiver keeps the tokens contacts give us: node serves it with a
// mailbox.TokenService.
func (s *Service) TokenReceiver() mailbox.TokenReceiver { return tokenReceiver{s} }

// tokenReceiver is the Service as a mailbox.TokenReceiver.
type tokenReceiver struct{ s *Service }

// Allow lets accepted contacts give us tokens.
func (r tokenReceiver) Allow(ctx context.Context, p peer.ID) bool { return r.s.policy.Allow(ctx, p) }

// Token keeps from's token; a deposit for from that waited for one may go
// now.
func (r tokenReceiver) Token(ctx context.Context, from peer.ID, t mailbox.Token) error {
	s := r.s
	if err := s.st.SaveToken(ctx, from, t.Raw, t.Expires); err != nil {
		return fmt.Errorf("save token: %w", err)
	}
	s.log.Debug("deposit token received", "peer", from.ShortString(), "expires", t.Expires.Format(time.RFC3339))
	s.mu.Lock()
	c := s.contact(from)
	c.bo.Reset()
	c.next = time.Time{}
	s.mu.Unlock()
	s.kick()
	return nil
}
