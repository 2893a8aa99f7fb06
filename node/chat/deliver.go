package chat

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	chatproto "github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

type enqueueReq struct {
	msgs []store.NewOutgoing
	done chan enqueueRes
}

type enqueueRes struct {
	entries []store.OutboxEntry
	err     error
}

// Enqueue stores msgs in the outbox, committing them together with other
// callers' messages (group commit: one fsync for many sends), and wakes
// the deliverers. It returns once the messages are durable.
func (s *Service) Enqueue(ctx context.Context, msgs []store.NewOutgoing) ([]store.OutboxEntry, error) {
	req := &enqueueReq{msgs: msgs, done: make(chan enqueueRes, 1)}
	select {
	case s.enq <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, core.ErrClosed
	}
	r := <-req.done // the committer answers every request it took
	return r.entries, r.err
}

// commitLoop is the group committer.
func (s *Service) commitLoop(ctx context.Context) {
	for {
		var first *enqueueReq
		select {
		case <-ctx.Done():
			return
		case first = <-s.enq:
		}
		batch := []*enqueueReq{first}
		count := len(first.msgs)
	gather:
		for count < s.cfg.groupMax {
			select {
			case r := <-s.enq:
				batch = append(batch, r)
				count += len(r.msgs)
			default:
				break gather
			}
		}
		all := make([]store.NewOutgoing, 0, count)
		for _, r := range batch {
			all = append(all, r.msgs...)
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.commit)
		entries, err := s.outbox.Enqueue(sctx, all)
		cancel()
		peers := map[peer.ID]bool{}
		for _, r := range batch {
			if err != nil {
				r.done <- enqueueRes{err: err}
				continue
			}
			r.done <- enqueueRes{entries: entries[:len(r.msgs)]}
			entries = entries[len(r.msgs):]
			for _, m := range r.msgs {
				peers[m.Peer] = true
			}
		}
		for p := range peers {
			s.Wake(p)
		}
	}
}

// run is the deliverer of one contact: whenever the contact is connected
// and something is queued for it, deliver.
func (s *Service) run(ctx context.Context, ob *outbox) {
	bo := core.NewBackoff(s.cfg.retryMin, s.cfg.retryMax)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		changed := s.links.Changed(ob.peer)
		wait := time.Hour
		if path, _ := s.links.Path(ob.peer); path != core.PathNone && s.hasWork(ctx, ob) {
			err := s.deliver(ctx, ob)
			ob.unmarkAll()
			if err == nil {
				bo.Reset()
				continue
			}
			if ctx.Err() != nil {
				return
			}
			wait = bo.Next()
			s.cfg.log.Debug("chat delivery interrupted", "peer", ob.peer.ShortString(), "err", err, "retry", wait.Round(time.Millisecond))
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-ob.kick:
		case e := <-ob.eph:
			// Between streams it goes with the next one; with no
			// link a typing notice is worthless later: drop it.
			if path, _ := s.links.Path(ob.peer); path != core.PathNone && time.Since(e.at) < s.cfg.typingMaxAge {
				select {
				case ob.eph <- e:
				default:
				}
			}
		case <-timer.C:
		}
	}
}

func (s *Service) hasWork(ctx context.Context, ob *outbox) bool {
	if len(ob.eph) > 0 {
		return true
	}
	n, err := s.outbox.OutboxLen(ctx, ob.peer)
	return err != nil || n > 0 // on a read error, try; deliver reports it
}

// inFlight is one batch awaiting its ack.
type inFlight struct {
	ids     []chatproto.MsgID // as sent, in order
	durable []chatproto.MsgID // the ones that leave the outbox on ack
	history []chatproto.MsgID // the ones that show in the history
}

// errOutOfStep: the Sender handed out an ack the deliverer did not expect
// (it matches acks to batches itself, so this is a bug).
var errOutOfStep = errors.New("chat: ack out of step with the batches sent")

// deliver opens one stream to ob.peer and streams the outbox through it
// until the outbox is empty and the stream has been idle (nil), a direct
// connection replaces the relayed one the stream runs on (nil: the caller
// starts again at once), or something fails (the error).
func (s *Service) deliver(ctx context.Context, ob *outbox) error {
	p := ob.peer
	st, err := chatproto.Open(ctx, s.h, p, s.cfg.ackTimeout)
	if err != nil {
		return err
	}
	snd := chatproto.NewSender(st, s.cfg.window)
	via := core.PathOf(snd.Conn())
	ok := false
	defer func() {
		if !ok {
			snd.Reset()
		}
	}()

	var (
		cursor   uint64 // highest seq sent on this stream
		flight   []inFlight
		more     = true // the outbox may hold messages after cursor
		draining bool   // a direct link appeared: finish and reopen
		changed  = s.links.Changed(p)
		idle     = time.NewTimer(s.cfg.idle)
	)
	defer idle.Stop()
	for {
		for more && !draining && len(flight) < s.cfg.window {
			entries, err := s.outbox.Outbox(ctx, p, cursor, chatproto.MaxBatch)
			if err != nil {
				return err
			}
			if len(entries) < chatproto.MaxBatch {
				more = false
			}
			if len(entries) == 0 {
				break
			}
			msgs := make([]*pb.Message, 0, len(entries))
			for _, e := range entries {
				msgs = append(msgs, ToWire(e))
			}
			// Long texts: the frame holds fewer than MaxBatch.
			if k := chatproto.BatchLen(msgs); k < len(entries) {
				entries, msgs, more = entries[:k], msgs[:k], true
			}
			b := inFlight{}
			var fresh []chatproto.MsgID // not stored in a mailbox: now "sent"
			for _, e := range entries {
				b.ids = append(b.ids, e.ID)
				b.durable = append(b.durable, e.ID)
				if store.IsHistory(e.Kind) {
					b.history = append(b.history, e.ID)
					if !e.Stored {
						fresh = append(fresh, e.ID)
					}
				}
			}
			// The window has room (len(flight) < window): no wait.
			if err := snd.Send(ctx, msgs); err != nil {
				return err
			}
			cursor = entries[len(entries)-1].Seq
			ob.markSent(b.history)
			s.publishStatus(p, fresh, control.StatusSent, "", "")
			flight = append(flight, b)
		}
		if draining && len(flight) == 0 {
			return s.finish(snd, &ok)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ob.kick:
			more = true
		case e := <-ob.eph:
			if draining || len(flight) >= s.cfg.window || time.Since(e.at) > s.cfg.typingMaxAge {
				continue // best effort
			}
			if err := snd.Send(ctx, []*pb.Message{e.msg}); err != nil {
				return err
			}
			flight = append(flight, inFlight{ids: []chatproto.MsgID{chatproto.MsgID(e.msg.GetId())}})
		case ids, open := <-snd.Acks():
			if !open {
				return snd.Err()
			}
			if len(flight) == 0 || !slices.Equal(flight[0].ids, ids) {
				return errOutOfStep
			}
			b := flight[0]
			flight = flight[1:]
			if len(b.durable) > 0 {
				changes, err := s.outbox.Acked(ctx, p, b.durable, via.String())
				if err != nil {
					return err
				}
				ob.unmark(b.history)
				s.ApplyChanges(p, changes)
			}
			idle.Reset(s.cfg.idle)
		case <-changed:
			changed = s.links.Changed(p)
			if via == core.PathRelayed {
				if path, _ := s.links.Path(p); path == core.PathDirect {
					s.cfg.log.Debug("chat stream moving to the direct link", "peer", p.ShortString())
					draining = true
				}
			}
		case <-idle.C:
			if len(flight) == 0 && !more {
				return s.finish(snd, &ok)
			}
			idle.Reset(s.cfg.idle)
		}
	}
}

// finish closes an idle stream gracefully: no more batches, wait for the
// receiver's end of stream.
func (s *Service) finish(snd *chatproto.Sender, ok *bool) error {
	if err := snd.Finish(); err != nil {
		return err
	}
	*ok = true
	return nil
}

// ToWire is an outbox entry as it travels: on a chat stream, or sealed in
// the contact's mailbox.
func ToWire(e store.OutboxEntry) *pb.Message {
	m := &pb.Message{Id: e.ID[:], Seq: e.Seq, SentAtMs: e.SentAt.UnixMilli(), Text: e.Text}
	switch e.Kind {
	case store.KindText:
		m.Kind = pb.Kind_TEXT
	case store.KindNudge:
		m.Kind = pb.Kind_NUDGE
	case store.KindDelivered:
		m.Kind = pb.Kind_DELIVERED
	case store.KindRead:
		m.Kind = pb.Kind_READ
	case store.KindFile:
		// The history text is the note; the offer carries it.
		m.Kind, m.Text, m.FileOffer = pb.Kind_FILE_OFFER, "", &pb.FileOffer{}
		_ = proto.Unmarshal(e.Payload, m.FileOffer)
	case store.KindFileUpdate:
		m.Kind, m.FileUpdate = pb.Kind_FILE_UPDATE, &pb.FileUpdate{}
		_ = proto.Unmarshal(e.Payload, m.FileUpdate)
	}
	for _, r := range e.Refs {
		m.Refs = append(m.Refs, r[:])
	}
	return m
}
