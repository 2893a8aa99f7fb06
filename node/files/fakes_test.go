package files_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/files"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// mocknet and the libp2p host leave these behind; their Close ends
		// asynchronously.
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/net/mock.(*peernet).Close"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/eventbus.(*basicBus).Subscribe.func1"),
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem.(*AddrBook).background"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

// fakeStore is files.Store in memory, with the semantics of the real one
// that files relies on.
type fakeStore struct {
	mu        sync.Mutex
	transfers map[chat.MsgID]store.Transfer
	order     []chat.MsgID
	sums      map[chat.MsgID][]byte
	contacts  []store.Contact
	queued    []store.OutboxEntry
	seq       uint64
	// sumsErr, if set, fails SetTransferSums; offerErr fails OfferFile.
	sumsErr  error
	offerErr error
}

func newFakeStore(contacts ...store.Contact) *fakeStore {
	return &fakeStore{transfers: map[chat.MsgID]store.Transfer{}, sums: map[chat.MsgID][]byte{}, contacts: contacts}
}

func (s *fakeStore) list(active bool) []store.Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Transfer
	for _, id := range s.order {
		if t := s.transfers[id]; !active || !store.FinalState(t.State) {
			out = append(out, t)
		}
	}
	return out
}

func (s *fakeStore) ActiveTransfers(context.Context) ([]store.Transfer, error) {
	return s.list(true), nil
}

func (s *fakeStore) Transfers(context.Context) ([]store.Transfer, error) { return s.list(false), nil }

func (s *fakeStore) GetTransfer(_ context.Context, id chat.MsgID) (store.Transfer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.transfers[id]
	if !ok {
		return t, fmt.Errorf("transfer %s: %w", id, store.ErrNotFound)
	}
	return t, nil
}

func (s *fakeStore) FindTransfer(ctx context.Context, ref string) (store.Transfer, error) {
	id, err := chat.ParseID(ref)
	if err != nil {
		return store.Transfer{}, fmt.Errorf("%q is not a transfer id: %w", ref, store.ErrNotFound)
	}
	return s.GetTransfer(ctx, id)
}

func (s *fakeStore) UpdateTransfer(_ context.Context, id chat.MsgID, edit func(t *store.Transfer) (*store.NewOutgoing, error)) (store.Transfer, *store.OutboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.transfers[id]
	if !ok {
		return t, nil, fmt.Errorf("transfer %s: %w", id, store.ErrNotFound)
	}
	msg, err := edit(&t)
	if err != nil {
		return t, nil, err
	}
	t.UpdatedAt = time.Now()
	s.transfers[id] = t
	if store.FinalState(t.State) {
		delete(s.sums, id)
	}
	if msg == nil {
		return t, nil, nil
	}
	q := s.enqueueLocked(*msg)
	return t, &q, nil
}

func (s *fakeStore) enqueueLocked(msg store.NewOutgoing) store.OutboxEntry {
	s.seq++
	q := store.OutboxEntry{NewOutgoing: msg, Seq: s.seq}
	s.queued = append(s.queued, q)
	return q
}

func (s *fakeStore) TransferSums(_ context.Context, id chat.MsgID) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sums[id], nil
}

func (s *fakeStore) SetTransferSums(_ context.Context, id chat.MsgID, sums []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sumsErr != nil {
		return s.sumsErr
	}
	if sums == nil {
		sums = []byte{}
	}
	s.sums[id] = sums
	return nil
}

func (s *fakeStore) Checkpoint(_ context.Context, id chat.MsgID, done int64, hashState []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.transfers[id]; ok && !t.Outgoing {
		t.DoneBytes, t.HashState, t.UpdatedAt = done, hashState, time.Now()
		s.transfers[id] = t
	}
	return nil
}

func (s *fakeStore) OfferFile(_ context.Context, t store.Transfer, sums []byte, msg store.NewOutgoing) (store.OutboxEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.offerErr != nil {
		return store.OutboxEntry{}, fmt.Errorf("offer file: %w", s.offerErr)
	}
	s.insertLocked(t)
	s.sums[t.ID] = sums
	return s.enqueueLocked(msg), nil
}

func (s *fakeStore) FindContact(_ context.Context, ref string) (store.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.contacts {
		if c.Name == ref || c.PeerID.String() == ref {
			return c, nil
		}
	}
	return store.Contact{}, fmt.Errorf("contact %q: %w", ref, store.ErrNotFound)
}

func (s *fakeStore) insertLocked(t store.Transfer) {
	now := time.Now()
	t.CreatedAt, t.UpdatedAt = now, now
	s.transfers[t.ID] = t
	s.order = append(s.order, t.ID)
}

// storeIncoming records what Incoming made of a message, as chat's batch
// does, and returns the transfers the batch created or changed.
func (s *fakeStore) storeIncoming(from peer.ID, in store.Incoming) []store.Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case in.Offer != nil:
		t := in.Offer.Transfer
		t.ID, t.Peer, t.Outgoing = in.ID, from, false
		s.insertLocked(t)
		if in.Offer.Reply != nil {
			s.enqueueLocked(*in.Offer.Reply)
		}
		return []store.Transfer{s.transfers[t.ID]}
	case in.Update != nil:
		t, ok := s.transfers[in.Update.Transfer]
		if !ok || store.FinalState(t.State) {
			return nil
		}
		t.State, t.Reason = in.Update.State, in.Update.Reason
		s.transfers[t.ID] = t
		return []store.Transfer{t}
	}
	return nil
}

func (s *fakeStore) setSumsErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sumsErr = err
}

// outbox is what was queued, oldest first.
func (s *fakeStore) outbox() []store.OutboxEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.OutboxEntry(nil), s.queued...)
}

func (s *fakeStore) transfer(t *testing.T, id chat.MsgID) store.Transfer {
	t.Helper()
	tr, err := s.GetTransfer(context.Background(), id)
	require.NoError(t, err)
	return tr
}

// fakeLinks reads the path off the host's connections unless a test sets
// one; setting or clearing it fires the peer's Changed channel.
type fakeLinks struct {
	core.PeerWatch // Changed, and Fire when the test changes a path

	h host.Host

	mu   sync.Mutex
	path map[peer.ID]core.Path
}

func newFakeLinks(h host.Host) *fakeLinks {
	return &fakeLinks{h: h, path: map[peer.ID]core.Path{}}
}

func (l *fakeLinks) Path(p peer.ID) (core.Path, network.Conn) {
	l.mu.Lock()
	path, ok := l.path[p]
	l.mu.Unlock()
	if ok {
		return path, nil
	}
	return core.BestPath(l.h.Network().ConnsToPeer(p))
}

// setPath pins the path to p and fires its change.
func (l *fakeLinks) setPath(p peer.ID, path core.Path) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.path[p] = path
	l.Fire(p)
}

// clearPath goes back to the host's connections to p and fires its
// change.
func (l *fakeLinks) clearPath(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.path, p)
	l.Fire(p)
}

type fakeChat struct {
	names map[peer.ID]string

	mu    sync.Mutex
	wakes map[peer.ID]int
}

func newFakeChat(names map[peer.ID]string) *fakeChat {
	return &fakeChat{names: names, wakes: map[peer.ID]int{}}
}

func (c *fakeChat) Wake(p peer.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakes[p]++
}

func (c *fakeChat) woken(p peer.ID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wakes[p]
}

func (c *fakeChat) ContactName(_ context.Context, p peer.ID) string { return c.names[p] }

func (c *fakeChat) ToAPI(m store.Message, name string) control.Message {
	return control.Message{ID: m.ID.String(), PeerID: m.Peer.String(), Contact: name, Kind: m.Kind, Text: m.Text, Seq: m.Seq}
}

// fakePolicy allows the peers in it.
type fakePolicy struct {
	mu      sync.Mutex
	allowed map[peer.ID]bool
}

func allow(ps ...peer.ID) *fakePolicy {
	f := &fakePolicy{allowed: map[peer.ID]bool{}}
	for _, p := range ps {
		f.allowed[p] = true
	}
	return f
}

func (f *fakePolicy) Allow(_ context.Context, p peer.ID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.allowed[p]
}

func (f *fakePolicy) set(p peer.ID, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.allowed[p] = ok
}

// fakeEvents records what is published.
type fakeEvents struct{ ch chan control.Event }

func newFakeEvents() *fakeEvents { return &fakeEvents{ch: make(chan control.Event, 4096)} }

func (e *fakeEvents) Publish(ev control.Event) {
	select {
	case e.ch <- ev:
	default: // a test that publishes this much has failed anyway
	}
}

// wait returns the first event (from now on) that ok accepts.
func (e *fakeEvents) wait(t *testing.T, ok func(control.Event) bool) control.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-e.ch:
			if ok(ev) {
				return ev
			}
		case <-timeout:
			t.Fatal("the awaited event never came")
			return control.Event{}
		}
	}
}

// fileEvent accepts a file event of transfer id in state.
func fileEvent(id chat.MsgID, state string) func(control.Event) bool {
	return func(e control.Event) bool {
		return e.Type == control.EventFile && e.Transfer.ID == id.String() && e.Transfer.State == state
	}
}

// side is one peer: a Manager with its fakes.
type side struct {
	h      host.Host
	cfg    files.Config
	st     *fakeStore
	links  *fakeLinks
	chat   *fakeChat
	policy *fakePolicy
	events *fakeEvents
	m      *files.Manager
}

// start makes (or, after a Close, makes again) s's Manager.
func (s *side) start(t *testing.T) {
	t.Helper()
	m, err := files.New(context.Background(), s.cfg, s.h, s.st, s.links, s.chat, s.policy, s.events)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, m.Close()) })
	s.m = m
}

// pair makes alice (the sender) and bob (the receiver), contacts of each
// other over a mocknet link; edit adjusts both configs.
func pair(t *testing.T, edit func(*files.Config)) (alice, bob *side) {
	t.Helper()
	mn, err := mocknet.WithNPeers(2)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mn.Close() })
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	ha, hb := mn.Hosts()[0], mn.Hosts()[1]
	mk := func(h, other host.Host, otherName string) *side {
		cfg := files.Config{DataDir: t.TempDir(), RelayMax: 1 << 20, StallTimeout: 10 * time.Second}
		if edit != nil {
			edit(&cfg)
		}
		s := &side{
			h: h, cfg: cfg,
			st:     newFakeStore(store.Contact{PeerID: other.ID(), Name: otherName, State: store.StateAccepted}),
			links:  newFakeLinks(h),
			chat:   newFakeChat(map[peer.ID]string{other.ID(): otherName}),
			policy: allow(other.ID()),
			events: newFakeEvents(),
		}
		s.start(t)
		return s
	}
	return mk(ha, hb, "bob"), mk(hb, ha, "alice")
}

// writeFile writes size bytes of a pattern to a new file in dir.
func writeFile(t *testing.T, dir, name string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i/4099)
	}
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p, data
}

// toWire is the chat message that carries a queued file entry, as chat
// sends it.
func toWire(t *testing.T, e store.OutboxEntry) *pb.Message {
	t.Helper()
	m := &pb.Message{Id: e.ID[:], Seq: e.Seq, SentAtMs: e.SentAt.UnixMilli(), Text: e.Text}
	switch e.Kind {
	case store.KindFile:
		m.Kind, m.Text, m.FileOffer = pb.Kind_FILE_OFFER, "", &pb.FileOffer{}
		require.NoError(t, proto.Unmarshal(e.Payload, m.FileOffer))
	case store.KindFileUpdate:
		m.Kind, m.FileUpdate = pb.Kind_FILE_UPDATE, &pb.FileUpdate{}
		require.NoError(t, proto.Unmarshal(e.Payload, m.FileUpdate))
	default:
		t.Fatalf("not a file entry: %s", e.Kind)
	}
	return m
}

// deliver hands the file entry q that from queued to to, as chat would:
// Incoming, the batch stored, then Received.
func deliver(t *testing.T, from, to *side, fromName string, q store.OutboxEntry) store.Incoming {
	t.Helper()
	in, ok := to.m.Incoming(context.Background(), from.h.ID(), fromName, toWire(t, q))
	require.True(t, ok)
	to.m.Received(to.st.storeIncoming(from.h.ID(), in))
	return in
}

// lastQueued is the newest entry s queued.
func lastQueued(t *testing.T, s *side) store.OutboxEntry {
	t.Helper()
	q := s.st.outbox()
	require.NotEmpty(t, q)
	return q[len(q)-1]
}

// updateState is the state a queued file update carries.
func updateState(t *testing.T, q store.OutboxEntry) pb.FileState {
	t.Helper()
	require.Equal(t, store.KindFileUpdate, q.Kind)
	var u pb.FileUpdate
	require.NoError(t, proto.Unmarshal(q.Payload, &u))
	return u.GetState()
}
