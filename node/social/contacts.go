package social

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/invite"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/contact"
	"github.com/natterim/natter/protocols/names"
	"github.com/natterim/natter/protocols/wire"
)

// Friend requests (protocols/contact). The states of a contact:
//
//	contacts add B      A: pending_out ──REQUEST──▶ B: pending_in
//	contacts accept A   A: accepted    ◀──ACCEPT─── B: accepted
//	contacts reject A   A: (removed)   ◀──REJECT─── B: (removed; cooldown)
//	contacts remove B   A: (removed)   ─WITHDRAW──▶ B: (removed), if connected
//	contacts block X    X is refused by the connection gater
//
// The requester sends REQUEST every time a connection to the receiver
// opens (LinkUp) and every RequestRetry while one stays open (LinkPinged),
// until it gets a final answer; the receiver answers a repeated REQUEST
// from its current state, so an ACCEPT or REJECT lost on the way is learnt
// next time. Only accepted contacts reach chat history or see our
// presence.

// requests serialises the transitions of the friend-request state machine
// (API calls and incoming requests race otherwise). Recent rejections are
// in the store (RejectedAt), so that a restart keeps their cool-down.
type requests struct {
	mu sync.Mutex // guards every transition
}

// WantsLink reports whether the node keeps a link with a contact in
// state: accepted contacts, and those we sent a request to (to deliver
// it). Requesters wait for our answer; blocked peers get nothing.
func WantsLink(state store.ContactState) bool {
	return state == store.StateAccepted || state == store.StatePendingOut
}

// IsAccepted reports whether p is an accepted contact: the only peers that
// chat with us and see our presence.
func (s *Service) IsAccepted(ctx context.Context, p peer.ID) bool {
	c, err := s.store.ContactByPeer(ctx, p)
	return err == nil && c.State == store.StateAccepted
}

// FindContact resolves a contact reference (name or peer ID); an unknown
// one is a core.NotFound error.
func (s *Service) FindContact(ctx context.Context, ref string) (store.Contact, error) {
	c, err := s.store.FindContact(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return c, core.NotFound(fmt.Errorf("no contact %q (see: natter contacts list)", ref))
	}
	return c, err
}

// Contacts lists every contact with its key-change warning, if any.
func (s *Service) Contacts(ctx context.Context) ([]control.Contact, error) {
	cs, err := s.store.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	warnings := s.NameWarnings(ctx)
	out := make([]control.Contact, 0, len(cs))
	for _, c := range cs {
		ac := toAPIContact(c)
		ac.Warning = warnings[c.PeerID]
		out = append(out, ac)
	}
	return out, nil
}

// toAPIContact is c as the control API shows it.
func toAPIContact(c store.Contact) control.Contact {
	rdvs := make([]string, 0, len(c.Rendezvous))
	for _, a := range c.Rendezvous {
		rdvs = append(rdvs, a.String())
	}
	return control.Contact{PeerID: c.PeerID.String(), Name: c.Name, State: string(c.State), Rendezvous: rdvs, AddedAt: c.CreatedAt,
		ReadReceipts: c.ReadReceipts, Note: c.Note, DirName: c.DirName}
}

// requestHandler answers /natter/contact/1.0.0 (contact.Handler).
type requestHandler struct{ s *Service }

func (h requestHandler) HandleContact(ctx context.Context, from peer.ID, req contact.Request) contact.Response {
	return h.s.HandleContact(ctx, from, req)
}

// HandleContact applies a friend-request message from a peer and answers
// it (the contact protocol's handler).
func (s *Service) HandleContact(ctx context.Context, from peer.ID, req contact.Request) contact.Response {
	s.reqs.mu.Lock()
	defer s.reqs.mu.Unlock()
	c, err := s.store.ContactByPeer(ctx, from)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return tryLater
	}
	switch req.Kind {
	case contact.KindRequest:
		switch {
		case !known:
			at, err := s.store.RejectedAt(ctx, from)
			if err != nil {
				return tryLater
			}
			if !at.IsZero() && s.now().Sub(at) < s.cfg.RejectCooldown {
				return contact.Response{Status: contact.StatusRejected}
			}
			pending, err := s.store.CountState(ctx, store.StatePendingIn)
			if err != nil {
				return tryLater
			}
			if pending >= s.cfg.MaxPending {
				s.metrics.StreamError("contact", errRefusedFull)
				return contact.Response{Status: contact.StatusRefused, Reason: "too many requests are waiting for an answer; try again later"}
			}
			nc := store.Contact{PeerID: from, State: store.StatePendingIn, Note: req.Note, Name: s.freeName(ctx, req.Name)}
			if err := s.store.AddContact(ctx, nc); err != nil {
				return tryLater
			}
			s.log.Info("friend request", "peer", from.ShortString(), "name", req.Name, "note", req.Note)
			s.pub.Publish(control.Event{Type: control.EventContact, PeerID: from.String(), Name: nc.Name, State: string(store.StatePendingIn), Note: req.Note})
			return contact.Response{Status: contact.StatusPending}
		case c.State == store.StatePendingIn:
			if c.Note != req.Note {
				c.Note = req.Note
				_ = s.store.UpdateContact(ctx, c)
			}
			return contact.Response{Status: contact.StatusPending}
		case c.State == store.StatePendingOut:
			// We asked them too: both want it.
			if err := s.setAccepted(ctx, c); err != nil {
				return tryLater
			}
			return contact.Response{Status: contact.StatusAccepted}
		case c.State == store.StateAccepted:
			return contact.Response{Status: contact.StatusAccepted}
		default: // blocked: the gater should have stopped them
			return contact.Response{Status: contact.StatusRefused}
		}
	case contact.KindAccept:
		switch {
		case known && c.State == store.StatePendingOut:
			if err := s.setAccepted(ctx, c); err != nil {
				return tryLater
			}
			return contact.Response{Status: contact.StatusOK}
		case known && c.State == store.StateAccepted:
			return contact.Response{Status: contact.StatusOK}
		}
		return contact.Response{Status: contact.StatusRefused, Reason: "no request of ours to accept"}
	case contact.KindReject:
		if known && c.State == store.StatePendingOut {
			s.dropRejected(c)
			return contact.Response{Status: contact.StatusOK}
		}
		return contact.Response{Status: contact.StatusRefused, Reason: "no request of ours to reject"}
	case contact.KindWithdraw:
		switch {
		case !known:
			return contact.Response{Status: contact.StatusOK} // already gone
		case c.State != store.StatePendingIn:
			return contact.Response{Status: contact.StatusRefused, Reason: "no request from you to withdraw"}
		}
		if err := s.store.RemoveContact(ctx, from); err != nil {
			return tryLater
		}
		s.log.Info("friend request withdrawn", "peer", from.ShortString(), "name", c.Name)
		s.pub.Publish(control.Event{Type: control.EventContact, PeerID: from.String(), Name: c.Name, State: control.StateWithdrawn})
		return contact.Response{Status: contact.StatusOK}
	}
	return contact.Response{Status: contact.StatusRefused, Reason: "unknown request"}
}

// tryLater answers a request we could not handle (the database failed);
// the requester asks again later by itself.
var tryLater = contact.Response{Status: contact.StatusRefused, Reason: "temporary failure; try again later"}

// errRefusedFull is counted (reason "refused") when a request finds the
// pending queue full.
var errRefusedFull = fmt.Errorf("request queue full: %w", wire.ErrRefused)

// freeName returns claimed if it can be the local name of a new contact
// (valid, free, not a peer ID), else "".
func (s *Service) freeName(ctx context.Context, claimed string) string {
	if claimed == "" || len(claimed) > invite.MaxNameLen {
		return ""
	}
	if _, err := peer.Decode(claimed); err == nil {
		return ""
	}
	if _, err := s.store.FindContact(ctx, claimed); err == nil || !errors.Is(err, store.ErrNotFound) {
		return ""
	}
	return claimed
}

// setAccepted makes c an accepted contact and starts what accepted
// contacts get (a link, presence, a deposit token). Callers hold
// reqs.mu.
func (s *Service) setAccepted(ctx context.Context, c store.Contact) error {
	c.State = store.StateAccepted
	if err := s.store.UpdateContact(ctx, c); err != nil {
		return err
	}
	s.log.Info("contact accepted", "peer", c.PeerID.ShortString(), "name", c.Name)
	s.pub.Publish(control.Event{Type: control.EventContact, PeerID: c.PeerID.String(), Name: c.Name, State: string(store.StateAccepted)})
	s.links.StartContact(c.PeerID)
	p := c.PeerID
	s.goRun(func(ctx context.Context) {
		s.pushPresence(ctx, p)
		s.tokens.PushToken(ctx, p)
	})
	return nil
}

// dropRejected removes a pending_out contact whose request was rejected.
// Callers hold reqs.mu.
func (s *Service) dropRejected(c store.Contact) {
	if err := s.store.RemoveContact(s.life.Context(), c.PeerID); err != nil {
		s.log.Warn("remove rejected request", "peer", c.PeerID.ShortString(), "err", err)
		return
	}
	s.log.Info("friend request rejected", "peer", c.PeerID.ShortString(), "name", c.Name)
	s.pub.Publish(control.Event{Type: control.EventContact, PeerID: c.PeerID.String(), Name: c.Name, State: control.StateRejected})
	s.peers.forget(c.PeerID)
	// Stopping the link waits for it; not under the lock.
	p := c.PeerID
	s.goRun(func(context.Context) { s.links.StopContact(p) })
}

// sendRequest sends our pending request to p (if it still is one) and
// applies the answer. It runs in its own goroutine.
func (s *Service) sendRequest(ctx context.Context, p peer.ID) {
	c, err := s.store.ContactByPeer(ctx, p)
	if err != nil || c.State != store.StatePendingOut {
		return
	}
	name, _ := s.store.Setting(ctx, store.SettingName)
	if len(name) > contact.MaxNameBytes {
		name = ""
	}
	resp, err := s.net.SendContact(ctx, p, contact.Request{Kind: contact.KindRequest, Note: c.Note, Name: name})
	if err != nil {
		s.links.SetError(p, fmt.Errorf("friend request: %w", err))
		s.log.Debug("friend request not delivered", "peer", p.ShortString(), "err", err)
		return
	}
	s.reqs.mu.Lock()
	defer s.reqs.mu.Unlock()
	// The state may have moved while the request was out.
	if c, err = s.store.ContactByPeer(ctx, p); err != nil || c.State != store.StatePendingOut {
		return
	}
	switch resp.Status {
	case contact.StatusAccepted:
		if err := s.setAccepted(ctx, c); err != nil {
			s.log.Warn("accept contact", "peer", p.ShortString(), "err", err)
		}
	case contact.StatusRejected:
		s.dropRejected(c)
	case contact.StatusPending:
		s.links.SetError(p, nil)
	default:
		s.links.SetError(p, fmt.Errorf("friend request refused: %s", resp.Reason))
	}
}

// retryRequest sends our pending friend request again if the last one is
// older than RequestRetry (its answer may have been lost).
func (s *Service) retryRequest(p peer.ID) {
	now := s.now()
	s.peers.mu.Lock()
	e := s.peers.getLocked(p)
	due := now.Sub(e.lastRequest) >= s.cfg.RequestRetry
	if due {
		e.lastRequest = now
	}
	s.peers.mu.Unlock()
	if due {
		s.goRun(func(ctx context.Context) { s.sendRequest(ctx, p) })
	}
}

// answerRequest tells p we accepted or rejected its request, if it is
// connected; if not, its next REQUEST learns the answer.
func (s *Service) answerRequest(p peer.ID, kind contact.Request) {
	s.goRun(func(ctx context.Context) {
		if _, err := s.net.SendContact(ctx, p, kind); err != nil {
			s.log.Debug("answer to friend request not delivered now", "peer", p.ShortString(), "err", err)
		}
	})
}

// AddContact adds a contact from a peer ID or an invite and sends it a
// friend request (state pending_out) with req.Note. If that peer had asked
// us already (pending_in), adding it accepts its request.
func (s *Service) AddContact(ctx context.Context, req control.AddContactRequest) (store.Contact, error) {
	target := strings.TrimSpace(req.Target)
	c := store.Contact{Name: strings.TrimSpace(req.Name), State: store.StatePendingOut, Note: req.Note}
	if invite.IsInvite(target) {
		inv, err := invite.Parse(target)
		if err != nil {
			return c, core.Invalid(err)
		}
		c.PeerID = inv.Peer
		if c.Name == "" {
			c.Name = inv.Name
		}
		for _, ai := range inv.Rendezvous {
			as, err := peer.AddrInfoToP2pAddrs(&ai)
			if err == nil {
				c.Rendezvous = append(c.Rendezvous, as...)
			}
		}
	} else if id, err := peer.Decode(target); err == nil {
		c.PeerID = id
	} else if strings.HasPrefix(target, "12D3KooW") {
		return c, core.Invalid(fmt.Errorf("%q is neither a peer ID (truncated? %v) nor an invite", target, err))
	} else if dn, nerr := names.Normalize(target); nerr == nil {
		if err := s.resolveContactName(ctx, &c, dn); err != nil {
			return c, err
		}
	} else {
		return c, core.Invalid(fmt.Errorf("%q is neither a peer ID, an invite (natter:...) nor a directory name (%v)", target, nerr))
	}
	if c.PeerID == s.net.ID() {
		return c, core.Invalid(errors.New("that is this node's own peer ID"))
	}
	if c.Name != "" {
		if err := checkContactName(c.Name); err != nil {
			return c, err
		}
	}
	if err := contact.ValidateText("note", c.Note, contact.MaxNoteBytes); err != nil {
		return c, core.Invalid(err)
	}
	s.reqs.mu.Lock()
	if old, err := s.store.ContactByPeer(ctx, c.PeerID); err == nil {
		s.reqs.mu.Unlock()
		switch old.State {
		case store.StatePendingIn:
			return s.AcceptContact(ctx, old.PeerID.String(), c.Name)
		case store.StateBlocked:
			return c, core.Conflict(fmt.Errorf("%s is blocked; to unblock it: natter contacts remove %s", old.Label(), old.Label()))
		}
		return c, core.Conflict(fmt.Errorf("%s is already a contact (as %q, %s)", c.PeerID, old.Label(), old.State))
	}
	err := s.store.AddContact(ctx, c)
	if err == nil {
		// Asking again cancels a withdrawal of the earlier request not
		// delivered yet; the link it kept carries the new request.
		s.dropWithdrawal(ctx, c.PeerID)
	}
	s.reqs.mu.Unlock()
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return c, core.Conflict(fmt.Errorf("the name %q is taken by another contact", c.Name))
		}
		return c, err
	}
	c, err = s.store.ContactByPeer(ctx, c.PeerID)
	if err != nil {
		return c, err
	}
	s.log.Info("contact added, friend request pending", "peer", c.PeerID.ShortString(), "name", c.Name)
	s.links.StartContact(c.PeerID)
	return c, nil
}

// AcceptContact accepts ref's pending request, optionally naming it.
func (s *Service) AcceptContact(ctx context.Context, ref, name string) (store.Contact, error) {
	s.reqs.mu.Lock()
	defer s.reqs.mu.Unlock()
	c, err := s.FindContact(ctx, ref)
	if err != nil {
		return c, err
	}
	switch c.State {
	case store.StatePendingIn:
	case store.StateAccepted:
		return c, core.Conflict(fmt.Errorf("%s is already an accepted contact", c.Label()))
	default:
		return c, core.Conflict(fmt.Errorf("%s has no request waiting for you (state %s)", c.Label(), c.State))
	}
	if name != "" {
		if err := checkContactName(name); err != nil {
			return c, err
		}
		c.Name = name
	}
	if err := s.setAccepted(ctx, c); err != nil {
		if errors.Is(err, store.ErrExists) {
			return c, core.Conflict(fmt.Errorf("the name %q is taken by another contact", name))
		}
		return c, err
	}
	s.answerRequest(c.PeerID, contact.Request{Kind: contact.KindAccept})
	return s.store.ContactByPeer(ctx, c.PeerID)
}

// RejectContact rejects ref's pending request and forgets it.
func (s *Service) RejectContact(ctx context.Context, ref string) (store.Contact, error) {
	s.reqs.mu.Lock()
	defer s.reqs.mu.Unlock()
	c, err := s.FindContact(ctx, ref)
	if err != nil {
		return c, err
	}
	if c.State != store.StatePendingIn {
		return c, core.Conflict(fmt.Errorf("%s has no request waiting for you (state %s); to drop a contact use: natter contacts remove", c.Label(), c.State))
	}
	now := s.now()
	if err := s.store.RemoveRejected(ctx, c.PeerID, now, now.Add(-s.cfg.RejectCooldown)); err != nil {
		return c, err
	}
	s.log.Info("friend request rejected by us", "peer", c.PeerID.ShortString())
	s.pub.Publish(control.Event{Type: control.EventContact, PeerID: c.PeerID.String(), Name: c.Name, State: control.StateRejected})
	s.answerRequest(c.PeerID, contact.Request{Kind: contact.KindReject})
	return c, nil
}

// BlockContact blocks ref: a contact (any state) or any peer ID. Its
// connections are closed and refused from now on; nothing from it reaches
// us.
func (s *Service) BlockContact(ctx context.Context, ref string) (store.Contact, error) {
	s.reqs.mu.Lock()
	defer s.reqs.mu.Unlock()
	c, err := s.store.FindContact(ctx, ref)
	switch {
	case errors.Is(err, store.ErrNotFound):
		id, perr := peer.Decode(ref)
		if perr != nil {
			return c, core.NotFound(fmt.Errorf("no contact %q; to block a stranger give its peer ID", ref))
		}
		if id == s.net.ID() {
			return c, core.Invalid(errors.New("that is this node's own peer ID"))
		}
		c = store.Contact{PeerID: id, State: store.StateBlocked}
		if err := s.store.AddContact(ctx, c); err != nil {
			return c, err
		}
		// A withdrawal we owe it is not worth a connection any more.
		s.dropWithdrawal(ctx, id)
	case err != nil:
		return c, err
	default:
		c.State = store.StateBlocked
		if err := s.store.UpdateContact(ctx, c); err != nil {
			return c, err
		}
	}
	s.links.SetBlocked(c.PeerID, true)
	s.links.StopContact(c.PeerID)
	s.net.Disconnect(c.PeerID)
	s.peers.forget(c.PeerID)
	s.log.Info("peer blocked", "peer", c.PeerID.ShortString(), "name", c.Name)
	s.pub.Publish(control.Event{Type: control.EventContact, PeerID: c.PeerID.String(), Name: c.Name, State: string(store.StateBlocked)})
	return s.store.ContactByPeer(ctx, c.PeerID)
}

// RemoveContact forgets ref (any state; removing a blocked peer unblocks
// it); the link stops. A pending request of ours is withdrawn: over the
// live connection at once if there is one, else (or if that fails) the
// withdrawal is queued and delivered once the receiver is reachable
// (withdraw.go).
func (s *Service) RemoveContact(ctx context.Context, ref string) (store.Contact, error) {
	c, err := s.FindContact(ctx, ref)
	if err != nil {
		return c, err
	}
	// Remove the row first, under the lock of every friend-request
	// transition: a request crossing ours (mutual add) would otherwise
	// accept the contact again and restart the link we are stopping.
	s.reqs.mu.Lock()
	if c.State == store.StatePendingOut {
		now := s.now()
		if err = s.store.RemoveWithdrawing(ctx, c.PeerID, now); err == nil {
			s.wds.add(c.PeerID, now)
		}
	} else {
		err = s.store.RemoveContact(ctx, c.PeerID)
	}
	s.reqs.mu.Unlock()
	if err != nil {
		return c, err
	}
	delivered := false
	if c.State == store.StatePendingOut {
		// Before the link stops: over it, the contact learns at once.
		if path, _ := s.links.Path(c.PeerID); path != core.PathNone {
			delivered = s.sendWithdraw(ctx, c.PeerID, false) // the link stops below
		}
		if !delivered {
			s.log.Info("friend request withdrawn; the contact is told once it is reachable", "peer", c.PeerID.ShortString(), "name", c.Name)
		}
	}
	s.links.StopContact(c.PeerID)
	if c.State == store.StatePendingOut && !delivered {
		s.keepWithdrawLink(c.PeerID)
	}
	s.links.SetBlocked(c.PeerID, false)
	s.peers.forget(c.PeerID)
	s.log.Info("contact removed", "peer", c.PeerID.ShortString(), "name", c.Name)
	return c, nil
}

// checkContactName checks a local name for a contact.
func checkContactName(name string) error {
	if len(name) > invite.MaxNameLen {
		return core.Invalid(fmt.Errorf("name is longer than %d bytes", invite.MaxNameLen))
	}
	if _, err := peer.Decode(name); err == nil {
		return core.Invalid(errors.New("a contact's name cannot be a peer ID"))
	}
	if err := contact.ValidateText("name", name, invite.MaxNameLen); err != nil {
		return core.Invalid(err)
	}
	return nil
}
