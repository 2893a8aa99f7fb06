package offline

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/mailbox"
	"github.com/natterim/natter/protocols/mailbox/seal"
)

// depositLoop deposits what is due, and checks the fate of deposits on
// servers that are not ours, for the Service's lifetime.
func (s *Service) depositLoop(ctx context.Context) {
	tick := min(max(s.cfg.After/2, 500*time.Millisecond), 30*time.Second)
	t := time.NewTimer(tick)
	defer t.Stop()
	var lastFates time.Time
	for ctx.Err() == nil {
		s.depositDue(ctx)
		if time.Since(lastFates) >= s.cfg.StatusInterval {
			lastFates = time.Now()
			s.checkFates(ctx, "", false)
		}
		t.Reset(tick)
		select {
		case <-ctx.Done():
			return
		case <-s.kickCh:
		case <-t.C:
		}
	}
}

// depositDue deposits, for every contact we have no link with, the outbox
// entries that waited mailbox.after.
func (s *Service) depositDue(ctx context.Context) {
	due, err := s.st.MailboxDue(ctx)
	if err != nil {
		s.log.Warn("mailbox: read outbox", "err", err)
		return
	}
	now := time.Now()
	for p, oldest := range due {
		if ctx.Err() != nil {
			return
		}
		if now.Sub(oldest) < s.cfg.After {
			continue
		}
		if path, _ := s.links.Path(p); path != core.PathNone {
			continue
		}
		if !s.policy.Allow(ctx, p) {
			continue
		}
		s.mu.Lock()
		wait := now.Before(s.contact(p).next)
		s.mu.Unlock()
		if wait {
			continue
		}
		if !s.lockDeposits(ctx) {
			return
		}
		err := s.depositFor(ctx, p, time.Now().Add(-s.cfg.After))
		s.unlockDeposits()
		s.depositDone(ctx, p, err)
	}
}

// depositDone records the outcome of a deposit pass for p: a failure
// backs the next attempt off.
func (s *Service) depositDone(ctx context.Context, p peer.ID, err error) {
	s.mu.Lock()
	c := s.contact(p)
	if err != nil {
		c.next = time.Now().Add(c.bo.Next())
		c.lastErr = err.Error()
	} else {
		c.bo.Reset()
		c.next, c.lastErr = time.Time{}, ""
	}
	s.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		s.log.Debug("mailbox deposit not done", "peer", p.ShortString(), "err", err)
	}
}

// lockDeposits takes the right to deposit (the deposit loop and Flush
// take turns, so that no entry is sealed twice at once); false if ctx
// ended first.
func (s *Service) lockDeposits(ctx context.Context) bool {
	select {
	case s.depositing <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Service) unlockDeposits() { <-s.depositing }

// Flush deposits now, without waiting mailbox.after, everything queued
// for the accepted contacts we have no link with: the node calls it on a
// clean stop, before the links go down, so that a message sent just
// before stopping waits in the contact's mailbox rather than in our
// outbox until we are back. It is bounded by ctx (a contact whose server
// is slow or unreachable is left for the next start), ignores the retry
// backoff (it is the last chance), and leaves linked contacts alone (the
// chat stream delivers to them). It returns the number of contacts whose
// entries are all in a mailbox now, and the first error met.
func (s *Service) Flush(ctx context.Context) (int, error) {
	if !s.cfg.Enabled {
		return 0, nil
	}
	if !s.lockDeposits(ctx) {
		return 0, ctx.Err()
	}
	defer s.unlockDeposits()
	due, err := s.st.MailboxDue(ctx)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	var (
		done     int
		firstErr error
	)
	for p := range due {
		if ctx.Err() != nil {
			return done, ctx.Err()
		}
		if path, _ := s.links.Path(p); path != core.PathNone {
			continue
		}
		if !s.policy.Allow(ctx, p) {
			continue
		}
		err := s.depositFor(ctx, p, time.Now())
		s.depositDone(ctx, p, err)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", p.ShortString(), err)
			}
			continue
		}
		done++
	}
	return done, firstErr
}

// serverInfo is a rendezvous to try for a contact's mailbox.
type serverInfo struct {
	ai   peer.AddrInfo
	ours bool
}

// candidates lists the servers where p may have a mailbox, best first:
// the one that took our last deposit, our connected rendezvous servers
// that p's invite names, our other connected ones, then the ones p's
// invite names that we are not linked to.
func (s *Service) candidates(ctx context.Context, p peer.ID) []serverInfo {
	var invited []peer.AddrInfo
	if c, err := s.st.ContactByPeer(ctx, p); err == nil {
		invited, _ = peer.AddrInfosFromP2pAddrs(c.Rendezvous...)
	}
	inInvite := func(id peer.ID) bool {
		return slices.ContainsFunc(invited, func(ai peer.AddrInfo) bool { return ai.ID == id })
	}
	var first, second, third, fourth []serverInfo
	s.mu.Lock()
	last := s.contact(p).server
	s.mu.Unlock()
	for _, ai := range s.cfg.Rendezvous {
		if !s.links.Connected(ai.ID) {
			continue
		}
		si := serverInfo{ai: ai, ours: true}
		switch {
		case ai.ID == last:
			first = append(first, si)
		case inInvite(ai.ID):
			second = append(second, si)
		default:
			third = append(third, si)
		}
	}
	for _, ai := range invited {
		if s.isOurs(ai.ID) {
			continue
		}
		si := serverInfo{ai: ai}
		if ai.ID == last {
			first = append(first, si)
		} else {
			fourth = append(fourth, si)
		}
	}
	return slices.Concat(first, second, third, fourth)
}

// connectServer makes sure we are connected to a server.
func (s *Service) connectServer(ctx context.Context, ai peer.AddrInfo) error {
	if s.links.Connected(ai.ID) {
		return nil
	}
	if len(ai.Addrs) == 0 {
		return fmt.Errorf("rendezvous %s: not connected and no address", ai.ID.ShortString())
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	if err := s.links.Connect(cctx, ai); err != nil {
		return fmt.Errorf("connect to rendezvous %s: %w", ai.ID.ShortString(), err)
	}
	return nil
}

// depositFor deposits p's outbox entries queued at or before cutoff in
// p's mailbox. Callers hold the deposit lock.
func (s *Service) depositFor(ctx context.Context, p peer.ID, cutoff time.Time) error {
	tok, exp, err := s.st.Token(ctx, p)
	if errors.Is(err, store.ErrNotFound) || err == nil && time.Until(exp) < time.Minute {
		return errNoToken
	}
	if err != nil {
		return fmt.Errorf("read token: %w", err)
	}
	servers := s.candidates(ctx, p)
	if len(servers) == 0 {
		return errNoServer
	}
	// A server that cannot take the boxes (no mailbox for p there, full,
	// unreachable, no mailbox service) hands over to the next one; a bad
	// token is bad everywhere.
	var lastErr error
	for _, srv := range servers {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.connectServer(ctx, srv.ai); err != nil {
			lastErr = err
			continue
		}
		err := s.depositAt(ctx, p, tok, srv, cutoff)
		if err == nil {
			s.mu.Lock()
			s.contact(p).server = srv.ai.ID
			s.mu.Unlock()
			return nil
		}
		var re *mailbox.RefusedError
		if errors.As(err, &re) && re.Code == mailbox.CodeBadToken {
			// Ours is stale (or the server's clock is off): wait for a
			// fresh one, which comes on our next connection.
			_ = s.st.DropToken(ctx, p)
			return err
		}
		lastErr = fmt.Errorf("rendezvous %s: %w", srv.ai.ID.ShortString(), err)
	}
	return lastErr
}

// depositAt seals and deposits p's entries queued at or before cutoff at
// one server, in order, until none is left or the server refuses
// something.
func (s *Service) depositAt(ctx context.Context, p peer.ID, tok []byte, srv serverInfo, cutoff time.Time) error {
	addrs := ""
	if !srv.ours {
		parts := make([]string, len(srv.ai.Addrs))
		for i, a := range srv.ai.Addrs {
			parts[i] = a.String()
		}
		addrs = strings.Join(parts, " ")
	}
	for range maxRounds {
		entries, err := s.st.Undeposited(ctx, p, cutoff, mailbox.MaxItems)
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		s.mu.Lock()
		tooLarge := s.contact(p).tooLarge
		entries = slices.DeleteFunc(entries, func(u store.Undeposited) bool { return tooLarge[u.ID] })
		s.mu.Unlock()
		if len(entries) == 0 {
			return nil
		}
		var (
			items []mailbox.Item
			recs  []store.DepositRecord
			ids   []chat.MsgID
			size  int
		)
		for _, e := range entries {
			dep := e.DepositID
			if e.Server != srv.ai.ID {
				if _, err := rand.Read(dep[:]); err != nil {
					return fmt.Errorf("deposit id: %w", err)
				}
			}
			payload, err := proto.Marshal(s.chat.ToWire(e.OutboxEntry))
			if err != nil {
				return fmt.Errorf("encode message: %w", err)
			}
			box, err := seal.Seal(s.key, p, dep, payload, time.Now())
			if err != nil {
				return fmt.Errorf("seal: %w", err)
			}
			if len(items) > 0 && size+len(box) > depositBatchBytes {
				break
			}
			size += len(box)
			items = append(items, mailbox.Item{ID: dep, Box: box})
			recs = append(recs, store.DepositRecord{MsgID: e.ID, Peer: p, DepositID: dep, Server: srv.ai.ID, Addrs: addrs})
			ids = append(ids, e.ID)
		}
		if err := s.st.BeginDeposits(ctx, recs); err != nil {
			return fmt.Errorf("record deposits: %w", err)
		}
		codes, err := s.remote.Deposit(ctx, srv.ai.ID, p, tok, items)
		if err != nil {
			var re *mailbox.RefusedError
			if errors.As(err, &re) {
				// Nothing was stored: forget the ids.
				if _, ferr := s.st.Deposited(ctx, p, nil, ids); ferr != nil {
					return fmt.Errorf("record refusal: %w", ferr)
				}
			}
			return err
		}
		var stored, refused []chat.MsgID
		var refusal mailbox.Code
		for i, c := range codes {
			switch c {
			case mailbox.CodeOK, mailbox.CodeDuplicate:
				stored = append(stored, ids[i])
			default:
				refused = append(refused, ids[i])
				if refusal == 0 {
					refusal = c
				}
				if c == mailbox.CodeTooLarge {
					s.mu.Lock()
					s.contact(p).tooLarge[ids[i]] = true
					s.mu.Unlock()
				}
			}
		}
		if len(refused) == 0 {
			// Before the history says "stored" (Deposited commits it):
			// Mailbox names the server that has the messages by then.
			s.mu.Lock()
			s.contact(p).server = srv.ai.ID
			s.mu.Unlock()
		}
		changes, err := s.st.Deposited(ctx, p, stored, refused)
		if err != nil {
			return fmt.Errorf("record deposits: %w", err)
		}
		s.chat.ApplyChanges(p, changes)
		if len(stored) > 0 {
			s.log.Info("messages stored in a contact's mailbox", "peer", p.ShortString(), "server", srv.ai.ID.ShortString(), "count", len(stored))
		}
		if len(refused) > 0 {
			return fmt.Errorf("rendezvous %s refused %d of %d boxes (%s)", srv.ai.ID.ShortString(), len(refused), len(items), mailbox.CodeName(refusal))
		}
	}
	return nil
}
