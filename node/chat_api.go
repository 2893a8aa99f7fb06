package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

const (
	// maxWait bounds how long a send may wait for delivery.
	maxWait = 10 * time.Minute
)

// canChat explains why c cannot be written to, if it cannot.
func canChat(c store.Contact) error {
	switch c.State {
	case store.StateAccepted:
		return nil
	case store.StatePendingOut:
		return core.Conflict(fmt.Errorf("%s has not accepted your friend request yet", c.Label()))
	case store.StatePendingIn:
		return core.Conflict(fmt.Errorf("%s asked to be your contact: accept first (natter contacts accept %s)", c.Label(), c.Label()))
	}
	return core.Conflict(fmt.Errorf("%s is blocked", c.Label()))
}

// Send queues a text or nudge for a contact and returns once it is
// durable in the outbox (or, with req.Wait, once it is delivered, or
// failed, or the wait is over: it stays queued, or stored in the contact's
// mailbox, and natter keeps trying).
func (n *Node) Send(ctx context.Context, ref string, req control.SendRequest) (control.Message, error) {
	n.touch()
	c, err := n.findContactRef(ctx, ref)
	if err != nil {
		return control.Message{}, err
	}
	if err := canChat(c); err != nil {
		return control.Message{}, err
	}
	m := store.NewOutgoing{ID: chat.NewID(), Peer: c.PeerID, SentAt: time.Now()}
	switch req.Kind {
	case "", control.KindText:
		m.Kind, m.Text = store.KindText, req.Text
		if err := chat.CheckText(req.Text); err != nil {
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
		if wait, err = time.ParseDuration(req.Wait); err != nil || wait < 0 || wait > maxWait {
			return control.Message{}, core.Invalid(fmt.Errorf("wait: %q is not a duration up to %s", req.Wait, maxWait))
		}
	}
	var (
		updates <-chan delivery
		cancel  = func() {}
	)
	if wait > 0 {
		updates, cancel = n.chat.waitFor(m.ID)
	}
	defer cancel()
	entries, err := n.chat.enqueue(ctx, []store.NewOutgoing{m})
	if err != nil {
		if errors.Is(err, store.ErrDiskFull) {
			return control.Message{}, core.DiskFull(errors.New("disk full: the message was not sent (free some space and send it again)"))
		}
		return control.Message{}, err
	}
	sm := store.Message{ID: m.ID, Peer: m.Peer, Outgoing: true, Kind: m.Kind, Text: m.Text, Seq: entries[0].Seq, SentAt: m.SentAt, Status: store.StatusQueued}
	out := n.chat.toAPI(sm, c.Name)
	published := out // subscribers get their own copy; out changes below
	n.publish(control.Event{Type: control.EventMessage, PeerID: c.PeerID.String(), Name: c.Name, Message: &published})
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
			return n.reload(ctx, out), nil
		case <-ctx.Done():
			return n.reload(context.WithoutCancel(ctx), out), nil
		}
	}
}

// reload refreshes a message's status from the store.
func (n *Node) reload(ctx context.Context, m control.Message) control.Message {
	id, err := chat.ParseID(m.ID)
	if err != nil {
		return m
	}
	sm, err := n.store.MessageByID(ctx, id)
	if err != nil {
		return m
	}
	return n.chat.toAPI(sm, m.Contact)
}

// History returns a page of the conversation with a contact, oldest first.
func (n *Node) History(ctx context.Context, ref string, before string, limit int) ([]control.Message, error) {
	c, err := n.findContactRef(ctx, ref)
	if err != nil {
		return nil, err
	}
	var b *chat.MsgID
	if before != "" {
		id, err := chat.ParseID(before)
		if err != nil {
			return nil, core.Invalid(err)
		}
		b = &id
	}
	ms, err := n.store.History(ctx, c.PeerID, b, limit)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, core.NotFound(fmt.Errorf("no message %s in the conversation with %s", before, c.Label()))
		}
		return nil, err
	}
	return n.toAPIMessages(ctx, ms), nil
}

func (n *Node) toAPIMessages(ctx context.Context, ms []store.Message) []control.Message {
	names := map[peer.ID]string{}
	out := make([]control.Message, 0, len(ms))
	for _, m := range ms {
		name, ok := names[m.Peer]
		if !ok {
			name = n.chat.contactName(ctx, m.Peer)
			names[m.Peer] = name
		}
		out = append(out, n.chat.toAPI(m, name))
	}
	return out
}

// Search finds messages in all history, or one contact's if ref is set.
func (n *Node) Search(ctx context.Context, query, ref string, limit int) ([]control.Message, error) {
	var p peer.ID
	if ref != "" {
		c, err := n.findContactRef(ctx, ref)
		if err != nil {
			return nil, err
		}
		p = c.PeerID
	}
	ms, err := n.store.Search(ctx, query, p, limit)
	if err != nil {
		if errors.Is(err, store.ErrBadQuery) {
			return nil, core.Invalid(err)
		}
		return nil, err
	}
	return n.toAPIMessages(ctx, ms), nil
}

// receiptsOn reports whether read receipts go to c.
func (n *Node) receiptsOn(c store.Contact) bool {
	if c.ReadReceipts != nil {
		return *c.ReadReceipts
	}
	return n.cfg.Chat.ReadReceipts
}

// MarkRead marks a conversation read and, if receipts are on for the
// contact, queues a read receipt.
func (n *Node) MarkRead(ctx context.Context, ref string) (control.ReadResult, error) {
	n.touch()
	c, err := n.findContactRef(ctx, ref)
	if err != nil {
		return control.ReadResult{}, err
	}
	on := n.receiptsOn(c)
	ids, receipts, err := n.store.MarkRead(ctx, c.PeerID, on)
	if err != nil {
		return control.ReadResult{}, err
	}
	if len(receipts) > 0 {
		if ob := n.chat.existingBox(c.PeerID); ob != nil {
			ob.wake()
		}
	}
	if len(ids) > 0 {
		n.publish(control.Event{Type: control.EventRead, PeerID: c.PeerID.String(), Name: c.Name})
	}
	return control.ReadResult{Marked: len(ids), Receipts: on}, nil
}

// Typing tells a connected contact that the user started or stopped
// typing. It is best effort and reports whether the notice went out.
func (n *Node) Typing(ctx context.Context, ref string, typing bool) (bool, error) {
	n.touch()
	c, err := n.findContactRef(ctx, ref)
	if err != nil {
		return false, err
	}
	if path, _ := n.pathTo(c.PeerID); path == control.PathNone {
		return false, nil
	}
	ob := n.chat.existingBox(c.PeerID)
	if ob == nil {
		return false, nil
	}
	k := pb.Kind_TYPING_STOPPED
	if typing {
		k = pb.Kind_TYPING_STARTED
	}
	id := chat.NewID()
	select {
	case ob.eph <- ephemeral{msg: &pb.Message{Id: id[:], Kind: k, SentAtMs: time.Now().UnixMilli(), Seq: 0}, at: time.Now()}:
		return true, nil
	default:
		return false, nil
	}
}

// SetReceipts sets a contact's read-receipt override: "on", "off" or
// "default".
func (n *Node) SetReceipts(ctx context.Context, ref, mode string) (store.Contact, error) {
	c, err := n.findContactRef(ctx, ref)
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
	if err := n.store.UpdateContact(ctx, c); err != nil {
		return c, err
	}
	return c, nil
}
