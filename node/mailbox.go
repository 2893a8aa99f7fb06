package node

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	nodechat "github.com/natterim/natter/node/chat"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/mailbox"
	"github.com/natterim/natter/protocols/mailbox/seal"
	"github.com/natterim/natter/protocols/wire"
)

// Offline delivery through a sealed mailbox on the rendezvous
// (protocols/mailbox, protocols/mailbox/seal):
//
//	outbox entry for contact C, no link to C for mailbox.after
//	   └─> seal to C's key (signed by us inside) ─> DEPOSIT on C's rendezvous,
//	       with the deposit token C gave us ─> message "stored"
//	C connects to its rendezvous ─> FETCH ─> open, verify (signature, an
//	   accepted contact) ─> the normal chat receive path (de-duplicated by
//	   message id) ─> queue a DELIVERED receipt ─> DELETE
//	receipt reaches us (direct, or through our own mailbox) ─> "delivered" (via mailbox)
//
// The outbox entry stays in the outbox until the contact has the message
// (a stream ack or its DELIVERED receipt): whichever way comes first wins,
// and the contact's node stores the message once. We ask the rendezvous
// what became of our deposits (STATUS) when we connect and every
// mailbox.status_interval: a box that expired before the contact fetched
// it makes its message "failed" (it leaves the outbox); receipts that
// expire are deposited again.
//
// Deposit tokens: while connected to an accepted contact we give it a
// token signed by our key (valid mailbox.token_ttl) naming it, which lets
// it deposit in our mailbox; the rendezvous checks it, so it needs no
// contact list. Removed or blocked contacts get no new token.

const (
	// mailDepositBatchBytes bounds the boxes of one deposit request.
	mailDepositBatchBytes = 768 << 10
	// mailConnectTimeout bounds connecting to a contact's rendezvous.
	mailConnectTimeout = 15 * time.Second
	// mailRequestTimeout bounds one mailbox request.
	mailRequestTimeout = 30 * time.Second
	// mailMaxRounds bounds the requests of one drain or one deposit pass.
	mailMaxRounds = 1000
)

var (
	errNoToken  = errors.New("no deposit token from this contact yet (it comes the next time both are online)")
	errNoServer = errors.New("no rendezvous known where this contact has a mailbox")
)

// mailer is the node's offline-delivery machinery.
type mailer struct {
	n        *Node
	client   *mailbox.Client
	kickCh   chan struct{}
	received *prometheus.CounterVec

	mu        sync.Mutex
	pushed    map[peer.ID]time.Time // last token given to each contact
	pushing   map[peer.ID]*tokenPush
	contacts  map[peer.ID]*mailContact
	servers   map[peer.ID]*mailServer
	lastFates time.Time
}

// mailContact is the deposit state of one contact.
type mailContact struct {
	next     time.Time // no deposit attempt before
	bo       *core.Backoff
	server   peer.ID // took our last deposit
	lastErr  string
	tooLarge map[chat.MsgID]bool // refused as too large by server
}

// mailServer is our mailbox on one rendezvous.
type mailServer struct {
	lastDrain          time.Time
	received, rejected int
	lastErr            string
}

// startMailbox wires offline delivery in (if mailbox.enabled): the token
// service, the deposit loop and one drain loop per rendezvous.
func (n *Node) startMailbox(reg prometheus.Registerer) {
	m := &mailer{
		n:        n,
		client:   mailbox.NewClient(n.host, mailRequestTimeout),
		kickCh:   make(chan struct{}, 1),
		pushed:   map[peer.ID]time.Time{},
		pushing:  map[peer.ID]*tokenPush{},
		contacts: map[peer.ID]*mailContact{},
		servers:  map[peer.ID]*mailServer{},
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "natter", Subsystem: "mailbox", Name: "received_total",
			Help: "Boxes taken from our mailboxes, by result (stored; refused: unopenable, moved, not_contact, invalid).",
		}, []string{"result"}),
	}
	n.mail = m
	if !n.cfg.Mailbox.Enabled {
		return
	}
	m.received = wire.SharedCounterVec(reg, m.received)
	n.svcs = append(n.svcs, mailbox.NewTokenService(n.host, tokenReceiver{n}, mailbox.WithLogger(n.log), mailbox.WithMetrics(n.metrics)))
	n.goRun(m.depositLoop)
	for _, ai := range n.p2p.Rendezvous() {
		n.goRun(func(ctx context.Context) { m.serverLoop(ctx, ai.ID) })
	}
}

func (m *mailer) kick() {
	select {
	case m.kickCh <- struct{}{}:
	default:
	}
}

func (m *mailer) contact(p peer.ID) *mailContact {
	c, ok := m.contacts[p]
	if !ok {
		c = &mailContact{bo: core.NewBackoff(5*time.Second, 10*time.Minute), tooLarge: map[chat.MsgID]bool{}}
		m.contacts[p] = c
	}
	return c
}

func (m *mailer) server(p peer.ID) *mailServer {
	s, ok := m.servers[p]
	if !ok {
		s = &mailServer{}
		m.servers[p] = s
	}
	return s
}

// --- deposit tokens ---

// tokenPush is the state of giving one contact its token.
type tokenPush struct {
	inFlight bool
	retry    time.Time // after a failure, not before
	bo       *core.Backoff
}

// tokenDue reports whether p should be given a token now: none was given
// by this daemon lately, none is on its way, and no failure is recent.
func (m *mailer) tokenDue(p peer.ID) bool {
	if m == nil || !m.n.cfg.Mailbox.Enabled {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	tp := m.pushing[p]
	return time.Since(m.pushed[p]) >= m.n.cfg.Mailbox.TokenTTL/8 && (tp == nil || !tp.inFlight && !time.Now().Before(tp.retry))
}

// retryToken gives p its token if that is due (called on every heartbeat
// of a connected contact: a push refused because the contact had not
// accepted us yet, or lost, is tried again).
func (n *Node) retryToken(p peer.ID) {
	if n.mail.tokenDue(p) {
		n.goRun(func(ctx context.Context) { n.pushToken(ctx, p) })
	}
}

// pushToken gives p a fresh deposit token if it is an accepted contact we
// are connected to and it has not had one from this daemon lately.
func (n *Node) pushToken(ctx context.Context, p peer.ID) {
	m := n.mail
	if !m.tokenDue(p) || !n.isAccepted(ctx, p) {
		return
	}
	m.mu.Lock()
	tp := m.pushing[p]
	if tp == nil {
		tp = &tokenPush{bo: core.NewBackoff(2*n.cfg.Heartbeat, 30*time.Minute)}
		m.pushing[p] = tp
	}
	if tp.inFlight {
		m.mu.Unlock()
		return
	}
	tp.inFlight = true
	m.mu.Unlock()
	err := n.giveToken(ctx, p)
	m.mu.Lock()
	defer m.mu.Unlock()
	tp.inFlight = false
	if err != nil {
		tp.retry = time.Now().Add(tp.bo.Next())
		n.log.Debug("deposit token not delivered", "peer", p.ShortString(), "err", err)
		return
	}
	tp.bo.Reset()
	m.pushed[p] = time.Now()
}

func (n *Node) giveToken(ctx context.Context, p peer.ID) error {
	tok, err := mailbox.IssueToken(n.key, p, time.Now().Add(n.cfg.Mailbox.TokenTTL))
	if err != nil {
		return err
	}
	return mailbox.PushToken(ctx, n.host, p, tok)
}

// tokenReceiver keeps the tokens contacts give us (mailbox.TokenReceiver).
type tokenReceiver struct{ n *Node }

func (r tokenReceiver) Allow(ctx context.Context, p peer.ID) bool { return r.n.isAccepted(ctx, p) }

func (r tokenReceiver) Token(ctx context.Context, from peer.ID, t mailbox.Token) error {
	if err := r.n.store.SaveToken(ctx, from, t.Raw, t.Expires); err != nil {
		return err
	}
	r.n.log.Debug("deposit token received", "peer", from.ShortString(), "expires", t.Expires.Format(time.RFC3339))
	m := r.n.mail
	m.mu.Lock()
	c := m.contact(from)
	c.bo.Reset()
	c.next = time.Time{} // a deposit waiting for a token may go now
	m.mu.Unlock()
	m.kick()
	return nil
}

// --- depositing ---

// depositLoop deposits what is due, and checks the fate of deposits on
// servers that are not ours, for the node's lifetime.
func (m *mailer) depositLoop(ctx context.Context) {
	tick := min(max(m.n.cfg.Mailbox.After/2, 500*time.Millisecond), 30*time.Second)
	t := time.NewTimer(tick)
	defer t.Stop()
	for ctx.Err() == nil {
		m.depositDue(ctx)
		if time.Since(m.lastFates) >= m.n.cfg.Mailbox.StatusInterval {
			m.lastFates = time.Now()
			m.checkFates(ctx, "", false)
		}
		t.Reset(tick)
		select {
		case <-ctx.Done():
			return
		case <-m.kickCh:
		case <-t.C:
		}
	}
}

// depositDue deposits, for every contact we have no link with, the outbox
// entries that waited mailbox.after.
func (m *mailer) depositDue(ctx context.Context) {
	due, err := m.n.store.MailboxDue(ctx)
	if err != nil {
		m.n.log.Warn("mailbox: read outbox", "err", err)
		return
	}
	now := time.Now()
	for p, oldest := range due {
		if ctx.Err() != nil {
			return
		}
		if now.Sub(oldest) < m.n.cfg.Mailbox.After {
			continue
		}
		if path, _ := m.n.pathTo(p); path != control.PathNone {
			continue
		}
		if !m.n.isAccepted(ctx, p) {
			continue
		}
		m.mu.Lock()
		c := m.contact(p)
		wait := now.Before(c.next)
		m.mu.Unlock()
		if wait {
			continue
		}
		err := m.depositFor(ctx, p)
		m.mu.Lock()
		if err != nil {
			c.next = time.Now().Add(c.bo.Next())
			c.lastErr = err.Error()
		} else {
			c.bo.Reset()
			c.next, c.lastErr = time.Time{}, ""
		}
		m.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			m.n.log.Debug("mailbox deposit not done", "peer", p.ShortString(), "err", err)
		}
	}
}

// mailServerInfo is a rendezvous to try for a contact's mailbox.
type mailServerInfo struct {
	ai   peer.AddrInfo
	ours bool
}

// candidates lists the servers where p may have a mailbox, best first:
// the one that took our last deposit, our connected rendezvous servers
// that p's invite names, our other connected ones, then the ones p's
// invite names that we are not linked to.
func (m *mailer) candidates(ctx context.Context, p peer.ID) []mailServerInfo {
	var invited []peer.AddrInfo
	if c, err := m.n.store.ContactByPeer(ctx, p); err == nil {
		invited, _ = peer.AddrInfosFromP2pAddrs(c.Rendezvous...)
	}
	inInvite := func(id peer.ID) bool {
		return slices.ContainsFunc(invited, func(ai peer.AddrInfo) bool { return ai.ID == id })
	}
	var first, second, third, fourth []mailServerInfo
	m.mu.Lock()
	last := m.contact(p).server
	m.mu.Unlock()
	for _, info := range m.n.p2p.Rendezvous() {
		if m.n.host.Network().Connectedness(info.ID) != network.Connected {
			continue
		}
		si := mailServerInfo{ai: info, ours: true}
		switch {
		case info.ID == last:
			first = append(first, si)
		case inInvite(info.ID):
			second = append(second, si)
		default:
			third = append(third, si)
		}
	}
	for _, ai := range invited {
		if m.n.p2p.IsRendezvous(ai.ID) {
			continue
		}
		si := mailServerInfo{ai: ai}
		if ai.ID == last {
			first = append(first, si)
		} else {
			fourth = append(fourth, si)
		}
	}
	return slices.Concat(first, second, third, fourth)
}

// connectServer makes sure we are connected to a server.
func (m *mailer) connectServer(ctx context.Context, ai peer.AddrInfo) error {
	if m.n.host.Network().Connectedness(ai.ID) == network.Connected {
		return nil
	}
	if len(ai.Addrs) == 0 {
		return fmt.Errorf("rendezvous %s: not connected and no address", ai.ID.ShortString())
	}
	m.n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	cctx, cancel := context.WithTimeout(ctx, mailConnectTimeout)
	defer cancel()
	if err := m.n.host.Connect(cctx, ai); err != nil {
		return fmt.Errorf("connect to rendezvous %s: %w", ai.ID.ShortString(), err)
	}
	return nil
}

// depositFor deposits p's due outbox entries in p's mailbox.
func (m *mailer) depositFor(ctx context.Context, p peer.ID) error {
	tok, exp, err := m.n.store.Token(ctx, p)
	if errors.Is(err, store.ErrNotFound) || err == nil && time.Until(exp) < time.Minute {
		return errNoToken
	}
	if err != nil {
		return err
	}
	servers := m.candidates(ctx, p)
	if len(servers) == 0 {
		return errNoServer
	}
	// A server that cannot take the boxes (no mailbox for p there, full,
	// unreachable, no mailbox service) hands over to the next one; a bad
	// token is bad everywhere.
	var lastErr error
	for _, srv := range servers {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := m.connectServer(ctx, srv.ai); err != nil {
			lastErr = err
			continue
		}
		err := m.depositAt(ctx, p, tok, srv)
		if err == nil {
			m.mu.Lock()
			m.contact(p).server = srv.ai.ID
			m.mu.Unlock()
			return nil
		}
		var re *mailbox.RefusedError
		if errors.As(err, &re) && re.Code == mailbox.CodeBadToken {
			// Ours is stale (or the server's clock is off): wait for a
			// fresh one, which comes on our next connection.
			_ = m.n.store.DropToken(ctx, p)
			return err
		}
		lastErr = fmt.Errorf("rendezvous %s: %w", srv.ai.ID.ShortString(), err)
	}
	return lastErr
}

// depositAt seals and deposits p's due entries at one server, in order,
// until none is left or the server refuses something.
func (m *mailer) depositAt(ctx context.Context, p peer.ID, tok []byte, srv mailServerInfo) error {
	addrs := ""
	if !srv.ours {
		parts := make([]string, len(srv.ai.Addrs))
		for i, a := range srv.ai.Addrs {
			parts[i] = a.String()
		}
		addrs = strings.Join(parts, " ")
	}
	for range mailMaxRounds {
		entries, err := m.n.store.Undeposited(ctx, p, time.Now().Add(-m.n.cfg.Mailbox.After), mailbox.MaxItems)
		if err != nil {
			return err
		}
		m.mu.Lock()
		tooLarge := m.contact(p).tooLarge
		entries = slices.DeleteFunc(entries, func(u store.Undeposited) bool { return tooLarge[u.ID] })
		m.mu.Unlock()
		if len(entries) == 0 {
			return nil
		}
		var (
			items []mailbox.Item
			recs  []store.DepositRecord
			ids   []chat.MsgID
			size  int
		)
		for _, e := range entries {
			dep := e.DepositID
			if e.Server != srv.ai.ID {
				if _, err := rand.Read(dep[:]); err != nil {
					return err
				}
			}
			payload, err := proto.Marshal(nodechat.ToWire(e.OutboxEntry))
			if err != nil {
				return err
			}
			box, err := seal.Seal(m.n.key, p, dep, payload, time.Now())
			if err != nil {
				return err
			}
			if len(items) > 0 && size+len(box) > mailDepositBatchBytes {
				break
			}
			size += len(box)
			items = append(items, mailbox.Item{ID: dep, Box: box})
			recs = append(recs, store.DepositRecord{MsgID: e.ID, Peer: p, DepositID: dep, Server: srv.ai.ID, Addrs: addrs})
			ids = append(ids, e.ID)
		}
		if err := m.n.store.BeginDeposits(ctx, recs); err != nil {
			return err
		}
		codes, err := m.client.Deposit(ctx, srv.ai.ID, p, tok, items)
		if err != nil {
			var re *mailbox.RefusedError
			if errors.As(err, &re) {
				// Nothing was stored: forget the ids.
				if _, ferr := m.n.store.Deposited(ctx, p, nil, ids); ferr != nil {
					return ferr
				}
			}
			return err
		}
		var stored, refused []chat.MsgID
		var refusal mailbox.Code
		for i, c := range codes {
			switch c {
			case mailbox.CodeOK, mailbox.CodeDuplicate:
				stored = append(stored, ids[i])
			default:
				refused = append(refused, ids[i])
				if refusal == 0 {
					refusal = c
				}
				if c == mailbox.CodeTooLarge {
					m.mu.Lock()
					m.contact(p).tooLarge[ids[i]] = true
					m.mu.Unlock()
				}
			}
		}
		changes, err := m.n.store.Deposited(ctx, p, stored, refused)
		if err != nil {
			return err
		}
		m.n.chat.ApplyChanges(p, changes)
		if len(stored) > 0 {
			m.n.log.Info("messages stored in a contact's mailbox", "peer", p.ShortString(), "server", srv.ai.ID.ShortString(), "count", len(stored))
		}
		if len(refused) > 0 {
			return fmt.Errorf("rendezvous %s refused %d of %d boxes (%s)", srv.ai.ID.ShortString(), len(refused), len(items), mailbox.CodeName(refusal))
		}
	}
	return nil
}

// --- our own mailboxes ---

// serverLoop drains our mailbox on one rendezvous whenever we connect to
// it and every mailbox.poll while connected, and checks the fate of the
// deposits we made there.
func (m *mailer) serverLoop(ctx context.Context, id peer.ID) {
	var (
		was   bool
		next  time.Time
		timer = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	for ctx.Err() == nil {
		changed := m.n.p2p.Changed(id)
		connected := m.n.host.Network().Connectedness(id) == network.Connected
		if connected && (!was || !time.Now().Before(next)) {
			err := m.drain(ctx, id)
			m.mu.Lock()
			s := m.server(id)
			if err != nil {
				s.lastErr = err.Error()
			} else {
				s.lastErr, s.lastDrain = "", time.Now()
			}
			m.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				m.n.log.Debug("mailbox drain failed", "server", id.ShortString(), "err", err)
			}
			m.checkFates(ctx, id, !was)
			next = time.Now().Add(m.n.cfg.Mailbox.Poll)
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
func (m *mailer) drain(ctx context.Context, server peer.ID) error {
	var after uint64
	for range mailMaxRounds {
		boxes, more, err := m.client.Fetch(ctx, server, after, mailbox.MaxItems)
		if err != nil {
			return err
		}
		if len(boxes) == 0 {
			return nil
		}
		done, rejected := m.take(ctx, server, boxes)
		for len(done)+len(rejected) > 0 {
			d := done[:min(len(done), mailbox.MaxStatusIDs)]
			r := rejected[:min(len(rejected), mailbox.MaxStatusIDs-len(d))]
			if _, err := m.client.Delete(ctx, server, d, r); err != nil {
				return err
			}
			done, rejected = done[len(d):], rejected[len(r):]
		}
		if !more {
			return nil
		}
		after = boxes[len(boxes)-1].Seq
	}
	return fmt.Errorf("mailbox on %s: still not empty after %d fetches", server.ShortString(), mailMaxRounds)
}

// fromSender is what one contact put in our mailbox, in one fetch.
type fromSender struct {
	msgs []*pb.Message
	deps []mailbox.DepositID
}

// take handles fetched boxes: it returns the deposits that can go (stored,
// or carrying nothing to store) and those refused.
func (m *mailer) take(ctx context.Context, server peer.ID, boxes []mailbox.StoredBox) (done, rejected []mailbox.DepositID) {
	n := m.n
	var order []peer.ID
	by := map[peer.ID]*fromSender{}
	reject := func(b mailbox.StoredBox, why string, err error) {
		rejected = append(rejected, b.ID)
		m.received.WithLabelValues(why).Inc()
		n.log.Debug("mailbox box refused", "server", server.ShortString(), "deposit", b.ID.String(), "why", why, "err", err)
	}
	for _, b := range boxes {
		o, err := seal.Open(n.key, b.Box, mailbox.MaxBoxSizeLimit)
		if err != nil {
			reject(b, "unopenable", err)
			continue
		}
		if mailbox.DepositID(o.DepositID) != b.ID {
			reject(b, "moved", errors.New("sealed for another deposit"))
			continue
		}
		if o.Sender == n.host.ID() || !n.isAccepted(ctx, o.Sender) {
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
			if k := msg.GetKind(); k == pb.Kind_TEXT || k == pb.Kind_NUDGE {
				history = append(history, chat.MsgID(msg.GetId()))
			}
		}
		if err := n.chat.Receive(ctx, p, nil, msgs); err != nil {
			n.log.Warn("mailbox: cannot store messages; they stay in the mailbox", "peer", p.ShortString(), "err", err)
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
			if _, err := n.chat.Enqueue(ctx, receipts); err != nil {
				n.log.Warn("mailbox: cannot queue delivered receipts; the messages stay in the mailbox", "peer", p.ShortString(), "err", err)
				continue
			}
		}
		m.received.WithLabelValues("stored").Add(float64(len(msgs)))
		m.mu.Lock()
		m.server(server).received += len(msgs)
		m.mu.Unlock()
		done = append(done, f.deps...)
		n.log.Info("messages taken from our mailbox", "server", server.ShortString(), "peer", p.ShortString(), "count", len(msgs))
	}
	if len(rejected) > 0 {
		m.mu.Lock()
		m.server(server).rejected += len(rejected)
		m.mu.Unlock()
	}
	return done, rejected
}

// --- fates of our deposits ---

// checkFates asks servers what became of our stored deposits not checked
// for mailbox.status_interval (all of them at server if now is true), and
// applies the answers. server "" means every server; servers that are
// ours are only asked while we are connected to them (their loop asks on
// connecting).
func (m *mailer) checkFates(ctx context.Context, server peer.ID, now bool) {
	before := time.Now().Add(-m.n.cfg.Mailbox.StatusInterval)
	if now {
		before = time.Now()
	}
	recs, err := m.n.store.DepositsToCheck(ctx, before, 4*mailbox.MaxStatusIDs)
	if err != nil {
		m.n.log.Warn("mailbox: read deposits", "err", err)
		return
	}
	groups := map[peer.ID][]store.DepositRecord{}
	var servers []peer.ID
	for _, r := range recs {
		if server != "" && r.Server != server {
			continue
		}
		if _, ok := groups[r.Server]; !ok {
			servers = append(servers, r.Server)
		}
		groups[r.Server] = append(groups[r.Server], r)
	}
	for _, s := range servers {
		rs := groups[s]
		if m.n.p2p.IsRendezvous(s) {
			if m.n.host.Network().Connectedness(s) != network.Connected {
				continue
			}
		} else {
			var addrs []ma.Multiaddr
			for _, a := range strings.Fields(rs[0].Addrs) {
				if x, err := ma.NewMultiaddr(a); err == nil {
					addrs = append(addrs, x)
				}
			}
			if err := m.connectServer(ctx, peer.AddrInfo{ID: s, Addrs: addrs}); err != nil {
				m.n.log.Debug("mailbox: cannot ask about deposits", "server", s.ShortString(), "err", err)
				continue
			}
		}
		for chunk := range slices.Chunk(rs, mailbox.MaxStatusIDs) {
			if err := m.applyFates(ctx, s, chunk); err != nil {
				m.n.log.Debug("mailbox: status failed", "server", s.ShortString(), "err", err)
				break
			}
		}
	}
}

func (m *mailer) applyFates(ctx context.Context, server peer.ID, rs []store.DepositRecord) error {
	ids := make([]mailbox.DepositID, len(rs))
	for i, r := range rs {
		ids[i] = mailbox.DepositID(r.DepositID)
	}
	fates, err := m.client.Status(ctx, server, ids)
	if err != nil {
		return err
	}
	us := make([]store.FateUpdate, len(rs))
	for i, r := range rs {
		history := store.IsHistory(r.Kind)
		u := store.FateUpdate{MsgID: r.MsgID, Peer: r.Peer, Action: store.FateWaiting}
		f := fates[i]
		switch {
		case f.State == mailbox.StateDelivered, f.State == mailbox.StateExpired && f.Fetched:
			u.Action = store.FateTaken
		case f.State == mailbox.StateExpired:
			u.Action, u.Reason = store.FateRedeposit, ""
			if history {
				u.Action, u.Reason = store.FateFailed, "expired in the contact's mailbox on the rendezvous before the contact came back for it"
			}
		case f.State == mailbox.StateRejected:
			u.Action = store.FateTaken
			if history {
				u.Action, u.Reason = store.FateFailed, "the contact's node refused it (it could not open or verify it, or no longer takes messages from you)"
			}
		case f.State == mailbox.StateUnknown:
			u.Action = store.FateRedeposit
		}
		us[i] = u
	}
	changes, err := m.n.store.ApplyFates(ctx, us)
	if err != nil {
		return err
	}
	byPeer := map[peer.ID][]store.StatusChange{}
	owner := map[chat.MsgID]peer.ID{}
	for _, r := range rs {
		owner[r.MsgID] = r.Peer
	}
	for _, ch := range changes {
		byPeer[owner[ch.ID]] = append(byPeer[owner[ch.ID]], ch)
	}
	for p, chs := range byPeer {
		m.n.log.Info("stored messages failed", "peer", p.ShortString(), "count", len(chs), "reason", chs[0].Reason)
		m.n.chat.ApplyChanges(p, chs)
	}
	return nil
}
