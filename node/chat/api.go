package chat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	chatproto "github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

// findContact resolves a contact reference (name or peer ID).
func (s *Service) findContact(ctx context.Context, ref string) (store.Contact, error) {
	c, err := s.contacts.FindContact(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return c, core.NotFound(fmt.Errorf("no contact %q (see: natter contacts list)", ref))
	}
	return c, err
}

// Send queues a text or nudge for a contact and returns once it is
// durable in the outbox (or, with req.Wait, once it is delivered, or
// failed, or the wait is over: it stays queued, or stored in the contact's
// mailbox, and natter keeps trying).
func (s *Service) Send(ctx context.Context, ref string, req control.SendRequest) (control.Message, error) {
	c, err := s.findContact(ctx, ref)
	if err != nil {
		return control.Message{}, err
	}
	if err := core.CanChat(c); err != nil {
		return control.Message{}, err
	}
	m := store.NewOutgoing{ID: chatproto.NewID(), Peer: c.PeerID, SentAt: time.Now()}
	switch req.Kind {
	case "", control.KindText:
		m.Kind, m.Text = store.KindText, req.Text
		if err := chatproto.CheckText(req.Text); err != nil {
			return control.Message{}, core.Invalid(fmt.Errorf("cannot send: %w", err))
		}
	case control.KindNudge:
		m.Kind = store.KindNudge
		if req.Text != "" {
			return control.Message{}, core.Invalid(errors.New("a nudge carries no text"))
		}
	default:
		return control.Message{}, core.Invalid(fmt.Errorf("unknown message kind %q (text or nudge)", req.Kind))
	}
	var wait time.Duration
	if req.Wait != "" {
		if wait, err = time.ParseDuration(req.Wait); err != nil || wait < 0 || wait > s.cfg.maxWait {
			return control.Message{}, core.Invalid(fmt.Errorf("wait: %q is not a duration up to %s", req.Wait, s.cfg.maxWait))
		}
	}
	var (
		updates <-chan delivery
		cancel  = func() {}
	)
	if wait > 0 {
		updates, cancel = s.waitFor(m.ID)
	}
	defer cancel()
	entries, err := s.Enqueue(ctx, []store.NewOutgoing{m})
	if err != nil {
		if errors.Is(err, store.ErrDiskFull) {
			return control.Message{}, core.DiskFull(errors.New("disk full: the message was not sent (free some space and send it again)"))
		}
		return control.Message{}, err
	}
	sm := store.Message{ID: m.ID, Peer: m.Peer, Outgoing: true, Kind: m.Kind, Text: m.Text, Seq: entries[0].Seq, SentAt: m.SentAt, Status: store.StatusQueued}
	out := s.ToAPI(sm, c.Name)
	published := out // subscribers get their own copy; out changes below
	s.pub.Publish(control.Event{Type: control.EventMessage, PeerID: c.PeerID.String(), Name: c.Name, Message: &published})
	if wait == 0 {
		return out, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case d := <-updates:
			if d.status >= store.StatusDelivered {
				out.Status = d.status.String()
				if d.via != "" {
					out.Via = d.via
				}
				return out, nil
			}
			if d.status == store.StatusFailed {
				out.Status, out.Reason = d.status.String(), d.reason
				return out, nil
			}
			// Stored in the contact's mailbox: keep waiting for the
			// delivered receipt until the wait is over.
		case <-timer.C:
			return s.reload(ctx, out), nil
		case <-ctx.Done():
			return s.reload(context.WithoutCancel(ctx), out), nil
		}
	}
}

// reload refreshes a message's status from the store.
func (s *Service) reload(ctx context.Context, m control.Message) control.Message {
	id, err := chatproto.ParseID(m.ID)
	if err != nil {
		return m
	}
	sm, err := s.history.MessageByID(ctx, id)
	if err != nil {
		return m
	}
	return s.ToAPI(sm, m.Contact)
}

// History returns a page of the conversation with a contact, oldest first.
func (s *Service) History(ctx context.Context, ref string, before string, limit int) ([]control.Message, error) {
	c, err := s.findContact(ctx, ref)
	if err != nil {
		return nil, err
	}
	var b *chatproto.MsgID
	if before != "" {
		id, err := chatproto.ParseID(before)
		if err != nil {
			return nil, core.Invalid(err)
		}
		b = &id
	}
	ms, err := s.history.History(ctx, c.PeerID, b, limit)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, core.NotFound(fmt.Errorf("no message %s in the conversation with %s", before, c.Label()))
		}
		return nil, err
	}
	return s.toAPIMessages(ctx, ms), nil
}

func (s *Service) toAPIMessages(ctx context.Context, ms []store.Message) []control.Message {
	names := map[peer.ID]string{}
	out := make([]control.Message, 0, len(ms))
	for _, m := range ms {
		name, ok := names[m.Peer]
		if !ok {
			name = s.ContactName(ctx, m.Peer)
			names[m.Peer] = name
		}
		out = append(out, s.ToAPI(m, name))
	}
	return out
}

// Search finds messages in all history, or one contact's if ref is set.
func (s *Service) Search(ctx context.Context, query, ref string, limit int) ([]control.Message, error) {
	var p peer.ID
	if ref != "" {
		c, err := s.findContact(ctx, ref)
		if err != nil {
			return nil, err
		}
		p = c.PeerID
	}
	ms, err := s.history.Search(ctx, query, p, limit)
	if err != nil {
		if errors.Is(err, store.ErrBadQuery) {
			return nil, core.Invalid(err)
		}
		return nil, err
	}
	return s.toAPIMessages(ctx, ms), nil
}

// receiptsOn reports whether read receipts go to c.
func (s *Service) receiptsOn(c store.Contact) bool {
	if c.ReadReceipts != nil {
		return *c.ReadReceipts
	}
	return s.cfg.readReceipts
}

// MarkRead marks a conversation read and, if receipts are on for the
// contact, queues a read receipt.
func (s *Service) MarkRead(ctx context.Context, ref string) (control.ReadResult, error) {
	c, err := s.findContact(ctx, ref)
	if err != nil {
		return control.ReadResult{}, err
	}
	on := s.receiptsOn(c)
	ids, receipts, err := s.history.MarkRead(ctx, c.PeerID, on)
	if err != nil {
		return control.ReadResult{}, err
	}
	if len(receipts) > 0 {
		s.Wake(c.PeerID)
	}
	if len(ids) > 0 {
		s.pub.Publish(control.Event{Type: control.EventRead, PeerID: c.PeerID.String(), Name: c.Name})
	}
	return control.ReadResult{Marked: len(ids), Receipts: on}, nil
}

// Typing tells a connected contact that the user started or stopped
// typing. It is best effort and reports whether the notice went out.
func (s *Service) Typing(ctx context.Context, ref string, typing bool) (bool, error) {
	c, err := s.findContact(ctx, ref)
	if err != nil {
		return false, err
	}
	if path, _ := s.links.Path(c.PeerID); path == core.PathNone {
		return false, nil
	}
	ob := s.box(c.PeerID)
	if ob == nil {
		return false, nil
	}
	k := pb.Kind_TYPING_STOPPED
	if typing {
		k = pb.Kind_TYPING_STARTED
	}
	id := chatproto.NewID()
	select {
	case ob.eph <- ephemeral{msg: &pb.Message{Id: id[:], Kind: k, SentAtMs: time.Now().UnixMilli(), Seq: 0}, at: time.Now()}:
		return true, nil
	default:
		return false, nil
	}
}

// SetReceipts sets a contact's read-receipt override: "on", "off" or
// "default".
func (s *Service) SetReceipts(ctx context.Context, ref, mode string) (store.Contact, error) {
	c, err := s.findContact(ctx, ref)
	if err != nil {
		return c, err
	}
	switch mode {
	case "on", "off":
		v := mode == "on"
		c.ReadReceipts = &v
	case "default":
		c.ReadReceipts = nil
	default:
		return c, core.Invalid(fmt.Errorf("read receipts: %q is not on, off or default", mode))
	}
	if err := s.contacts.UpdateContact(ctx, c); err != nil {
		return c, err
	}
	return c, nil
}
