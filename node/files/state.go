package files

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/file"
)

// Files lists every transfer, oldest first.
func (m *Manager) Files(ctx context.Context) ([]control.Transfer, error) {
	ts, err := m.store.Transfers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]control.Transfer, 0, len(ts))
	for _, t := range ts {
		out = append(out, m.view(ctx, t, ""))
	}
	return out, nil
}

// File shows one transfer: ref is its id or a unique prefix of it.
func (m *Manager) File(ctx context.Context, ref string) (control.Transfer, error) {
	t, err := m.findTransfer(ctx, ref)
	if err != nil {
		return control.Transfer{}, err
	}
	return m.view(ctx, t, ""), nil
}

func (m *Manager) findTransfer(ctx context.Context, ref string) (store.Transfer, error) {
	t, err := m.store.FindTransfer(ctx, ref)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return t, core.NotFound(fmt.Errorf("no transfer %q (see: natter files)", ref))
	case errors.Is(err, store.ErrAmbiguous):
		return t, core.Invalid(err)
	}
	return t, err
}

// FileAction accepts, rejects or cancels a transfer.
//
//   - accept: an incoming offer is accepted (and fetched); a paused
//     incoming transfer is retried at once.
//   - reject: an incoming offer is declined; the sender is told.
//   - cancel: any transfer that is not over stops in either direction;
//     the contact is told and a partial file is removed.
func (m *Manager) FileAction(ctx context.Context, ref, action string) (control.Transfer, error) {
	t, err := m.findTransfer(ctx, ref)
	if err != nil {
		return control.Transfer{}, err
	}
	var edit func(x *store.Transfer) (*store.NewOutgoing, error)
	switch action {
	case "accept":
		if t.Outgoing {
			return control.Transfer{}, core.Conflict(errors.New("you are sending this file; only the receiver accepts it"))
		}
		if t.State != store.TransferOffered {
			if t.State == store.TransferPaused || t.State == store.TransferAccepted {
				m.startRun(t.ID) // retry now
				return m.view(ctx, t, ""), nil
			}
			return control.Transfer{}, core.Conflict(fmt.Errorf("the transfer is %s", t.State))
		}
		edit = func(x *store.Transfer) (*store.NewOutgoing, error) {
			if x.State != store.TransferOffered {
				return nil, core.Conflict(fmt.Errorf("the transfer is %s", x.State))
			}
			x.State, x.Reason = store.TransferAccepted, ""
			return m.update(x.Peer, x.ID, store.TransferAccepted, ""), nil
		}
	case "reject":
		if t.Outgoing || t.State != store.TransferOffered {
			return control.Transfer{}, core.Conflict(fmt.Errorf("only an offer you received can be rejected (this one is %s %s; use cancel)", direction(t), t.State))
		}
		edit = func(x *store.Transfer) (*store.NewOutgoing, error) {
			if x.State != store.TransferOffered {
				return nil, core.Conflict(fmt.Errorf("the transfer is %s", x.State))
			}
			x.State, x.Reason = store.TransferRejected, "you rejected it"
			return m.update(x.Peer, x.ID, store.TransferRejected, ""), nil
		}
	case "cancel":
		if store.FinalState(t.State) {
			return control.Transfer{}, core.Conflict(fmt.Errorf("the transfer is already %s", t.State))
		}
		edit = func(x *store.Transfer) (*store.NewOutgoing, error) {
			if store.FinalState(x.State) {
				return nil, core.Conflict(fmt.Errorf("the transfer is already %s", x.State))
			}
			x.State, x.Reason, x.HashState = store.TransferCancelled, "you cancelled it", nil
			return m.update(x.Peer, x.ID, store.TransferCancelled, ""), nil
		}
	default:
		return control.Transfer{}, core.NotFound(fmt.Errorf("unknown action %q (accept, reject or cancel)", action))
	}
	nt, q, err := m.store.UpdateTransfer(ctx, t.ID, edit)
	if err != nil {
		return control.Transfer{}, err
	}
	m.queued(q)
	switch {
	case nt.State == store.TransferAccepted:
		m.startRun(nt.ID)
	case nt.State == store.TransferCancelled && nt.Outgoing:
		m.abortServing(nt.ID)
	case nt.State == store.TransferCancelled:
		m.stopRun(nt.ID, true)
	}
	m.log.Info("file transfer answered", "action", action, "transfer", nt.ID, "peer", nt.Peer.ShortString())
	m.publish(nt)
	return m.view(ctx, nt, ""), nil
}

func direction(t store.Transfer) string {
	if t.Outgoing {
		return "outgoing"
	}
	return "incoming"
}

// ---------------------------------------------------------------------
// State changes

// change applies edit to t's row, unless the transfer is over by now,
// and then updates t and publishes it.
func (m *Manager) change(ctx context.Context, t *store.Transfer, edit func(x *store.Transfer)) {
	nt, _, err := m.store.UpdateTransfer(ctx, t.ID, func(x *store.Transfer) (*store.NewOutgoing, error) {
		if store.FinalState(x.State) {
			return nil, errNoChange
		}
		edit(x)
		return nil, nil
	})
	if err == nil {
		*t = nt
		m.publish(nt)
	}
}

// setTransferring marks a transfer as moving over via.
func (m *Manager) setTransferring(ctx context.Context, t *store.Transfer, via core.Path) {
	m.change(ctx, t, func(x *store.Transfer) { x.State, x.Reason, x.Via = store.TransferTransferring, "", via.String() })
}

// hold records why a transfer is waiting, keeping its state (a
// transferring one becomes paused).
func (m *Manager) hold(ctx context.Context, t *store.Transfer, reason string) {
	state := t.State
	if state == store.TransferTransferring {
		state = store.TransferPaused
	}
	m.setState(ctx, t, state, reason)
}

// pause marks a transfer paused with a reason.
func (m *Manager) pause(ctx context.Context, t *store.Transfer, reason string) {
	m.setState(ctx, t, store.TransferPaused, reason)
}

func (m *Manager) setState(ctx context.Context, t *store.Transfer, state store.TransferState, reason string) {
	if t.State == state && t.Reason == reason {
		return
	}
	m.change(ctx, t, func(x *store.Transfer) { x.State, x.Reason = state, reason })
}

// fail ends a transfer as failed and, if tell, tells the contact why.
func (m *Manager) fail(ctx context.Context, t *store.Transfer, reason string, tell bool) {
	m.end(ctx, t, store.TransferFailed, reason, tell)
}

// end moves a transfer to a final state, queueing an update for the
// contact if tell. An incoming transfer's partial file is removed: nothing
// is left half-written.
func (m *Manager) end(ctx context.Context, t *store.Transfer, state store.TransferState, reason string, tell bool) {
	ctx = context.WithoutCancel(ctx)
	nt, q, err := m.store.UpdateTransfer(ctx, t.ID, func(x *store.Transfer) (*store.NewOutgoing, error) {
		if store.FinalState(x.State) {
			return nil, errNoChange
		}
		x.State, x.Reason, x.HashState = state, reason, nil
		if !tell {
			return nil, nil
		}
		return m.update(x.Peer, x.ID, state, reason), nil
	})
	if !t.Outgoing {
		_ = os.Remove(m.partialPath(t.ID))
	}
	if err != nil {
		return
	}
	*t = nt
	m.log.Info("file transfer ended", "transfer", t.ID, "peer", t.Peer.ShortString(), "state", state, "reason", reason)
	m.publish(nt)
	m.queued(q)
}

// queued wakes the chat deliverer for a queued update.
func (m *Manager) queued(q *store.OutboxEntry) {
	if q == nil {
		return
	}
	m.chat.Wake(q.Peer)
}

// ---------------------------------------------------------------------
// Progress and views

func (m *Manager) startLive(t store.Transfer, bytes int64) *liveXfer {
	l := &liveXfer{t: t, lastBytes: bytes, lastAt: time.Now()}
	l.bytes.Store(bytes)
	m.mu.Lock()
	m.lives[t.ID] = l
	m.mu.Unlock()
	return l
}

func (m *Manager) stopLive(id chat.MsgID) {
	m.mu.Lock()
	delete(m.lives, id)
	m.mu.Unlock()
}

func (m *Manager) live(id chat.MsgID) *liveXfer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lives[id]
}

// progressLoop updates rates and publishes progress events, at most one
// per transfer every Config.ProgressInterval.
func (m *Manager) progressLoop(ctx context.Context) {
	tick := time.NewTicker(m.cfg.ProgressInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			m.mu.Lock()
			lives := make([]*liveXfer, 0, len(m.lives))
			for _, l := range m.lives {
				lives = append(lives, l)
			}
			m.mu.Unlock()
			for _, l := range lives {
				b := l.bytes.Load()
				l.mu.Lock()
				if dt := now.Sub(l.lastAt).Seconds(); dt > 0 {
					inst := float64(b-l.lastBytes) / dt
					if l.rate == 0 {
						l.rate = inst
					} else {
						l.rate = 0.5*l.rate + 0.5*inst
					}
				}
				changed := b != l.lastBytes
				l.lastBytes, l.lastAt = b, now
				t := l.t
				l.mu.Unlock()
				if changed {
					m.publish(t)
				}
			}
		}
	}
}

// publish sends a file event for t.
func (m *Manager) publish(t store.Transfer) { m.publishAs(t, "") }

// publishAs sends a file event for t, whose contact is called name (""
// looks it up), and returns what it sent.
func (m *Manager) publishAs(t store.Transfer, name string) control.Transfer {
	v := m.view(context.Background(), t, name)
	m.events.Publish(control.Event{Type: control.EventFile, PeerID: v.PeerID, Name: v.Contact, Transfer: &v})
	return v
}

// view converts a transfer for clients, with live progress and, for one
// that waits, why.
func (m *Manager) view(ctx context.Context, t store.Transfer, name string) control.Transfer {
	if name == "" {
		name = m.label(ctx, t.Peer)
		if name == t.Peer.String() {
			name = ""
		}
	}
	v := control.Transfer{
		ID: t.ID.String(), PeerID: t.Peer.String(), Contact: name, Direction: "in", Name: t.Name, Size: t.Size,
		SHA256: fmt.Sprintf("%x", t.SHA256), MediaType: t.MediaType, Note: t.Note, State: string(t.State), BytesDone: t.DoneBytes,
		Path: t.Via, Reason: t.Reason, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
	}
	if t.Outgoing {
		v.Direction, v.Source = "out", t.Path
	} else if t.State == store.TransferDone {
		v.FinalPath = t.Path
	}
	if l := m.live(t.ID); l != nil && !store.FinalState(t.State) {
		l.mu.Lock()
		v.BytesDone, v.Rate, v.Path = l.bytes.Load(), l.rate, ""
		if l.path != core.PathNone {
			v.Path, v.State = l.path.String(), string(store.TransferTransferring)
		}
		l.mu.Unlock()
		return v
	}
	if t.Outgoing && !store.FinalState(t.State) {
		who := cmp.Or(name, t.Peer.String())
		path, _ := m.links.Path(t.Peer)
		switch {
		case t.State == store.TransferOffered:
			if v.Reason == "" {
				v.Reason = "waiting for " + who + " to accept"
			}
		case path == core.PathNone:
			v.Reason = who + " is offline; the transfer resumes when it is back"
		case path == core.PathRelayed && t.Size > m.cfg.RelayMax:
			v.Reason = fmt.Sprintf("waiting for a direct link (relay limit %s)", file.FormatSize(m.cfg.RelayMax))
		}
	}
	if !t.Outgoing && t.State == store.TransferOffered && v.Reason == "" {
		v.Reason = "accept with: natter files accept " + t.ID.String()
	}
	return v
}

// Ref describes the file of a history message of kind file (nil if
// there is no such transfer).
func (m *Manager) Ref(id chat.MsgID) *control.FileRef {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := m.store.GetTransfer(ctx, id)
	if err != nil {
		return nil
	}
	return &control.FileRef{Name: t.Name, Size: t.Size, MediaType: t.MediaType, SHA256: fmt.Sprintf("%x", t.SHA256), State: string(t.State)}
}

func (m *Manager) label(ctx context.Context, p peer.ID) string {
	if n := m.chat.ContactName(ctx, p); n != "" {
		return n
	}
	return p.String()
}
