package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/invite"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/contact"
	"github.com/natterim/natter/protocols/presence"
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
// opens and every requestRetry while one stays open, until it gets a
// final answer; the receiver answers a repeated REQUEST from its current
// state, so an ACCEPT or REJECT lost on the way is learnt next time. Only
// accepted contacts reach chat history or see our presence.

// requestRetry is how often a pending_out request is sent again while the
// receiver stays connected (its ACCEPT push might have been lost).
const requestRetry = 2 * time.Minute

// requests serialises the transitions of the friend-request state machine
// (API calls and incoming requests race otherwise) and remembers recent
// rejections.
type requests struct {
	mu       sync.Mutex
	rejected map[peer.ID]time.Time // requester -> when we rejected it
}

func newRequests() *requests { return &requests{rejected: map[peer.ID]time.Time{}} }

// wantsLink reports whether the node keeps a link with a contact in
// state: accepted contacts, and those we sent a request to (to deliver
// it). Requesters wait for our answer; blocked peers get nothing.
func wantsLink(state store.ContactState) bool {
	return state == store.StateAccepted || state == store.StatePendingOut
}

// startServices registers the handlers of the friend-request and presence
// protocols.
func (n *Node) startServices() {
	n.svcs = append(n.svcs,
		contact.NewService(n.host, requestHandler{n}, &contact.Options{
			Rate:    1 / n.cfg.Contacts.RequestInterval.Seconds(),
			Burst:   n.cfg.Contacts.RequestBurst,
			Log:     n.log,
			Metrics: n.metrics,
		}),
		presence.NewService(n.host, presenceReceiver{n}, n.log, n.metrics),
	)
}

// isAccepted reports whether p is an accepted contact: the only peers that
// chat with us and see our presence.
func (n *Node) isAccepted(ctx context.Context, p peer.ID) bool {
	c, err := n.store.ContactByPeer(ctx, p)
	return err == nil && c.State == store.StateAccepted
}

// requestHandler answers /natter/contact/1.0.0 (contact.Handler).
type requestHandler struct{ n *Node }

func (h requestHandler) HandleContact(ctx context.Context, from peer.ID, req contact.Request) contact.Response {
	n := h.n
	n.reqs.mu.Lock()
	defer n.reqs.mu.Unlock()
	c, err := n.store.ContactByPeer(ctx, from)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return tryLater
	}
	switch req.Kind {
	case contact.KindRequest:
		switch {
		case !known:
			if at, ok := n.reqs.rejected[from]; ok && time.Since(at) < n.cfg.Contacts.RejectCooldown {
				return contact.Response{Status: contact.StatusRejected}
			}
			pending, err := n.store.CountState(ctx, store.StatePendingIn)
			if err != nil {
				return tryLater
			}
			if pending >= n.cfg.Contacts.MaxPending {
				n.metrics.StreamError("contact", errRefusedFull)
				return contact.Response{Status: contact.StatusRefused, Reason: "too many requests are waiting for an answer; try again later"}
			}
			nc := store.Contact{PeerID: from, State: store.StatePendingIn, Note: req.Note, Name: n.freeName(ctx, req.Name)}
			if err := n.store.AddContact(ctx, nc); err != nil {
				return tryLater
			}
			n.log.Info("friend request", "peer", from.ShortString(), "name", req.Name, "note", req.Note)
			n.publish(control.Event{Type: control.EventContact, PeerID: from.String(), Name: nc.Name, State: store.StatePendingIn, Note: req.Note})
			return contact.Response{Status: contact.StatusPending}
		case c.State == store.StatePendingIn:
			if c.Note != req.Note {
				c.Note = req.Note
				_ = n.store.UpdateContact(ctx, c)
			}
			return contact.Response{Status: contact.StatusPending}
		case c.State == store.StatePendingOut:
			// We asked them too: both want it.
			if err := n.setAccepted(ctx, c); err != nil {
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
			if err := n.setAccepted(ctx, c); err != nil {
				return tryLater
			}
			return contact.Response{Status: contact.StatusOK}
		case known && c.State == store.StateAccepted:
			return contact.Response{Status: contact.StatusOK}
		}
		return contact.Response{Status: contact.StatusRefused, Reason: "no request of ours to accept"}
	case contact.KindReject:
		if known && c.State == store.StatePendingOut {
			n.dropRejected(c)
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
		if err := n.store.RemoveContact(ctx, from); err != nil {
			return tryLater
		}
		n.log.Info("friend request withdrawn", "peer", from.ShortString(), "name", c.Name)
		n.publish(control.Event{Type: control.EventContact, PeerID: from.String(), Name: c.Name, State: control.StateWithdrawn})
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
func (n *Node) freeName(ctx context.Context, claimed string) string {
	if claimed == "" || len(claimed) > invite.MaxNameLen {
		return ""
	}
	if _, err := peer.Decode(claimed); err == nil {
		return ""
	}
	if _, err := n.store.FindContact(ctx, claimed); err == nil || !errors.Is(err, store.ErrNotFound) {
		return ""
	}
	return claimed
}

// setAccepted makes c an accepted contact and starts what accepted
// contacts get (a link, presence). Callers hold n.reqs.mu.
func (n *Node) setAccepted(ctx context.Context, c store.Contact) error {
	c.State = store.StateAccepted
	if err := n.store.UpdateContact(ctx, c); err != nil {
		return err
	}
	n.log.Info("contact accepted", "peer", c.PeerID.ShortString(), "name", c.Name)
	n.publish(control.Event{Type: control.EventContact, PeerID: c.PeerID.String(), Name: c.Name, State: string(store.StateAccepted)})
	n.startContact(c.PeerID)
	p := c.PeerID
	n.goRun(func(ctx context.Context) {
		n.pushPresence(ctx, p)
		n.offline.PushToken(ctx, p)
	})
	return nil
}

// dropRejected removes a pending_out contact whose request was rejected.
func (n *Node) dropRejected(c store.Contact) {
	if err := n.store.RemoveContact(n.ctx, c.PeerID); err != nil {
		n.log.Warn("remove rejected request", "peer", c.PeerID.ShortString(), "err", err)
		return
	}
	n.log.Info("friend request rejected", "peer", c.PeerID.ShortString(), "name", c.Name)
	n.publish(control.Event{Type: control.EventContact, PeerID: c.PeerID.String(), Name: c.Name, State: control.StateRejected})
	// The link may be the caller; stop it from elsewhere.
	p := c.PeerID
	go n.stopContact(p)
}

// sendRequest sends our pending request to p (if it still is one) and
// applies the answer. It runs in its own goroutine.
func (n *Node) sendRequest(ctx context.Context, p peer.ID) {
	c, err := n.store.ContactByPeer(ctx, p)
	if err != nil || c.State != store.StatePendingOut {
		return
	}
	name, _ := n.store.Setting(ctx, store.SettingName)
	if len(name) > contact.MaxNameBytes {
		name = ""
	}
	resp, err := contact.Send(ctx, n.host, p, contact.Request{Kind: contact.KindRequest, Note: c.Note, Name: name})
	l := n.links.get(p)
	if err != nil {
		if l != nil {
			l.setErr(fmt.Errorf("friend request: %w", err))
		}
		n.log.Debug("friend request not delivered", "peer", p.ShortString(), "err", err)
		return
	}
	n.reqs.mu.Lock()
	defer n.reqs.mu.Unlock()
	// The state may have moved while the request was out.
	if c, err = n.store.ContactByPeer(ctx, p); err != nil || c.State != store.StatePendingOut {
		return
	}
	switch resp.Status {
	case contact.StatusAccepted:
		if err := n.setAccepted(ctx, c); err != nil {
			n.log.Warn("accept contact", "peer", p.ShortString(), "err", err)
		}
	case contact.StatusRejected:
		n.dropRejected(c)
	case contact.StatusPending:
		if l != nil {
			l.setErr(nil)
		}
	default:
		if l != nil {
			l.setErr(fmt.Errorf("friend request refused: %s", resp.Reason))
		}
	}
}

// withdrawTimeout bounds telling a contact we withdrew our request.
const withdrawTimeout = 5 * time.Second

// withdrawRequest tells c, whose contact entry we just removed while our
// request to it was pending, to drop that request. Best effort: only if we
// are connected to it now (a contact we cannot reach keeps the request
// until its user answers it; the answer then finds nobody).
func (n *Node) withdrawRequest(ctx context.Context, c store.Contact) {
	if path, _ := n.pathTo(c.PeerID); path == control.PathNone {
		n.log.Info("friend request withdrawn; the contact is not connected and is not told", "peer", c.PeerID.ShortString(), "name", c.Name)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, withdrawTimeout)
	defer cancel()
	resp, err := contact.Send(ctx, n.host, c.PeerID, contact.Request{Kind: contact.KindWithdraw})
	if err == nil && resp.Status != contact.StatusOK {
		err = fmt.Errorf("%s: %s", resp.Status, resp.Reason)
	}
	if err != nil {
		n.log.Info("friend request withdrawn; telling the contact failed", "peer", c.PeerID.ShortString(), "name", c.Name, "err", err)
		return
	}
	n.log.Info("friend request withdrawn", "peer", c.PeerID.ShortString(), "name", c.Name)
}

// answerRequest tells p we accepted or rejected its request, if it is
// connected; if not, its next REQUEST learns the answer.
func (n *Node) answerRequest(p peer.ID, kind contact.Request) {
	n.goRun(func(ctx context.Context) {
		if _, err := contact.Send(ctx, n.host, p, kind); err != nil {
			n.log.Debug("answer to friend request not delivered now", "peer", p.ShortString(), "err", err)
		}
	})
}

// AcceptContact accepts ref's pending request, optionally naming it.
func (n *Node) AcceptContact(ctx context.Context, ref, name string) (store.Contact, error) {
	n.reqs.mu.Lock()
	defer n.reqs.mu.Unlock()
	c, err := n.findContactRef(ctx, ref)
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
		if err := n.checkContactName(name); err != nil {
			return c, err
		}
		c.Name = name
	}
	if err := n.setAccepted(ctx, c); err != nil {
		if errors.Is(err, store.ErrExists) {
			return c, core.Conflict(fmt.Errorf("the name %q is taken by another contact", name))
		}
		return c, err
	}
	n.answerRequest(c.PeerID, contact.Request{Kind: contact.KindAccept})
	return n.store.ContactByPeer(ctx, c.PeerID)
}

// RejectContact rejects ref's pending request and forgets it.
func (n *Node) RejectContact(ctx context.Context, ref string) (store.Contact, error) {
	n.reqs.mu.Lock()
	defer n.reqs.mu.Unlock()
	c, err := n.findContactRef(ctx, ref)
	if err != nil {
		return c, err
	}
	if c.State != store.StatePendingIn {
		return c, core.Conflict(fmt.Errorf("%s has no request waiting for you (state %s); to drop a contact use: natter contacts remove", c.Label(), c.State))
	}
	if err := n.store.RemoveContact(ctx, c.PeerID); err != nil {
		return c, err
	}
	n.reqs.rejected[c.PeerID] = time.Now()
	n.log.Info("friend request rejected by us", "peer", c.PeerID.ShortString())
	n.publish(control.Event{Type: control.EventContact, PeerID: c.PeerID.String(), Name: c.Name, State: control.StateRejected})
	n.answerRequest(c.PeerID, contact.Request{Kind: contact.KindReject})
	return c, nil
}

// BlockContact blocks ref: a contact (any state) or any peer ID. Its
// connections are closed and refused from now on; nothing from it reaches
// us.
func (n *Node) BlockContact(ctx context.Context, ref string) (store.Contact, error) {
	n.reqs.mu.Lock()
	defer n.reqs.mu.Unlock()
	c, err := n.store.FindContact(ctx, ref)
	switch {
	case errors.Is(err, store.ErrNotFound):
		id, perr := peer.Decode(ref)
		if perr != nil {
			return c, core.NotFound(fmt.Errorf("no contact %q; to block a stranger give its peer ID", ref))
		}
		if id == n.host.ID() {
			return c, core.Invalid(errors.New("that is this node's own peer ID"))
		}
		c = store.Contact{PeerID: id, State: store.StateBlocked}
		if err := n.store.AddContact(ctx, c); err != nil {
			return c, err
		}
	case err != nil:
		return c, err
	default:
		c.State = store.StateBlocked
		if err := n.store.UpdateContact(ctx, c); err != nil {
			return c, err
		}
	}
	n.gater.set(c.PeerID, true)
	n.stopContact(c.PeerID)
	_ = n.host.Network().ClosePeer(c.PeerID)
	n.log.Info("peer blocked", "peer", c.PeerID.ShortString(), "name", c.Name)
	n.publish(control.Event{Type: control.EventContact, PeerID: c.PeerID.String(), Name: c.Name, State: store.StateBlocked})
	return n.store.ContactByPeer(ctx, c.PeerID)
}

// checkContactName checks a local name for a contact.
func (n *Node) checkContactName(name string) error {
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
