package offline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/wire"
)

const (
	// depositBatchBytes bounds the boxes of one deposit request.
	depositBatchBytes = 768 << 10
	// maxRounds bounds the requests of one drain or one deposit pass.
	maxRounds = 1000
	// defaultConnectTimeout bounds connecting to a contact's rendezvous.
	defaultConnectTimeout = 15 * time.Second
)

var (
	errNoToken  = errors.New("no deposit token from this contact yet (it comes the next time both are online)")
	errNoServer = errors.New("no rendezvous known where this contact has a mailbox")
)

// Config is what offline delivery reads of the node's configuration.
type Config struct {
	// Enabled turns offline delivery on (tokens, depositing, draining).
	// Off, the Service only answers Mailbox.
	Enabled bool
	// After is how long an outbox entry for a contact we have no link
	// with waits before it is sealed into the contact's mailbox.
	After time.Duration
	// Poll is how often our mailboxes are drained while connected to
	// their server (also at once on every connection).
	Poll time.Duration
	// StatusInterval is how often we ask servers what became of our
	// deposits.
	StatusInterval time.Duration
	// TokenTTL is the lifetime of the tokens we give our contacts; one
	// is given again once an eighth of it has passed.
	TokenTTL time.Duration
	// Heartbeat is the contact links' heartbeat: a token push that
	// failed is tried again after twice that, backing off.
	Heartbeat time.Duration
	// Rendezvous are our rendezvous servers, where our mailboxes are.
	Rendezvous []peer.AddrInfo
	// ConnectTimeout bounds connecting to a contact's rendezvous that is
	// not one of ours (0: 15s).
	ConnectTimeout time.Duration
}

// Option configures a Service beyond its Config.
type Option func(*Service)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(s *Service) {
		if l != nil {
			s.log = l
		}
	}
}

// WithRegisterer exports natter_mailbox_received_total to reg (default:
// kept but not exported).
func WithRegisterer(reg prometheus.Registerer) Option { return func(s *Service) { s.reg = reg } }

// Service is offline delivery: it gives contacts deposit tokens, deposits
// what they cannot receive now in their mailboxes, drains ours, and
// follows the fate of what it deposited.
type Service struct {
	cfg      Config
	key      crypto.PrivKey
	self     peer.ID
	st       Store
	links    Links
	remote   Remote
	chat     Chat
	policy   Policy
	log      *slog.Logger
	reg      prometheus.Registerer
	received *prometheus.CounterVec
	kickCh   chan struct{}
	// depositing is held (one slot) by whoever deposits: the loop or
	// Flush.
	depositing chan struct{}

	// life owns the loops and the token pushes in flight: each gets its
	// lifetime context, Close waits for them, and after Close nothing
	// starts.
	life *wire.Tracker

	mu       sync.Mutex            // guards the following fields
	pushed   map[peer.ID]time.Time // last token given to each contact
	pushing  map[peer.ID]*tokenPush
	contacts map[peer.ID]*contactState
	servers  map[peer.ID]*serverState
}

// contactState is the deposit state of one contact.
type contactState struct {
	next     time.Time // no deposit attempt before
	bo       *core.Backoff
	server   peer.ID // took our last deposit
	lastErr  string
	tooLarge map[chat.MsgID]bool // refused as too large by server
}

// serverState is our mailbox on one rendezvous.
type serverState struct {
	lastDrain          time.Time
	received, rejected int
	lastErr            string
}

// New makes the Service and, if cfg.Enabled, starts the deposit loop and
// one drain loop per rendezvous server. key is our identity: it signs our
// tokens and seals and opens boxes. Close stops what New started.
func New(cfg Config, key crypto.PrivKey, st Store, links Links, remote Remote, chat Chat, policy Policy, opts ...Option) (*Service, error) {
	if key == nil {
		return nil, errors.New("offline: no identity key")
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("offline: identity: %w", err)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	s := &Service{
		cfg:        cfg,
		key:        key,
		self:       self,
		st:         st,
		links:      links,
		remote:     remote,
		chat:       chat,
		policy:     policy,
		log:        slog.New(slog.DiscardHandler),
		kickCh:     make(chan struct{}, 1),
		depositing: make(chan struct{}, 1),
		pushed:     map[peer.ID]time.Time{},
		pushing:    map[peer.ID]*tokenPush{},
		contacts:   map[peer.ID]*contactState{},
		servers:    map[peer.ID]*serverState{},
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "natter", Subsystem: "mailbox", Name: "received_total",
			Help: "Boxes taken from our mailboxes, by result (stored; refused: unopenable, moved, not_contact, invalid).",
		}, []string{"result"}),
	}
	for _, o := range opts {
		o(s)
	}
	s.life = wire.NewTracker()
	if !cfg.Enabled {
		return s, nil
	}
	if s.reg != nil {
		s.received = wire.SharedCounterVec(s.reg, s.received)
	}
	s.goRun(s.depositLoop)
	for _, ai := range cfg.Rendezvous {
		id := ai.ID
		s.goRun(func(ctx context.Context) { s.serverLoop(ctx, id) })
	}
	return s, nil
}

// Close stops the loops and the token pushes in flight and waits for
// them. It is idempotent.
func (s *Service) Close() error {
	s.life.Close()
	return nil
}

// goRun starts f as a goroutine the Service owns (see life).
func (s *Service) goRun(f func(ctx context.Context)) { s.life.Go(f) }

// HandleLink follows the links with contacts: a link that comes up gets
// the contact a fresh token if it is due; every heartbeat over a live link
// tries again one that failed (the contact had not accepted us yet, or
// the push was lost). It returns at once.
func (s *Service) HandleLink(ev core.LinkEvent) {
	switch ev.Change {
	case core.LinkUp:
		s.goRun(func(ctx context.Context) { s.PushToken(ctx, ev.Peer) })
	case core.LinkPinged:
		if s.tokenDue(ev.Peer) {
			s.goRun(func(ctx context.Context) { s.PushToken(ctx, ev.Peer) })
		}
	}
}

func (s *Service) kick() {
	select {
	case s.kickCh <- struct{}{}:
	default:
	}
}

// contact is p's deposit state; callers hold s.mu.
func (s *Service) contact(p peer.ID) *contactState {
	c, ok := s.contacts[p]
	if !ok {
		c = &contactState{bo: core.NewBackoff(5*time.Second, 10*time.Minute), tooLarge: map[chat.MsgID]bool{}}
		s.contacts[p] = c
	}
	return c
}

// server is our mailbox's state on p; callers hold s.mu.
func (s *Service) server(p peer.ID) *serverState {
	st, ok := s.servers[p]
	if !ok {
		st = &serverState{}
		s.servers[p] = st
	}
	return st
}

// isOurs reports whether p is one of our rendezvous servers.
func (s *Service) isOurs(p peer.ID) bool {
	for _, ai := range s.cfg.Rendezvous {
		if ai.ID == p {
			return true
		}
	}
	return false
}
