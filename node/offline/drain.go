package offline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/mailbox"
	"github.com/natterim/natter/protocols/mailbox/seal"
)

// serverLoop drains our mailbox on one rendezvous whenever we connect to
// it and every mailbox.poll while connected, and checks the fate of the
// deposits we made there.
func (s *Service) serverLoop(ctx context.Context, id peer.ID) {
	var (
		was   bool
		next  time.Time
		timer = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	for ctx.Err() == nil {
		changed := s.links.Changed(id)
		connected := s.links.Connected(id)
		if connected && (!was || !time.Now().Before(next)) {
			err := s.drain(ctx, id)
			s.mu.Lock()
			st := s.server(id)
			if err != nil {
				st.lastErr = err.Error()
			} else {
				st.lastErr, st.lastDrain = "", time.Now()
			}
			s.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				s.log.Debug("mailbox drain failed", "server", id.ShortString(), "err", err)
			}
			s.checkFates(ctx, id, !was)
			next = time.Now().Add(s.cfg.Poll)
		}
		was = connected
		wait := time.Hour
		if connected {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-timer.C:
		}
	}
}

// drain takes everything from our mailbox on server: it opens and checks
// each box, stores the messages through the chat receive path, queues
// DELIVERED receipts, and then deletes the boxes (refused ones too).
func (s *Service) drain(ctx context.Context, server peer.ID) error {
	var after uint64
	for range maxRounds {
		boxes, more, err := s.remote.Fetch(ctx, server, after, mailbox.MaxItems)
		if err != nil {
			return err
		}
		if len(boxes) == 0 {
			return nil
		}
		done, rejected := s.take(ctx, server, boxes)
		for len(done)+len(rejected) > 0 {
			d := done[:min(len(done), mailbox.MaxStatusIDs)]
			r := rejected[:min(len(rejected), mailbox.MaxStatusIDs-len(d))]
			if _, err := s.remote.Delete(ctx, server, d, r); err != nil {
				return err
			}
			done, rejected = done[len(d):], rejected[len(r):]
		}
		if !more {
			return nil
		}
		after = boxes[len(boxes)-1].Seq
	}
	return fmt.Errorf("mailbox on %s: still not empty after %d fetches", server.ShortString(), maxRounds)
}

// fromSender is what one contact put in our mailbox, in one fetch.
type fromSender struct {
	msgs []*pb.Message
	deps []mailbox.DepositID
}

// take handles fetched boxes: it returns the deposits that can go (stored,
// or carrying nothing to store) and those refused.
func (s *Service) take(ctx context.Context, server peer.ID, boxes []mailbox.StoredBox) (done, rejected []mailbox.DepositID) {
	var order []peer.ID
	by := map[peer.ID]*fromSender{}
	reject := func(b mailbox.StoredBox, why string, err error) {
		rejected = append(rejected, b.ID)
		s.received.WithLabelValues(why).Inc()
		s.log.Debug("mailbox box refused", "server", server.ShortString(), "deposit", b.ID.String(), "why", why, "err", err)
	}
	for _, b := range boxes {
		o, err := seal.Open(s.key, b.Box, mailbox.MaxBoxSizeLimit)
		if err != nil {
			reject(b, "unopenable", err)
			continue
		}
		if mailbox.DepositID(o.DepositID) != b.ID {
			reject(b, "moved", errors.New("sealed for another deposit"))
			continue
		}
		if o.Sender == s.self || !s.policy.Allow(ctx, o.Sender) {
			reject(b, "not_contact", fmt.Errorf("from %s", o.Sender.ShortString()))
			continue
		}
		var msg pb.Message
		if err := proto.Unmarshal(o.Payload, &msg); err != nil {
			reject(b, "invalid", err)
			continue
		}
		if err := chat.Validate(&msg); err != nil {
			reject(b, "invalid", err)
			continue
		}
		if !chat.Durable(msg.GetKind()) {
			// A kind we do not know (a newer sender), or a typing notice:
			// nothing to store, as on a stream.
			done = append(done, b.ID)
			continue
		}
		f, ok := by[o.Sender]
		if !ok {
			f = &fromSender{}
			by[o.Sender] = f
			order = append(order, o.Sender)
		}
		f.msgs = append(f.msgs, &msg)
		f.deps = append(f.deps, b.ID)
	}
	for _, p := range order {
		f := by[p]
		msgs := f.msgs
		slices.SortStableFunc(msgs, func(a, b *pb.Message) int { return cmp.Compare(a.GetSeq(), b.GetSeq()) })
		var history []chat.MsgID
		for _, msg := range msgs {
			if isHistory(msg.GetKind()) {
				history = append(history, chat.MsgID(msg.GetId()))
			}
		}
		if err := s.chat.Receive(ctx, p, nil, msgs); err != nil {
			s.log.Warn("mailbox: cannot store messages; they stay in the mailbox", "peer", p.ShortString(), "err", err)
			continue
		}
		// The sender learns they arrived: a DELIVERED receipt naming
		// every message (new or seen before: its ack may have been
		// lost), which travels like any outbox entry.
		var receipts []store.NewOutgoing
		for chunk := range slices.Chunk(history, chat.MaxRefs) {
			receipts = append(receipts, store.NewOutgoing{ID: chat.NewID(), Peer: p, Kind: store.KindDelivered, Refs: chunk, SentAt: time.Now()})
		}
		if len(receipts) > 0 {
			if _, err := s.chat.Enqueue(ctx, receipts); err != nil {
				s.log.Warn("mailbox: cannot queue delivered receipts; the messages stay in the mailbox", "peer", p.ShortString(), "err", err)
				continue
			}
		}
		s.received.WithLabelValues("stored").Add(float64(len(msgs)))
		s.mu.Lock()
		s.server(server).received += len(msgs)
		s.mu.Unlock()
		done = append(done, f.deps...)
		s.log.Info("messages taken from our mailbox", "server", server.ShortString(), "peer", p.ShortString(), "count", len(msgs))
	}
	if len(rejected) > 0 {
		s.mu.Lock()
		s.server(server).rejected += len(rejected)
		s.mu.Unlock()
	}
	return done, rejected
}

// isHistory reports whether messages of kind k are in the sender's
// history, so that it waits for a DELIVERED receipt for them: text,
// nudges and file offers (store.IsHistory on the wire).
func isHistory(k pb.Kind) bool {
	return k == pb.Kind_TEXT || k == pb.Kind_NUDGE || k == pb.Kind_FILE_OFFER
}
