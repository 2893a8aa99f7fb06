package offline_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/mailbox"
)

// identity is a peer with its Ed25519 key (seal needs the key inlined in
// the peer ID).
type identity struct {
	key crypto.PrivKey
	id  peer.ID
}

func newIdentity(t *testing.T) identity {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(k)
	require.NoError(t, err)
	return identity{k, id}
}

// serverAt is a rendezvous server's identity and an address for it.
func serverAt(t *testing.T, port string) peer.AddrInfo {
	t.Helper()
	a, err := ma.NewMultiaddr("/ip4/192.0.2.1/tcp/" + port)
	require.NoError(t, err)
	return peer.AddrInfo{ID: newIdentity(t).id, Addrs: []ma.Multiaddr{a}}
}

// --- store ---

type outEntry struct {
	store.Undeposited
	queued time.Time
	stored bool
}

type fakeToken struct {
	raw []byte
	exp time.Time
}

// fakeStore is the part of the database offline uses, in memory.
type fakeStore struct {
	mu       sync.Mutex
	tokens   map[peer.ID]fakeToken
	dropped  []peer.ID
	outbox   map[peer.ID][]*outEntry
	begun    []store.DepositRecord
	toCheck  []store.DepositRecord // handed out once by DepositsToCheck
	fates    []store.FateUpdate
	contacts map[peer.ID]store.Contact
	dueCalls int
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		tokens:   map[peer.ID]fakeToken{},
		outbox:   map[peer.ID][]*outEntry{},
		contacts: map[peer.ID]store.Contact{},
	}
}

func (s *fakeStore) addContact(c store.Contact) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.contacts[c.PeerID] = c
}

// queue adds a text message for p, queued at queued.
func (s *fakeStore) queue(p peer.ID, text string, seq uint64, queued time.Time) chat.MsgID {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := chat.NewID()
	e := &outEntry{queued: queued}
	e.ID, e.Peer, e.Kind, e.Text, e.SentAt, e.Seq = id, p, store.KindText, text, queued, seq
	s.outbox[p] = append(s.outbox[p], e)
	return id
}

func (s *fakeStore) setQueued(p peer.ID, queued time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.outbox[p] {
		e.queued = queued
	}
}

func (s *fakeStore) SaveToken(_ context.Context, p peer.ID, token []byte, expires time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[p] = fakeToken{token, expires}
	return nil
}

func (s *fakeStore) Token(_ context.Context, p peer.ID) ([]byte, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[p]
	if !ok {
		return nil, time.Time{}, store.ErrNotFound
	}
	return t.raw, t.exp, nil
}

func (s *fakeStore) DropToken(_ context.Context, p peer.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, p)
	s.dropped = append(s.dropped, p)
	return nil
}

func (s *fakeStore) MailboxDue(context.Context) (map[peer.ID]time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dueCalls++
	out := map[peer.ID]time.Time{}
	for p, es := range s.outbox {
		for _, e := range es {
			if o, ok := out[p]; !e.stored && (!ok || e.queued.Before(o)) {
				out[p] = e.queued
			}
		}
	}
	return out, nil
}

func (s *fakeStore) Undeposited(_ context.Context, p peer.ID, queuedBefore time.Time, limit int) ([]store.Undeposited, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Undeposited
	for _, e := range s.outbox[p] {
		if !e.stored && !e.queued.After(queuedBefore) && len(out) < limit {
			out = append(out, e.Undeposited)
		}
	}
	return out, nil
}

func (s *fakeStore) entry(p peer.ID, id chat.MsgID) *outEntry {
	for _, e := range s.outbox[p] {
		if e.ID == id {
			return e
		}
	}
	return nil
}

func (s *fakeStore) BeginDeposits(_ context.Context, ds []store.DepositRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		if e := s.entry(d.Peer, d.MsgID); e != nil {
			e.DepositID, e.Server = d.DepositID, d.Server
		}
	}
	s.begun = append(s.begun, ds...)
	return nil
}

func (s *fakeStore) Deposited(_ context.Context, p peer.ID, stored, refused []chat.MsgID) ([]store.StatusChange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changes []store.StatusChange
	for _, id := range stored {
		if e := s.entry(p, id); e != nil {
			e.stored = true
			changes = append(changes, store.StatusChange{ID: id, Status: store.StatusStored})
		}
	}
	for _, id := range refused {
		if e := s.entry(p, id); e != nil {
			e.DepositID, e.Server = [16]byte{}, ""
		}
	}
	return changes, nil
}

func (s *fakeStore) DepositsToCheck(context.Context, time.Time, int) ([]store.DepositRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.toCheck
	s.toCheck = nil
	return out, nil
}

func (s *fakeStore) ApplyFates(_ context.Context, us []store.FateUpdate) ([]store.StatusChange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fates = append(s.fates, us...)
	var changes []store.StatusChange
	for _, u := range us {
		if u.Action == store.FateFailed {
			changes = append(changes, store.StatusChange{ID: u.MsgID, Status: store.StatusFailed, Reason: u.Reason})
		}
	}
	return changes, nil
}

func (s *fakeStore) MailboxCounts(context.Context) (map[peer.ID]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[peer.ID]int{}
	for p, es := range s.outbox {
		for _, e := range es {
			if e.stored {
				out[p]++
			}
		}
	}
	return out, nil
}

func (s *fakeStore) Contacts(context.Context) ([]store.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Contact
	for _, c := range s.contacts {
		out = append(out, c)
	}
	return out, nil
}

func (s *fakeStore) ContactByPeer(_ context.Context, p peer.ID) (store.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contacts[p]
	if !ok {
		return store.Contact{}, store.ErrNotFound
	}
	return c, nil
}

// --- links ---

type fakeLinks struct {
	core.PeerWatch // Changed, and Fire when the test changes a path

	mu        sync.Mutex
	paths     map[peer.ID]core.Path
	connected map[peer.ID]bool
	connects  []peer.AddrInfo
}

func newFakeLinks() *fakeLinks {
	return &fakeLinks{paths: map[peer.ID]core.Path{}, connected: map[peer.ID]bool{}}
}

func (l *fakeLinks) Path(p peer.ID) (core.Path, network.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.paths[p], nil
}

// setConnected connects or disconnects p and wakes whoever watches it.
func (l *fakeLinks) setConnected(p peer.ID, up bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.connected[p] = up
	l.Fire(p)
}

func (l *fakeLinks) Connected(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connected[p]
}

func (l *fakeLinks) Connect(_ context.Context, ai peer.AddrInfo) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.connects = append(l.connects, ai)
	l.connected[ai.ID] = true
	return nil
}

// --- protocol client ---

type depositCall struct {
	server, recipient peer.ID
	items             []mailbox.Item
}

type fakeRemote struct {
	mu       sync.Mutex
	refuse   map[peer.ID]mailbox.Code // whole deposits refused by server
	deposits []depositCall
	boxes    map[peer.ID][]mailbox.StoredBox // our mailbox, by server
	fetches  int
	deleted  map[peer.ID][][]mailbox.DepositID // done then rejected, per Delete
	fates    map[mailbox.DepositID]mailbox.Fate
	statuses int
	pushErr  error
	pushes   chan []byte
	hang     bool // Deposit blocks until its context ends
}

func newFakeRemote() *fakeRemote {
	return &fakeRemote{
		refuse:  map[peer.ID]mailbox.Code{},
		boxes:   map[peer.ID][]mailbox.StoredBox{},
		deleted: map[peer.ID][][]mailbox.DepositID{},
		fates:   map[mailbox.DepositID]mailbox.Fate{},
		pushes:  make(chan []byte, 16),
	}
}

func (r *fakeRemote) Deposit(ctx context.Context, server, recipient peer.ID, _ []byte, items []mailbox.Item) ([]mailbox.Code, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deposits = append(r.deposits, depositCall{server, recipient, items})
	if r.hang {
		// A server that never answers: only ctx ends the request.
		r.mu.Unlock()
		<-ctx.Done()
		r.mu.Lock()
		return nil, ctx.Err()
	}
	if c, ok := r.refuse[server]; ok {
		return nil, &mailbox.RefusedError{Code: c, Reason: "refused by the test"}
	}
	codes := make([]mailbox.Code, len(items))
	for i := range codes {
		codes[i] = mailbox.CodeOK
	}
	return codes, nil
}

func (r *fakeRemote) depositCalls() []depositCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.deposits)
}

func (r *fakeRemote) Fetch(_ context.Context, server peer.ID, after uint64, limit int) ([]mailbox.StoredBox, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fetches++
	var out []mailbox.StoredBox
	for _, b := range r.boxes[server] {
		if b.Seq > after && len(out) < limit {
			out = append(out, b)
		}
	}
	return out, false, nil
}

func (r *fakeRemote) Delete(_ context.Context, server peer.ID, delivered, rejected []mailbox.DepositID) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted[server] = append(r.deleted[server], slices.Clone(delivered), slices.Clone(rejected))
	gone := append(slices.Clone(delivered), rejected...)
	n := len(r.boxes[server])
	r.boxes[server] = slices.DeleteFunc(r.boxes[server], func(b mailbox.StoredBox) bool { return slices.Contains(gone, b.ID) })
	return n - len(r.boxes[server]), nil
}

func (r *fakeRemote) Status(_ context.Context, _ peer.ID, ids []mailbox.DepositID) ([]mailbox.Fate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses++
	out := make([]mailbox.Fate, len(ids))
	for i, id := range ids {
		f, ok := r.fates[id]
		if !ok {
			f = mailbox.Fate{State: mailbox.StatePending}
		}
		f.ID = id
		out[i] = f
	}
	return out, nil
}

func (r *fakeRemote) PushToken(_ context.Context, _ peer.ID, token []byte) error {
	r.mu.Lock()
	err := r.pushErr
	r.mu.Unlock()
	r.pushes <- token
	return err
}

func (r *fakeRemote) setPushErr(err error) {
	r.mu.Lock()
	r.pushErr = err
	r.mu.Unlock()
}

// --- chat ---

type receiveCall struct {
	from peer.ID
	conn network.Conn
	msgs []*pb.Message
}

type changesCall struct {
	peer    peer.ID
	changes []store.StatusChange
}

type fakeChat struct {
	mu       sync.Mutex
	received []receiveCall
	changes  chan changesCall
	enqueued []store.NewOutgoing
	// onChanges, if set, runs in ApplyChanges (what the user would see
	// when told).
	onChanges func(changesCall)
}

func newFakeChat() *fakeChat { return &fakeChat{changes: make(chan changesCall, 64)} }

func (c *fakeChat) Receive(_ context.Context, from peer.ID, conn network.Conn, msgs []*pb.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.received = append(c.received, receiveCall{from, conn, msgs})
	return nil
}

func (c *fakeChat) receivedCalls() []receiveCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.received)
}

func (c *fakeChat) ApplyChanges(p peer.ID, changes []store.StatusChange) {
	c.mu.Lock()
	f := c.onChanges
	c.mu.Unlock()
	if f != nil {
		f(changesCall{p, changes})
	}
	c.changes <- changesCall{p, changes}
}

func (c *fakeChat) Enqueue(_ context.Context, msgs []store.NewOutgoing) ([]store.OutboxEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enqueued = append(c.enqueued, msgs...)
	out := make([]store.OutboxEntry, len(msgs))
	for i, m := range msgs {
		out[i] = store.OutboxEntry{NewOutgoing: m}
	}
	return out, nil
}

func (c *fakeChat) ToWire(e store.OutboxEntry) *pb.Message {
	m := &pb.Message{Id: e.ID[:], Seq: e.Seq, SentAtMs: e.SentAt.UnixMilli(), Text: e.Text, Kind: pb.Kind_TEXT}
	for _, r := range e.Refs {
		m.Refs = append(m.Refs, r[:])
	}
	return m
}

// --- policy ---

type fakePolicy struct {
	mu       sync.Mutex
	accepted map[peer.ID]bool
}

func (p *fakePolicy) Allow(_ context.Context, id peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted[id]
}

var errPush = errors.New("push failed in the test")
