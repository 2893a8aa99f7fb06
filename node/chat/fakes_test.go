package chat_test

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	chatproto "github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

// fakeStore is an in-memory Outbox, History and Contacts: sequence
// numbers per conversation, an outbox, a history that de-duplicates by id.
type fakeStore struct {
	mu        sync.Mutex // guards the following fields
	contacts  map[peer.ID]store.Contact
	seq       map[peer.ID]uint64
	outbox    map[peer.ID][]store.OutboxEntry
	history   []store.Message
	commits   [][]store.NewOutgoing // each Enqueue call
	gate      chan struct{}         // if set, Enqueue waits for it
	incoming  [][]store.Incoming    // each StoreIncoming call
	transfers bool                  // StoreIncoming reports a transfer per offer
}

func newFakeStore(contacts ...store.Contact) *fakeStore {
	s := &fakeStore{contacts: map[peer.ID]store.Contact{}, seq: map[peer.ID]uint64{}, outbox: map[peer.ID][]store.OutboxEntry{}}
	for _, c := range contacts {
		s.contacts[c.PeerID] = c
	}
	return s
}

func (s *fakeStore) Enqueue(ctx context.Context, msgs []store.NewOutgoing) ([]store.OutboxEntry, error) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits = append(s.commits, msgs)
	out := make([]store.OutboxEntry, 0, len(msgs))
	for _, m := range msgs {
		s.seq[m.Peer]++
		e := store.OutboxEntry{NewOutgoing: m, Seq: s.seq[m.Peer]}
		s.outbox[m.Peer] = append(s.outbox[m.Peer], e)
		out = append(out, e)
		if store.IsHistory(m.Kind) {
			s.history = append(s.history, store.Message{ID: m.ID, Peer: m.Peer, Outgoing: true, Kind: m.Kind, Text: m.Text, Seq: e.Seq, SentAt: m.SentAt, Status: store.StatusQueued})
		}
	}
	return out, nil
}

func (s *fakeStore) Outbox(_ context.Context, p peer.ID, afterSeq uint64, limit int) ([]store.OutboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.OutboxEntry
	for _, e := range s.outbox[p] {
		if e.Seq > afterSeq && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *fakeStore) OutboxLen(_ context.Context, p peer.ID) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outbox[p]), nil
}

func (s *fakeStore) Acked(_ context.Context, p peer.ID, ids []chatproto.MsgID, via string) ([]store.StatusChange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outbox[p] = slices.DeleteFunc(s.outbox[p], func(e store.OutboxEntry) bool { return slices.Contains(ids, e.ID) })
	var out []store.StatusChange
	for i, m := range s.history {
		if m.Outgoing && slices.Contains(ids, m.ID) && m.Status < store.StatusDelivered {
			s.history[i].Status, s.history[i].Via = store.StatusDelivered, via
			out = append(out, store.StatusChange{ID: m.ID, Status: store.StatusDelivered, Via: via})
		}
	}
	return out, nil
}

func (s *fakeStore) StoreIncoming(_ context.Context, from peer.ID, in []store.Incoming) (store.Received, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.incoming = append(s.incoming, in)
	var res store.Received
	for _, m := range in {
		if m.Kind == store.KindDelivered || m.Kind == store.KindRead {
			st := store.StatusDelivered
			if m.Kind == store.KindRead {
				st = store.StatusRead
			}
			for i, h := range s.history {
				if h.Outgoing && h.Peer == from && slices.Contains(m.Refs, h.ID) && h.Status < st {
					s.history[i].Status = st
					res.Changed = append(res.Changed, store.StatusChange{ID: h.ID, Status: st})
				}
			}
			continue
		}
		if m.Offer != nil && s.transfers {
			res.Transfers = append(res.Transfers, store.Transfer{ID: m.ID, Peer: from, State: m.Offer.Transfer.State})
		}
		if !store.IsHistory(m.Kind) || slices.ContainsFunc(s.history, func(h store.Message) bool { return h.ID == m.ID }) {
			continue
		}
		msg := store.Message{ID: m.ID, Peer: from, Kind: m.Kind, Text: m.Text, Seq: m.Seq, SentAt: m.SentAt, ReceivedAt: time.Now(), Status: store.StatusDelivered}
		s.history = append(s.history, msg)
		res.New = append(res.New, msg)
	}
	return res, nil
}

func (s *fakeStore) History(_ context.Context, p peer.ID, before *chatproto.MsgID, limit int) ([]store.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Message
	for _, m := range s.history {
		if m.Peer == p {
			if before != nil && m.ID == *before {
				break
			}
			out = append(out, m)
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

func (s *fakeStore) Search(_ context.Context, query string, p peer.ID, limit int) ([]store.Message, error) {
	if strings.TrimSpace(query) == "" {
		return nil, store.ErrBadQuery
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Message
	for _, m := range s.history {
		if (p == "" || m.Peer == p) && strings.Contains(m.Text, query) && len(out) < limit {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *fakeStore) MarkRead(_ context.Context, p peer.ID, receipts bool) ([]chatproto.MsgID, []store.OutboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []chatproto.MsgID
	for i, m := range s.history {
		if m.Peer == p && !m.Outgoing && m.Status < store.StatusRead {
			s.history[i].Status = store.StatusRead
			ids = append(ids, m.ID)
		}
	}
	var queued []store.OutboxEntry
	if receipts && len(ids) > 0 {
		s.seq[p]++
		e := store.OutboxEntry{NewOutgoing: store.NewOutgoing{ID: chatproto.NewID(), Peer: p, Kind: store.KindRead, Refs: ids, SentAt: time.Now()}, Seq: s.seq[p]}
		s.outbox[p] = append(s.outbox[p], e)
		queued = append(queued, e)
	}
	return ids, queued, nil
}

func (s *fakeStore) MessageByID(_ context.Context, id chatproto.MsgID) (store.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.history {
		if m.ID == id {
			return m, nil
		}
	}
	return store.Message{}, store.ErrNotFound
}

func (s *fakeStore) FindContact(_ context.Context, ref string) (store.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.contacts {
		if strings.EqualFold(c.Name, ref) || c.PeerID.String() == ref {
			return c, nil
		}
	}
	return store.Contact{}, store.ErrNotFound
}

func (s *fakeStore) ContactByPeer(_ context.Context, p peer.ID) (store.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contacts[p]
	if !ok {
		return c, store.ErrNotFound
	}
	return c, nil
}

func (s *fakeStore) UpdateContact(_ context.Context, c store.Contact) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.contacts[c.PeerID]; !ok {
		return store.ErrNotFound
	}
	s.contacts[c.PeerID] = c
	return nil
}

// conversation is p's history, in sequence order for each direction.
func (s *fakeStore) conversation(p peer.ID) []store.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Message
	for _, m := range s.history {
		if m.Peer == p {
			out = append(out, m)
		}
	}
	return out
}

func (s *fakeStore) outboxLen(p peer.ID) int {
	n, _ := s.OutboxLen(context.Background(), p)
	return n
}

func (s *fakeStore) commitSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, len(s.commits))
	for i, c := range s.commits {
		out[i] = len(c)
	}
	return out
}

func (s *fakeStore) setGate(g chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = g
}

// fakeLinks is Links with paths the test sets.
type fakeLinks struct {
	core.PeerWatch // Changed, and Fire when the test changes a path

	mu    sync.Mutex // guards the following fields
	paths map[peer.ID]core.Path
}

func newFakeLinks() *fakeLinks {
	return &fakeLinks{paths: map[peer.ID]core.Path{}}
}

func (l *fakeLinks) Path(p peer.ID) (core.Path, network.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.paths[p], nil
}

func (l *fakeLinks) set(p peer.ID, path core.Path) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paths[p] = path
	l.Fire(p)
}

// policy allows the peers in it.
type policy struct {
	mu    sync.Mutex // guards allow
	allow map[peer.ID]bool
}

func allowOnly(ps ...peer.ID) *policy {
	p := &policy{allow: map[peer.ID]bool{}}
	for _, id := range ps {
		p.allow[id] = true
	}
	return p
}

func (p *policy) Allow(_ context.Context, id peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.allow[id]
}

// events records what was published.
type events struct {
	mu  sync.Mutex // guards all
	all []control.Event
}

func (e *events) Publish(ev control.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

// of returns the events of type typ.
func (e *events) of(typ string) []control.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []control.Event
	for _, ev := range e.all {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// statusOf is the last status published for message id.
func (e *events) statusOf(id string) string {
	var last string
	for _, ev := range e.of(control.EventStatus) {
		if slices.Contains(ev.IDs, id) {
			last = cmp.Or(ev.Status, last)
		}
	}
	return last
}

// fileKinds is a KindHandler that records its calls.
type fileKinds struct {
	mu       sync.Mutex // guards the following fields
	names    []string   // fromName of each Incoming
	received [][]store.Transfer
}

func (k *fileKinds) Incoming(_ context.Context, _ peer.ID, fromName string, m *pb.Message) (store.Incoming, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.names = append(k.names, fromName)
	switch m.GetKind() {
	case pb.Kind_FILE_OFFER:
		t := store.Transfer{Name: m.GetFileOffer().GetName(), State: store.TransferOffered, Note: "a note"}
		return store.Incoming{Kind: store.KindFile, Text: t.Note, Offer: &store.IncomingOffer{Transfer: t}}, true
	case pb.Kind_FILE_UPDATE:
		if m.GetFileUpdate().GetState() == pb.FileState(99) {
			return store.Incoming{}, false
		}
		return store.Incoming{Kind: store.KindFileUpdate, Update: &store.IncomingUpdate{Transfer: chatproto.MsgID(m.GetFileUpdate().GetTransfer()), State: store.TransferDone}}, true
	}
	return store.Incoming{}, false
}

func (k *fileKinds) Received(ts []store.Transfer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.received = append(k.received, ts)
}

func (k *fileKinds) Ref(id chatproto.MsgID) *control.FileRef {
	return &control.FileRef{Name: "ref-" + id.String()}
}
