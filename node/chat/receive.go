package chat

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/store"
	chatproto "github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

// receiver is the Service as protocols/chat's Receiver.
type receiver struct{ s *Service }

// Allow lets only accepted contacts chat.
func (r receiver) Allow(ctx context.Context, p peer.ID) bool { return r.s.policy.Allow(ctx, p) }

func (r receiver) Receive(ctx context.Context, from peer.ID, conn network.Conn, msgs []*pb.Message) error {
	return r.s.Receive(ctx, from, conn, msgs)
}

// Receive stores one batch from a contact in one durable transaction, then
// publishes events for the clients. The receiver of chat streams calls it,
// and the offline mailbox hands it the messages it takes from our mailbox
// too, with a nil conn.
func (s *Service) Receive(ctx context.Context, from peer.ID, conn network.Conn, msgs []*pb.Message) error {
	name := s.ContactName(ctx, from)
	ins := make([]store.Incoming, 0, len(msgs))
	var typing *bool
	for _, m := range msgs {
		in := store.Incoming{ID: chatproto.MsgID(m.GetId()), Text: m.GetText(), Seq: m.GetSeq(), SentAt: time.UnixMilli(m.GetSentAtMs())}
		switch m.GetKind() {
		case pb.Kind_TEXT:
			in.Kind = store.KindText
		case pb.Kind_NUDGE:
			in.Kind = store.KindNudge
		case pb.Kind_DELIVERED, pb.Kind_READ:
			in.Kind = store.KindDelivered
			if m.GetKind() == pb.Kind_READ {
				in.Kind = store.KindRead
			}
			for _, r := range m.GetRefs() {
				in.Refs = append(in.Refs, chatproto.MsgID(r))
			}
		case pb.Kind_TYPING_STARTED, pb.Kind_TYPING_STOPPED:
			t := m.GetKind() == pb.Kind_TYPING_STARTED
			typing = &t
			continue
		default:
			h := s.handler(m.GetKind())
			if h == nil {
				if chatproto.Durable(m.GetKind()) {
					// Not acknowledged: the sender retries once the
					// feature that handles it is up.
					return fmt.Errorf("no handler for chat messages of kind %s", m.GetKind())
				}
				continue
			}
			out, ok := h.Incoming(ctx, from, name, m)
			if !ok {
				continue // a state this version does not know
			}
			out.ID, out.Seq, out.SentAt = in.ID, in.Seq, in.SentAt
			in = out
		}
		ins = append(ins, in)
	}
	var res store.Received
	if len(ins) > 0 {
		var err error
		if res, err = s.history.StoreIncoming(ctx, from, ins); err != nil {
			s.cfg.log.Error("cannot store received messages; the sender will retry", "peer", from.ShortString(), "err", err)
			return err
		}
	}
	for _, m := range res.New {
		cm := s.ToAPI(m, name)
		s.pub.Publish(control.Event{Type: control.EventMessage, PeerID: from.String(), Name: name, Message: &cm})
		if m.Kind == store.KindNudge {
			s.pub.Publish(control.Event{Type: control.EventNudge, PeerID: from.String(), Name: name, Message: &cm})
		}
	}
	if len(res.New) > 0 && typing == nil {
		stopped := false // a message ends the typing
		typing = &stopped
	}
	s.ApplyChanges(from, res.Changed)
	if len(res.Transfers) > 0 {
		for _, h := range s.handlers() {
			h.Received(res.Transfers)
		}
	}
	if len(res.Queued) > 0 {
		s.Wake(from)
	}
	if typing != nil {
		s.pub.Publish(control.Event{Type: control.EventTyping, PeerID: from.String(), Name: name, Typing: typing})
	}
	return nil
}

// ContactName is p's contact name, "" if it has none (or is no contact).
func (s *Service) ContactName(ctx context.Context, p peer.ID) string {
	if ct, err := s.contacts.ContactByPeer(ctx, p); err == nil {
		return ct.Name
	}
	return ""
}

// ApplyChanges announces status changes of our messages to p and wakes
// those waiting for them.
func (s *Service) ApplyChanges(p peer.ID, changes []store.StatusChange) {
	if len(changes) == 0 {
		return
	}
	type key struct {
		st          store.Status
		via, reason string
	}
	byStatus := map[key][]chatproto.MsgID{}
	for _, ch := range changes {
		k := key{ch.Status, ch.Via, ch.Reason}
		byStatus[k] = append(byStatus[k], ch.ID)
	}
	for k, ids := range byStatus {
		s.publishStatus(p, ids, k.st.String(), k.via, k.reason)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range changes {
		for _, w := range s.waiters[ch.ID] {
			select {
			case w <- delivery{status: ch.Status, via: ch.Via, reason: ch.Reason}:
			default:
			}
		}
	}
}

func (s *Service) publishStatus(p peer.ID, ids []chatproto.MsgID, status, via, reason string) {
	if len(ids) == 0 {
		return
	}
	ss := make([]string, len(ids))
	for i, id := range ids {
		ss[i] = id.String()
	}
	s.pub.Publish(control.Event{Type: control.EventStatus, PeerID: p.String(), IDs: ss, Status: status, Path: via, Reason: reason})
}

// waitFor registers interest in the status changes of id; cancel must be
// called.
func (s *Service) waitFor(id chatproto.MsgID) (<-chan delivery, func()) {
	ch := make(chan delivery, 4)
	s.mu.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		ws := slices.DeleteFunc(s.waiters[id], func(w chan delivery) bool { return w == ch })
		if len(ws) == 0 {
			delete(s.waiters, id)
		} else {
			s.waiters[id] = ws
		}
	}
}

// ToAPI converts a history message for clients; name is the contact's.
func (s *Service) ToAPI(m store.Message, name string) control.Message {
	out := control.Message{
		ID: m.ID.String(), PeerID: m.Peer.String(), Contact: name, Kind: m.Kind, Text: m.Text,
		Seq: m.Seq, SentAt: m.SentAt, ReceivedAt: m.ReceivedAt, Status: m.Status.String(), Via: m.Via, Reason: m.Reason,
	}
	if m.Outgoing {
		out.Direction, out.From = "out", s.h.ID().String()
		if m.Status == store.StatusQueued {
			if ob := s.box(m.Peer); ob != nil && ob.isSent(m.ID) {
				out.Status = control.StatusSent
			}
		}
	} else {
		out.Direction, out.From = "in", m.Peer.String()
	}
	if m.Kind == store.KindFile {
		if h := s.handler(pb.Kind_FILE_OFFER); h != nil {
			out.File = h.Ref(m.ID)
		}
	}
	return out
}
