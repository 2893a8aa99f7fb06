package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

// Chat delivery (see protocols/chat for the wire side):
//
//	send ──> group commit ──> outbox (SQLite) ──kick──> deliverer(contact)
//	                                                      │ one stream, up to
//	                                                      │ chatWindow batches
//	                                                      ▼ in flight
//	         history <── Acked (delete from outbox) <── acks
//
// Every contact has one deliverer goroutine. While the contact is
// connected (relayed or direct) and its outbox is not empty, the deliverer
// keeps a chat stream open and streams the outbox in sequence order; an
// ack removes a batch from the outbox. Any error resets the stream and the
// deliverer starts again from the oldest unacknowledged message after a
// backoff, so the receiver may see a batch twice and de-duplicates it. A
// relayed stream is drained and replaced as soon as a direct connection
// appears.
const (
	// chatWindow is how many batches may await their ack at once.
	chatWindow = 8
	// chatAckTimeout is how long a batch may wait for its ack.
	chatAckTimeout = 30 * time.Second
	// chatIdle closes a stream that carried nothing for this long.
	chatIdle = 2 * time.Minute
	// chatGroupMax bounds the messages committed in one transaction.
	chatGroupMax = 1024
	// typingMaxAge drops typing notices that could not be sent in time.
	typingMaxAge = 3 * time.Second
)

var errNodeClosed = errors.New("node is shutting down")

// chatter is the node's chat machinery: the protocol service (receiving),
// the group committer and the deliverers (sending).
type chatter struct {
	n   *Node
	svc *chat.Service
	enq chan *enqueueReq

	mu      sync.Mutex
	boxes   map[peer.ID]*outbox
	waiters map[chat.MsgID][]chan delivery
}

// delivery is what a waiter for one message learns.
type delivery struct {
	status store.Status
	via    string
	reason string
}

// outbox is one contact's deliverer state.
type outbox struct {
	peer peer.ID
	kick chan struct{}  // new messages queued
	eph  chan ephemeral // typing notices
	mu   sync.Mutex
	sent map[chat.MsgID]struct{} // written to a stream, not yet acked
}

type ephemeral struct {
	msg *pb.Message
	at  time.Time
}

type enqueueReq struct {
	msgs []store.NewOutgoing
	done chan enqueueRes
}

type enqueueRes struct {
	entries []store.OutboxEntry
	err     error
}

func newChatter(n *Node) *chatter {
	c := &chatter{
		n:       n,
		enq:     make(chan *enqueueReq),
		boxes:   map[peer.ID]*outbox{},
		waiters: map[chat.MsgID][]chan delivery{},
	}
	c.svc = chat.New(n.host, c, chat.WithLogger(n.log), chat.WithMetrics(n.metrics))
	return c
}

func (c *chatter) close() { _ = c.svc.Close() }

// box returns p's outbox state, creating it.
func (c *chatter) box(p peer.ID) *outbox {
	c.mu.Lock()
	defer c.mu.Unlock()
	ob, ok := c.boxes[p]
	if !ok {
		ob = &outbox{peer: p, kick: make(chan struct{}, 1), eph: make(chan ephemeral, 16), sent: map[chat.MsgID]struct{}{}}
		c.boxes[p] = ob
	}
	return ob
}

func (c *chatter) existingBox(p peer.ID) *outbox {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.boxes[p]
}

func (c *chatter) dropBox(p peer.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.boxes, p)
}

func (ob *outbox) wake() {
	select {
	case ob.kick <- struct{}{}:
	default:
	}
}

func (ob *outbox) markSent(ids []chat.MsgID) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for _, id := range ids {
		ob.sent[id] = struct{}{}
	}
}

func (ob *outbox) unmark(ids []chat.MsgID) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for _, id := range ids {
		delete(ob.sent, id)
	}
}

func (ob *outbox) unmarkAll() {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	clear(ob.sent)
}

func (ob *outbox) isSent(id chat.MsgID) bool {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	_, ok := ob.sent[id]
	return ok
}

// enqueue stores msgs in the outbox, committing them together with other
// callers' messages (group commit: one fsync for many sends), and wakes
// the deliverers. It returns once the messages are durable.
func (c *chatter) enqueue(ctx context.Context, msgs []store.NewOutgoing) ([]store.OutboxEntry, error) {
	req := &enqueueReq{msgs: msgs, done: make(chan enqueueRes, 1)}
	select {
	case c.enq <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.n.ctx.Done():
		return nil, errNodeClosed
	}
	r := <-req.done // the committer answers every request it took
	return r.entries, r.err
}

// commitLoop is the group committer.
func (c *chatter) commitLoop(ctx context.Context) {
	for {
		var first *enqueueReq
		select {
		case <-ctx.Done():
			return
		case first = <-c.enq:
		}
		batch := []*enqueueReq{first}
		count := len(first.msgs)
	gather:
		for count < chatGroupMax {
			select {
			case r := <-c.enq:
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
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		entries, err := c.n.store.Enqueue(sctx, all)
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
			if ob := c.existingBox(p); ob != nil {
				ob.wake()
			}
		}
	}
}

// run is the deliverer of one contact: whenever the contact is connected
// and something is queued for it, deliver.
func (c *chatter) run(ctx context.Context, ob *outbox) {
	bo := core.NewBackoff(500*time.Millisecond, 30*time.Second)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		changed := c.n.watch.changed(ob.peer)
		wait := time.Hour
		if path, _ := c.n.pathTo(ob.peer); path != control.PathNone && c.hasWork(ctx, ob) {
			err := c.deliver(ctx, ob)
			ob.unmarkAll()
			if err == nil {
				bo.Reset()
				continue
			}
			if ctx.Err() != nil {
				return
			}
			wait = bo.Next()
			c.n.log.Debug("chat delivery interrupted", "peer", ob.peer.ShortString(), "err", err, "retry", wait.Round(time.Millisecond))
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
			if path, _ := c.n.pathTo(ob.peer); path != control.PathNone && time.Since(e.at) < typingMaxAge {
				select {
				case ob.eph <- e:
				default:
				}
			}
		case <-timer.C:
		}
	}
}

func (c *chatter) hasWork(ctx context.Context, ob *outbox) bool {
	if len(ob.eph) > 0 {
		return true
	}
	n, err := c.n.store.OutboxLen(ctx, ob.peer)
	return err != nil || n > 0 // on a read error, try; deliver reports it
}

type ackResult struct {
	ids []chat.MsgID
	err error
}

// inFlight is one batch awaiting its ack.
type inFlight struct {
	ids     []chat.MsgID // as sent, in order
	durable []chat.MsgID // the ones that leave the outbox on ack
	history []chat.MsgID // the ones that show in the history
}

// deliver opens one stream to ob.peer and streams the outbox through it
// until the outbox is empty and the stream has been idle for chatIdle (nil),
// a direct connection replaces the relayed one the stream runs on (nil:
// the caller starts again at once), or something fails (the error).
func (c *chatter) deliver(ctx context.Context, ob *outbox) error {
	p := ob.peer
	st, err := chat.Open(ctx, c.n.host, p, chatAckTimeout)
	if err != nil {
		return err
	}
	via := connPath(st.Conn())
	acks := make(chan ackResult, chatWindow+4)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			ids, err := st.ReadAck()
			acks <- ackResult{ids, err}
			if err != nil {
				return
			}
		}
	}()
	ok := false
	defer func() {
		if !ok {
			st.Reset()
		}
		<-readerDone
	}()

	var (
		cursor   uint64 // highest seq sent on this stream
		flight   []inFlight
		more     = true // the outbox may hold messages after cursor
		draining bool   // a direct link appeared: finish and reopen
		changed  = c.n.watch.changed(p)
		idle     = time.NewTimer(chatIdle)
	)
	defer idle.Stop()
	for {
		for more && !draining && len(flight) < chatWindow {
			entries, err := c.n.store.Outbox(ctx, p, cursor, chat.MaxBatch)
			if err != nil {
				return err
			}
			if len(entries) < chat.MaxBatch {
				more = false
			}
			if len(entries) == 0 {
				break
			}
			msgs := make([]*pb.Message, 0, len(entries))
			for _, e := range entries {
				msgs = append(msgs, toWire(e))
			}
			// Long texts: the frame holds fewer than MaxBatch.
			if k := chat.BatchLen(msgs); k < len(entries) {
				entries, msgs, more = entries[:k], msgs[:k], true
			}
			b := inFlight{}
			var fresh []chat.MsgID // not stored in a mailbox: now "sent"
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
			if err := st.Send(msgs); err != nil {
				return err
			}
			cursor = entries[len(entries)-1].Seq
			ob.markSent(b.history)
			c.publishStatus(p, fresh, control.StatusSent, "", "")
			flight = append(flight, b)
		}
		if draining && len(flight) == 0 {
			return c.finish(st, acks, &ok)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ob.kick:
			more = true
		case e := <-ob.eph:
			if draining || len(flight) >= chatWindow || time.Since(e.at) > typingMaxAge {
				continue // best effort
			}
			if err := st.Send([]*pb.Message{e.msg}); err != nil {
				return err
			}
			flight = append(flight, inFlight{ids: []chat.MsgID{chat.MsgID(e.msg.GetId())}})
		case a := <-acks:
			if a.err != nil {
				return fmt.Errorf("read ack: %w", a.err)
			}
			if len(flight) == 0 || !slices.Equal(flight[0].ids, a.ids) {
				return errors.New("chat: ack does not match the oldest batch in flight")
			}
			b := flight[0]
			flight = flight[1:]
			if len(b.durable) > 0 {
				changes, err := c.n.store.Acked(ctx, p, b.durable, via)
				if err != nil {
					return err
				}
				ob.unmark(b.history)
				c.applyChanges(p, changes)
			}
			if len(flight) == 0 {
				if err := st.Idle(); err != nil {
					return err
				}
			}
			idle.Reset(chatIdle)
		case <-changed:
			changed = c.n.watch.changed(p)
			if via == control.PathRelayed {
				if path, _ := c.n.pathTo(p); path == control.PathDirect {
					c.n.log.Debug("chat stream moving to the direct link", "peer", p.ShortString())
					draining = true
				}
			}
		case <-idle.C:
			if len(flight) == 0 && !more {
				return c.finish(st, acks, &ok)
			}
			idle.Reset(chatIdle)
		}
	}
}

// finish closes an idle stream gracefully: no more batches, wait for the
// receiver's end of stream.
func (c *chatter) finish(st *chat.Stream, acks <-chan ackResult, ok *bool) error {
	if err := st.CloseWrite(); err != nil {
		return err
	}
	a := <-acks
	if a.err == nil {
		return errors.New("chat: ack after the last batch was acknowledged")
	}
	if !errors.Is(a.err, io.EOF) {
		return a.err
	}
	*ok = true
	_ = st.Close()
	return nil
}

// connPath names the path a connection takes.
func connPath(c network.Conn) string {
	return core.PathOf(c).String()
}

func toWire(e store.OutboxEntry) *pb.Message {
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

// Allow implements chat.Receiver: only accepted contacts may chat.
func (c *chatter) Allow(ctx context.Context, p peer.ID) bool { return c.n.isAccepted(ctx, p) }

// Receive implements chat.Receiver: one durable transaction per batch, then
// events for the clients. The offline mailbox (mailbox.go) hands it the
// messages it takes from our mailbox too, with a nil conn.
func (c *chatter) Receive(ctx context.Context, from peer.ID, conn network.Conn, msgs []*pb.Message) error {
	name := c.contactName(ctx, from)
	ins := make([]store.Incoming, 0, len(msgs))
	var typing *bool
	for _, m := range msgs {
		in := store.Incoming{ID: chat.MsgID(m.GetId()), Text: m.GetText(), Seq: m.GetSeq(), SentAt: time.UnixMilli(m.GetSentAtMs())}
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
				in.Refs = append(in.Refs, chat.MsgID(r))
			}
		case pb.Kind_FILE_OFFER:
			in.Kind, in.Offer = store.KindFile, c.n.files.incomingOffer(ctx, from, m)
			in.Text = in.Offer.Transfer.Note
		case pb.Kind_FILE_UPDATE:
			in.Kind, in.Update = store.KindFileUpdate, c.n.files.incomingUpdate(name, m.GetFileUpdate())
			if in.Update == nil {
				continue // a state this version does not know
			}
		case pb.Kind_TYPING_STARTED, pb.Kind_TYPING_STOPPED:
			t := m.GetKind() == pb.Kind_TYPING_STARTED
			typing = &t
			continue
		default:
			continue
		}
		ins = append(ins, in)
	}
	var res store.Received
	if len(ins) > 0 {
		var err error
		if res, err = c.n.store.StoreIncoming(ctx, from, ins); err != nil {
			c.n.log.Error("cannot store received messages; the sender will retry", "peer", from.ShortString(), "err", err)
			return err
		}
	}
	for _, m := range res.New {
		cm := c.toAPI(m, name)
		c.n.publish(control.Event{Type: control.EventMessage, PeerID: from.String(), Name: name, Message: &cm})
		if m.Kind == store.KindNudge {
			c.n.publish(control.Event{Type: control.EventNudge, PeerID: from.String(), Name: name, Message: &cm})
		}
	}
	if len(res.New) > 0 && typing == nil {
		stopped := false // a message ends the typing
		typing = &stopped
	}
	c.applyChanges(from, res.Changed)
	c.n.files.received(res.Transfers)
	if len(res.Queued) > 0 {
		if ob := c.existingBox(from); ob != nil {
			ob.wake()
		}
	}
	if typing != nil {
		c.n.publish(control.Event{Type: control.EventTyping, PeerID: from.String(), Name: name, Typing: typing})
	}
	return nil
}

func (c *chatter) contactName(ctx context.Context, p peer.ID) string {
	if ct, err := c.n.store.ContactByPeer(ctx, p); err == nil {
		return ct.Name
	}
	return ""
}

// applyChanges announces status changes of our messages and wakes those
// waiting for them.
func (c *chatter) applyChanges(p peer.ID, changes []store.StatusChange) {
	if len(changes) == 0 {
		return
	}
	type key struct {
		st          store.Status
		via, reason string
	}
	byStatus := map[key][]chat.MsgID{}
	for _, ch := range changes {
		k := key{ch.Status, ch.Via, ch.Reason}
		byStatus[k] = append(byStatus[k], ch.ID)
	}
	for k, ids := range byStatus {
		c.publishStatus(p, ids, k.st.String(), k.via, k.reason)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range changes {
		for _, w := range c.waiters[ch.ID] {
			select {
			case w <- delivery{status: ch.Status, via: ch.Via, reason: ch.Reason}:
			default:
			}
		}
	}
}

func (c *chatter) publishStatus(p peer.ID, ids []chat.MsgID, status, via, reason string) {
	if len(ids) == 0 {
		return
	}
	ss := make([]string, len(ids))
	for i, id := range ids {
		ss[i] = id.String()
	}
	c.n.publish(control.Event{Type: control.EventStatus, PeerID: p.String(), IDs: ss, Status: status, Path: via, Reason: reason})
}

// waitFor registers interest in the status changes of id; cancel must be
// called.
func (c *chatter) waitFor(id chat.MsgID) (<-chan delivery, func()) {
	ch := make(chan delivery, 4)
	c.mu.Lock()
	c.waiters[id] = append(c.waiters[id], ch)
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		ws := slices.DeleteFunc(c.waiters[id], func(w chan delivery) bool { return w == ch })
		if len(ws) == 0 {
			delete(c.waiters, id)
		} else {
			c.waiters[id] = ws
		}
	}
}

// toAPI converts a history message for clients.
func (c *chatter) toAPI(m store.Message, name string) control.Message {
	out := control.Message{
		ID: m.ID.String(), PeerID: m.Peer.String(), Contact: name, Kind: m.Kind, Text: m.Text,
		Seq: m.Seq, SentAt: m.SentAt, ReceivedAt: m.ReceivedAt, Status: m.Status.String(), Via: m.Via, Reason: m.Reason,
	}
	if m.Outgoing {
		out.Direction, out.From = "out", c.n.host.ID().String()
		if m.Status == store.StatusQueued {
			if ob := c.existingBox(m.Peer); ob != nil && ob.isSent(m.ID) {
				out.Status = control.StatusSent
			}
		}
	} else {
		out.Direction, out.From = "in", m.Peer.String()
	}
	if m.Kind == store.KindFile {
		out.File = c.n.files.ref(m.ID)
	}
	return out
}
