package offline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/offline"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/mailbox"
	"github.com/natterim/natter/protocols/mailbox/seal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 5 * time.Second

// env is a Service on fakes, as self.
type env struct {
	self   identity
	st     *fakeStore
	links  *fakeLinks
	remote *fakeRemote
	chat   *fakeChat
	policy *fakePolicy
	svc    *offline.Service
}

func baseConfig() offline.Config {
	return offline.Config{
		Enabled:        true,
		After:          time.Hour,
		Poll:           time.Hour,
		StatusInterval: time.Hour,
		TokenTTL:       24 * time.Hour,
		Heartbeat:      time.Millisecond,
	}
}

// newEnv makes the fakes; start makes the Service.
func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{
		self:   newIdentity(t),
		st:     newFakeStore(),
		links:  newFakeLinks(),
		remote: newFakeRemote(),
		chat:   newFakeChat(),
		policy: &fakePolicy{accepted: map[peer.ID]bool{}},
	}
}

func (e *env) start(t *testing.T, cfg offline.Config) {
	t.Helper()
	svc, err := offline.New(cfg, e.self.key, e.st, e.links, e.remote, e.chat, e.policy)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	e.svc = svc
}

// accept makes p an accepted contact that gave us a deposit token, its
// invite naming rdv.
func (e *env) accept(t *testing.T, p peer.ID, name string, rdv ...peer.AddrInfo) {
	t.Helper()
	c := store.Contact{PeerID: p, Name: name, State: store.StateAccepted}
	for _, ai := range rdv {
		addrs, err := peer.AddrInfoToP2pAddrs(&ai)
		require.NoError(t, err)
		c.Rendezvous = append(c.Rendezvous, addrs...)
	}
	e.st.addContact(c)
	e.policy.mu.Lock()
	e.policy.accepted[p] = true
	e.policy.mu.Unlock()
	require.NoError(t, e.st.SaveToken(context.Background(), p, []byte("token from "+name), time.Now().Add(24*time.Hour)))
}

// nudge wakes the deposit loop (a token arriving does) and reports how
// often it has read the outbox.
func (e *env) nudge(t *testing.T, from peer.ID) int {
	t.Helper()
	tok, exp, err := e.st.Token(context.Background(), from)
	require.NoError(t, err)
	require.NoError(t, e.svc.TokenReceiver().Token(context.Background(), from, mailbox.Token{Raw: tok, Expires: exp}))
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	return e.st.dueCalls
}

// passes waits until the deposit loop has gone over the outbox n more
// times.
func (e *env) passes(t *testing.T, from peer.ID, n int) {
	t.Helper()
	start := e.nudge(t, from)
	require.Eventually(t, func() bool { return e.nudge(t, from) >= start+n }, waitFor, time.Millisecond)
}

func nextChanges(t *testing.T, c *fakeChat) changesCall {
	t.Helper()
	select {
	case ch := <-c.changes:
		return ch
	case <-time.After(waitFor):
		t.Fatal("no status changes")
		return changesCall{}
	}
}

// TestDepositAfterWait: an outbox entry is sealed into the contact's
// mailbox only once it waited mailbox.after, only for an accepted contact,
// and only while we have no link with it.
func TestDepositAfterWait(t *testing.T) {
	e := newEnv(t)
	srv := serverAt(t, "4001")
	e.links.setConnected(srv.ID, true)
	bob, carol, dave := newIdentity(t), newIdentity(t), newIdentity(t)
	e.accept(t, bob.id, "bob")
	e.accept(t, carol.id, "carol")
	e.links.paths[carol.id] = core.PathRelayed // linked: the outbox delivers
	require.NoError(t, e.st.SaveToken(context.Background(), dave.id, []byte("token from dave"), time.Now().Add(24*time.Hour)))
	id := e.st.queue(bob.id, "hello", 1, time.Now())
	e.st.queue(carol.id, "linked", 1, time.Now().Add(-2*time.Hour))
	e.st.queue(dave.id, "not a contact", 1, time.Now().Add(-2*time.Hour))
	cfg := baseConfig()
	cfg.Rendezvous = []peer.AddrInfo{srv}
	e.start(t, cfg)
	serverWhenTold := make(chan string, 1)
	e.chat.mu.Lock()
	e.chat.onChanges = func(changesCall) {
		mb, err := e.svc.Mailbox(context.Background())
		if err == nil {
			for _, c := range mb.Contacts {
				if c.PeerID == bob.id.String() {
					serverWhenTold <- c.Server
				}
			}
		}
	}
	e.chat.mu.Unlock()

	e.passes(t, bob.id, 3)
	require.Empty(t, e.remote.depositCalls(), "nothing waited mailbox.after")

	e.st.setQueued(bob.id, time.Now().Add(-2*time.Hour))
	e.nudge(t, bob.id)
	ch := nextChanges(t, e.chat)
	require.Equal(t, bob.id, ch.peer)
	require.Equal(t, []store.StatusChange{{ID: id, Status: store.StatusStored}}, ch.changes)
	require.Equal(t, srv.ID.String(), <-serverWhenTold, "once told stored, the mailbox report names the server")
	e.passes(t, bob.id, 2)
	calls := e.remote.depositCalls()
	require.Len(t, calls, 1, "carol is linked, dave is not a contact")
	require.Equal(t, srv.ID, calls[0].server)
	require.Equal(t, bob.id, calls[0].recipient)
	require.Len(t, calls[0].items, 1)

	// The box is bob's message, sealed to bob by us.
	o, err := seal.Open(bob.key, calls[0].items[0].Box, mailbox.MaxBoxSizeLimit)
	require.NoError(t, err)
	require.Equal(t, e.self.id, o.Sender)
	require.Equal(t, [16]byte(calls[0].items[0].ID), o.DepositID)
	var m pb.Message
	require.NoError(t, proto.Unmarshal(o.Payload, &m))
	require.Equal(t, "hello", m.GetText())

	mb, err := e.svc.Mailbox(context.Background())
	require.NoError(t, err)
	require.True(t, mb.Enabled)
	for _, c := range mb.Contacts {
		if c.PeerID == bob.id.String() {
			require.Equal(t, 1, c.Stored)
			require.Equal(t, srv.ID.String(), c.Server)
			require.Empty(t, c.LastError)
		}
	}
}

// TestDepositCandidates: the servers are tried best first (the last one
// that took a deposit; our connected ones the contact's invite names; our
// other connected ones; the invite's others, connected to for it), and a
// server that has no mailbox for the contact hands over to the next.
func TestDepositCandidates(t *testing.T) {
	e := newEnv(t)
	w, x, y, z := serverAt(t, "4001"), serverAt(t, "4002"), serverAt(t, "4003"), serverAt(t, "4004")
	e.links.setConnected(w.ID, true)
	e.links.setConnected(x.ID, true) // y, ours, is down; z is not ours
	bob := newIdentity(t)
	e.accept(t, bob.id, "bob", z, x)
	e.remote.refuse[x.ID] = mailbox.CodeUnknownRecipient
	e.remote.refuse[w.ID] = mailbox.CodeUnknownRecipient
	first := e.st.queue(bob.id, "one", 1, time.Now().Add(-2*time.Hour))
	cfg := baseConfig()
	cfg.Rendezvous = []peer.AddrInfo{w, x, y}
	e.start(t, cfg)

	ch := nextChanges(t, e.chat)
	require.Equal(t, []store.StatusChange{{ID: first, Status: store.StatusStored}}, ch.changes)
	var order []peer.ID
	for _, c := range e.remote.depositCalls() {
		order = append(order, c.server)
	}
	require.Equal(t, []peer.ID{x.ID, w.ID, z.ID}, order)
	e.links.mu.Lock()
	require.Len(t, e.links.connects, 1)
	require.Equal(t, z.ID, e.links.connects[0].ID)
	require.Equal(t, z.Addrs, e.links.connects[0].Addrs)
	e.links.mu.Unlock()
	e.st.mu.Lock()
	last := e.st.begun[len(e.st.begun)-1]
	require.Equal(t, z.ID, last.Server)
	require.Equal(t, z.Addrs[0].String(), last.Addrs, "a server not ours is remembered with its address")
	require.Empty(t, e.st.begun[0].Addrs)
	e.st.mu.Unlock()

	// The next deposit goes to z first.
	second := e.st.queue(bob.id, "two", 2, time.Now().Add(-2*time.Hour))
	e.nudge(t, bob.id)
	ch = nextChanges(t, e.chat)
	require.Equal(t, []store.StatusChange{{ID: second, Status: store.StatusStored}}, ch.changes)
	calls := e.remote.depositCalls()
	require.Len(t, calls, 4)
	require.Equal(t, z.ID, calls[3].server)
}

// TestDepositBadToken: a bad token is bad everywhere: the pass stops, the
// token is dropped, and nothing is deposited until a new one comes.
func TestDepositBadToken(t *testing.T) {
	e := newEnv(t)
	x, w := serverAt(t, "4001"), serverAt(t, "4002")
	e.links.setConnected(x.ID, true)
	e.links.setConnected(w.ID, true)
	bob := newIdentity(t)
	e.accept(t, bob.id, "bob")
	e.remote.refuse[x.ID] = mailbox.CodeBadToken
	e.st.queue(bob.id, "one", 1, time.Now().Add(-2*time.Hour))
	cfg := baseConfig()
	cfg.Rendezvous = []peer.AddrInfo{x, w}
	e.start(t, cfg)

	require.Eventually(t, func() bool {
		e.st.mu.Lock()
		defer e.st.mu.Unlock()
		return len(e.st.dropped) == 1
	}, waitFor, time.Millisecond)
	calls := e.remote.depositCalls()
	require.Len(t, calls, 1)
	require.Equal(t, x.ID, calls[0].server)
	mb, err := e.svc.Mailbox(context.Background())
	require.NoError(t, err)
	require.Len(t, mb.Contacts, 1)
	require.Contains(t, mb.Contacts[0].LastError, "bad_token")
	require.True(t, mb.Contacts[0].TokenExpires.IsZero(), "the token is gone")
}

// sealedBox is a box sender deposited for to, under id, holding m.
func sealedBox(t *testing.T, sender identity, to peer.ID, id mailbox.DepositID, seq uint64, m *pb.Message) mailbox.StoredBox {
	t.Helper()
	payload, err := proto.Marshal(m)
	require.NoError(t, err)
	b, err := seal.Seal(sender.key, to, id, payload, time.Now())
	require.NoError(t, err)
	return mailbox.StoredBox{ID: id, Box: b, Seq: seq, Deposited: time.Now()}
}

func text(seq uint64, s string) *pb.Message {
	id := chat.NewID()
	return &pb.Message{Id: id[:], Seq: seq, Kind: pb.Kind_TEXT, Text: s, SentAtMs: time.Now().UnixMilli()}
}

func depID(b byte) mailbox.DepositID {
	var d mailbox.DepositID
	d[0], d[15] = b, 0xa5
	return d
}

// TestDrain: our mailbox is drained when we connect to its server: a
// contact's boxes go to chat once, in their order, with a DELIVERED
// receipt queued; boxes we cannot open, moved ones and those from
// strangers are refused; all are deleted, and later polls find nothing
// more to hand over.
func TestDrain(t *testing.T) {
	e := newEnv(t)
	srv := serverAt(t, "4001")
	carol, mallory := newIdentity(t), newIdentity(t)
	e.accept(t, carol.id, "carol")
	later, earlier := text(2, "second"), text(1, "first")
	garbage := make([]byte, 200)
	moved := sealedBox(t, carol, e.self.id, depID(9), 5, text(3, "moved"))
	moved.ID = depID(5)
	e.remote.boxes[srv.ID] = []mailbox.StoredBox{
		sealedBox(t, carol, e.self.id, depID(1), 1, later),
		sealedBox(t, carol, e.self.id, depID(2), 2, earlier),
		sealedBox(t, mallory, e.self.id, depID(3), 3, text(1, "let me in")),
		{ID: depID(4), Box: garbage, Seq: 4},
		moved,
	}
	cfg := baseConfig()
	cfg.Rendezvous = []peer.AddrInfo{srv}
	cfg.Poll = 5 * time.Millisecond
	e.start(t, cfg)
	e.links.setConnected(srv.ID, true)

	require.Eventually(t, func() bool {
		e.remote.mu.Lock()
		defer e.remote.mu.Unlock()
		return e.remote.fetches >= 4 // connected, then polls
	}, waitFor, time.Millisecond)
	got := e.chat.receivedCalls()
	require.Len(t, got, 1, "handed to chat exactly once")
	require.Equal(t, carol.id, got[0].from)
	require.Nil(t, got[0].conn)
	require.Len(t, got[0].msgs, 2)
	require.Equal(t, "first", got[0].msgs[0].GetText())
	require.Equal(t, "second", got[0].msgs[1].GetText())

	e.chat.mu.Lock()
	require.Len(t, e.chat.enqueued, 1)
	r := e.chat.enqueued[0]
	e.chat.mu.Unlock()
	require.Equal(t, carol.id, r.Peer)
	require.Equal(t, store.KindDelivered, r.Kind)
	require.Equal(t, []chat.MsgID{chat.MsgID(earlier.GetId()), chat.MsgID(later.GetId())}, r.Refs)

	e.remote.mu.Lock()
	require.Equal(t, [][]mailbox.DepositID{{depID(1), depID(2)}, {depID(3), depID(4), depID(5)}}, e.remote.deleted[srv.ID])
	require.Empty(t, e.remote.boxes[srv.ID])
	e.remote.mu.Unlock()

	mb, err := e.svc.Mailbox(context.Background())
	require.NoError(t, err)
	require.Len(t, mb.Servers, 1)
	require.Equal(t, srv.ID.String(), mb.Servers[0].PeerID)
	require.Equal(t, 2, mb.Servers[0].Received)
	require.Equal(t, 3, mb.Servers[0].Rejected)
	require.False(t, mb.Servers[0].LastDrain.IsZero())
	require.Empty(t, mb.Servers[0].LastError)
}

// TestFates: on connecting to a server we ask what became of our deposits
// there and apply it; the messages that failed go to chat as changes.
func TestFates(t *testing.T) {
	e := newEnv(t)
	srv := serverAt(t, "4001")
	bob := newIdentity(t)
	e.accept(t, bob.id, "bob")
	type rec struct {
		kind string
		fate mailbox.Fate
		want int
	}
	recs := []rec{
		{store.KindText, mailbox.Fate{State: mailbox.StateExpired}, store.FateFailed},
		{store.KindDelivered, mailbox.Fate{State: mailbox.StateExpired}, store.FateRedeposit},
		{store.KindText, mailbox.Fate{State: mailbox.StateExpired, Fetched: true}, store.FateTaken},
		{store.KindText, mailbox.Fate{State: mailbox.StateDelivered}, store.FateTaken},
		{store.KindText, mailbox.Fate{State: mailbox.StateRejected}, store.FateFailed},
		{store.KindDelivered, mailbox.Fate{State: mailbox.StateRejected}, store.FateTaken},
		{store.KindText, mailbox.Fate{State: mailbox.StateUnknown}, store.FateRedeposit},
		{store.KindText, mailbox.Fate{State: mailbox.StatePending}, store.FateWaiting},
	}
	var ids []chat.MsgID
	for i, r := range recs {
		id := chat.NewID()
		ids = append(ids, id)
		d := depID(byte(i + 1))
		e.st.toCheck = append(e.st.toCheck, store.DepositRecord{MsgID: id, Peer: bob.id, DepositID: d, Server: srv.ID, Kind: r.kind})
		e.remote.fates[d] = r.fate
	}
	cfg := baseConfig()
	cfg.Rendezvous = []peer.AddrInfo{srv}
	e.links.setConnected(srv.ID, true)
	e.start(t, cfg)

	ch := nextChanges(t, e.chat)
	require.Equal(t, bob.id, ch.peer)
	require.Len(t, ch.changes, 2)
	require.Equal(t, ids[0], ch.changes[0].ID)
	require.Equal(t, store.StatusFailed, ch.changes[0].Status)
	require.Contains(t, ch.changes[0].Reason, "expired")
	require.Equal(t, ids[4], ch.changes[1].ID)
	require.Contains(t, ch.changes[1].Reason, "refused")
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	require.GreaterOrEqual(t, len(e.st.fates), len(recs))
	for i, r := range recs {
		require.Equal(t, ids[i], e.st.fates[i].MsgID)
		require.Equal(t, r.want, e.st.fates[i].Action, "deposit %d", i)
	}
}

// TestFatesElsewhere: deposits on a server that is not ours are asked
// about there, connecting to it at the address we kept.
func TestFatesElsewhere(t *testing.T) {
	e := newEnv(t)
	z := serverAt(t, "4009")
	bob := newIdentity(t)
	e.accept(t, bob.id, "bob")
	id := chat.NewID()
	e.st.toCheck = []store.DepositRecord{{MsgID: id, Peer: bob.id, DepositID: depID(1), Server: z.ID, Kind: store.KindText, Addrs: z.Addrs[0].String()}}
	e.remote.fates[depID(1)] = mailbox.Fate{State: mailbox.StateExpired}
	e.start(t, baseConfig())

	ch := nextChanges(t, e.chat)
	require.Equal(t, id, ch.changes[0].ID)
	e.links.mu.Lock()
	defer e.links.mu.Unlock()
	require.Equal(t, []peer.AddrInfo{{ID: z.ID, Addrs: []ma.Multiaddr{z.Addrs[0]}}}, e.links.connects)
}

func nextPush(t *testing.T, r *fakeRemote) []byte {
	t.Helper()
	select {
	case tok := <-r.pushes:
		return tok
	case <-time.After(waitFor):
		t.Fatal("no token push")
		return nil
	}
}

// TestTokenPush: a link that comes up gets the contact a token naming it;
// a push that failed is tried again on a later heartbeat; once given, no
// other is pushed until an eighth of its life has passed.
func TestTokenPush(t *testing.T) {
	e := newEnv(t)
	bob := newIdentity(t)
	e.accept(t, bob.id, "bob")
	e.remote.setPushErr(errPush)
	cfg := baseConfig()
	e.start(t, cfg)

	e.svc.HandleLink(core.LinkEvent{Peer: bob.id, Change: core.LinkUp, Path: core.PathRelayed})
	tok := nextPush(t, e.remote)
	parsed, err := mailbox.VerifyToken(tok, e.self.id, bob.id, time.Now())
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(cfg.TokenTTL), parsed.Expires, time.Minute)

	e.remote.setPushErr(nil)
	var retried []byte
	require.Eventually(t, func() bool {
		e.svc.HandleLink(core.LinkEvent{Peer: bob.id, Change: core.LinkPinged, Path: core.PathRelayed})
		select {
		case retried = <-e.remote.pushes:
			return true
		default:
			return false
		}
	}, waitFor, time.Millisecond, "the heartbeat retries a failed push")
	_, err = mailbox.VerifyToken(retried, e.self.id, bob.id, time.Now())
	require.NoError(t, err)

	e.svc.HandleLink(core.LinkEvent{Peer: bob.id, Change: core.LinkPinged, Path: core.PathRelayed})
	e.svc.HandleLink(core.LinkEvent{Peer: bob.id, Change: core.LinkUp, Path: core.PathDirect})
	e.svc.PushToken(context.Background(), bob.id)
	require.NoError(t, e.svc.Close())
	require.Empty(t, e.remote.pushes, "bob has a fresh token")
}

// TestTokensOnlyForContacts: strangers get no token and may not give us
// one; what a contact gives us is kept.
func TestTokensOnlyForContacts(t *testing.T) {
	e := newEnv(t)
	bob, mallory := newIdentity(t), newIdentity(t)
	e.accept(t, bob.id, "bob")
	e.start(t, baseConfig())

	e.svc.HandleLink(core.LinkEvent{Peer: mallory.id, Change: core.LinkUp, Path: core.PathDirect})
	e.svc.PushToken(context.Background(), mallory.id)
	r := e.svc.TokenReceiver()
	require.False(t, r.Allow(context.Background(), mallory.id))
	require.True(t, r.Allow(context.Background(), bob.id))
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	require.NoError(t, r.Token(context.Background(), bob.id, mailbox.Token{Raw: []byte("fresh"), Expires: exp}))
	tok, gotExp, err := e.st.Token(context.Background(), bob.id)
	require.NoError(t, err)
	require.Equal(t, []byte("fresh"), tok)
	require.True(t, exp.Equal(gotExp))
	require.NoError(t, e.svc.Close())
	require.Empty(t, e.remote.pushes)
}

// TestDisabled: off, the Service pushes no token, runs no loop, and
// reports itself disabled with its servers and contacts.
func TestDisabled(t *testing.T) {
	e := newEnv(t)
	srv := serverAt(t, "4001")
	bob := newIdentity(t)
	e.accept(t, bob.id, "bob")
	e.st.queue(bob.id, "hello", 1, time.Now().Add(-2*time.Hour))
	cfg := baseConfig()
	cfg.Enabled = false
	cfg.Rendezvous = []peer.AddrInfo{srv}
	e.start(t, cfg)
	e.links.setConnected(srv.ID, true)

	e.svc.HandleLink(core.LinkEvent{Peer: bob.id, Change: core.LinkUp, Path: core.PathDirect})
	e.svc.PushToken(context.Background(), bob.id)
	mb, err := e.svc.Mailbox(context.Background())
	require.NoError(t, err)
	require.False(t, mb.Enabled)
	require.Len(t, mb.Servers, 1)
	require.Len(t, mb.Contacts, 1)
	require.False(t, mb.Contacts[0].TokenExpires.IsZero())
	require.NoError(t, e.svc.Close())
	require.NoError(t, e.svc.Close(), "Close is idempotent")
	require.Empty(t, e.remote.pushes)
	require.Empty(t, e.remote.depositCalls())
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	require.Zero(t, e.st.dueCalls)
}

// TestNewNeedsAKey: without our identity there is nothing to seal or sign
// with.
func TestNewNeedsAKey(t *testing.T) {
	e := newEnv(t)
	_, err := offline.New(baseConfig(), nil, e.st, e.links, e.remote, e.chat, e.policy)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "identity"))
}

// TestFlush: on a clean stop, what is queued for accepted contacts we have
// no link with is deposited at once, mailbox.after or not; linked
// contacts and strangers are left alone.
func TestFlush(t *testing.T) {
	e := newEnv(t)
	srv := serverAt(t, "4001")
	e.links.setConnected(srv.ID, true)
	bob, carol, dave := newIdentity(t), newIdentity(t), newIdentity(t)
	e.accept(t, bob.id, "bob")
	e.accept(t, carol.id, "carol")
	e.links.paths[carol.id] = core.PathDirect // linked: the chat stream delivers
	require.NoError(t, e.st.SaveToken(context.Background(), dave.id, []byte("token from dave"), time.Now().Add(24*time.Hour)))
	first := e.st.queue(bob.id, "sent just now", 1, time.Now())
	second := e.st.queue(bob.id, "and again", 2, time.Now())
	e.st.queue(carol.id, "linked", 1, time.Now())
	e.st.queue(dave.id, "not a contact", 1, time.Now())
	cfg := baseConfig() // After: an hour, so only Flush deposits
	cfg.Rendezvous = []peer.AddrInfo{srv}
	e.start(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	done, err := e.svc.Flush(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, done)
	calls := e.remote.depositCalls()
	require.Len(t, calls, 1, "carol is linked, dave is not a contact")
	require.Equal(t, bob.id, calls[0].recipient)
	require.Len(t, calls[0].items, 2)
	ch := nextChanges(t, e.chat)
	require.Equal(t, []store.StatusChange{{ID: first, Status: store.StatusStored}, {ID: second, Status: store.StatusStored}}, ch.changes)

	// Nothing is left for bob: a second flush deposits nothing.
	done, err = e.svc.Flush(ctx)
	require.NoError(t, err)
	require.Zero(t, done)
	require.Len(t, e.remote.depositCalls(), 1)
}

// TestFlushBounded: a server that does not answer does not hold the stop
// up: Flush returns when its context ends, and says so.
func TestFlushBounded(t *testing.T) {
	e := newEnv(t)
	srv := serverAt(t, "4001")
	e.links.setConnected(srv.ID, true)
	bob := newIdentity(t)
	e.accept(t, bob.id, "bob")
	e.st.queue(bob.id, "hello", 1, time.Now())
	e.remote.hang = true
	cfg := baseConfig()
	cfg.Rendezvous = []peer.AddrInfo{srv}
	e.start(t, cfg)

	const bound = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	done, err := e.svc.Flush(ctx)
	took := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Zero(t, done)
	require.Less(t, took, bound+time.Second, "Flush keeps to its bound")
	require.Len(t, e.remote.depositCalls(), 1)
}

// TestFlushDisabled: with offline delivery off, Flush does nothing.
func TestFlushDisabled(t *testing.T) {
	e := newEnv(t)
	bob := newIdentity(t)
	e.accept(t, bob.id, "bob")
	e.st.queue(bob.id, "hello", 1, time.Now())
	cfg := baseConfig()
	cfg.Enabled = false
	e.start(t, cfg)
	done, err := e.svc.Flush(context.Background())
	require.NoError(t, err)
	require.Zero(t, done)
	require.Empty(t, e.remote.depositCalls())
}

// TestDrainReceiptsFileOffers: a file offer taken from the mailbox is
// history on the sender's side, so it gets a DELIVERED receipt like a
// text (the offer would stay "stored" there otherwise); a file update is
// not history and gets none.
func TestDrainReceiptsFileOffers(t *testing.T) {
	e := newEnv(t)
	srv := serverAt(t, "4001")
	carol := newIdentity(t)
	e.accept(t, carol.id, "carol")
	offerID, updateID := chat.NewID(), chat.NewID()
	offer := &pb.Message{Id: offerID[:], Seq: 1, Kind: pb.Kind_FILE_OFFER, SentAtMs: time.Now().UnixMilli(),
		FileOffer: &pb.FileOffer{Name: "photo.jpg", Size: 3}}
	update := &pb.Message{Id: updateID[:], Seq: 2, Kind: pb.Kind_FILE_UPDATE, SentAtMs: time.Now().UnixMilli(),
		FileUpdate: &pb.FileUpdate{Transfer: offerID[:]}}
	hello := text(3, "and a text")
	e.remote.boxes[srv.ID] = []mailbox.StoredBox{
		sealedBox(t, carol, e.self.id, depID(1), 1, offer),
		sealedBox(t, carol, e.self.id, depID(2), 2, update),
		sealedBox(t, carol, e.self.id, depID(3), 3, hello),
	}
	cfg := baseConfig()
	cfg.Rendezvous = []peer.AddrInfo{srv}
	e.start(t, cfg)
	e.links.setConnected(srv.ID, true)

	require.Eventually(t, func() bool {
		e.remote.mu.Lock()
		defer e.remote.mu.Unlock()
		return len(e.remote.deleted[srv.ID]) > 0
	}, waitFor, time.Millisecond)
	e.chat.mu.Lock()
	defer e.chat.mu.Unlock()
	require.Len(t, e.chat.enqueued, 1)
	r := e.chat.enqueued[0]
	require.Equal(t, store.KindDelivered, r.Kind)
	require.Equal(t, []chat.MsgID{offerID, chat.MsgID(hello.GetId())}, r.Refs)
}
