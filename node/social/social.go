package social

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/protocols/wire"
)

// Config is what social reads of the node's configuration. Zero
// durations of the timeouts take their defaults.
type Config struct {
	// MaxPending caps the requests waiting for our answer (pending_in).
	MaxPending int
	// RequestBurst and RequestInterval rate-limit each peer's requests.
	RequestBurst    int
	RequestInterval time.Duration
	// RejectCooldown: a peer we rejected is rejected again at once for
	// this long.
	RejectCooldown time.Duration
	// IdleAway shows us away after this long without activity (0: never).
	IdleAway time.Duration
	// RenewInterval, RecheckInterval, MaxRecordAge: the names.* settings.
	RenewInterval   time.Duration
	RecheckInterval time.Duration
	MaxRecordAge    time.Duration

	// RequestRetry is how often a pending_out request is sent again
	// while the receiver stays connected (default 2 min).
	RequestRetry time.Duration
	// WithdrawTimeout bounds telling a contact we withdrew our request
	// (default 5 s).
	WithdrawTimeout time.Duration
	// WithdrawGiveUp is how long a withdrawal waits for its receiver to
	// become reachable before we stop trying (default 30 days).
	WithdrawGiveUp time.Duration
	// WithdrawCheck is how often withdrawals past WithdrawGiveUp are
	// looked for (default 1 h).
	WithdrawCheck time.Duration
	// OfflinePushTimeout bounds telling contacts we are leaving (default 1 s).
	OfflinePushTimeout time.Duration
	// ServerTimeout bounds one request to a rendezvous server (default 10 s).
	ServerTimeout time.Duration
	// NameRetryFailed is how soon a name a server could not be asked
	// about is tried again (default 1 min).
	NameRetryFailed time.Duration
	// NamesTick is how often the names loop looks for work between kicks
	// (default 30 s).
	NamesTick time.Duration
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RequestRetry, 2*time.Minute)
	def(&c.WithdrawTimeout, 5*time.Second)
	def(&c.WithdrawGiveUp, 30*24*time.Hour)
	def(&c.WithdrawCheck, time.Hour)
	def(&c.OfflinePushTimeout, time.Second)
	def(&c.ServerTimeout, 10*time.Second)
	def(&c.NameRetryFailed, time.Minute)
	def(&c.NamesTick, 30*time.Second)
	def(&c.RequestInterval, time.Minute)
	if c.RequestBurst <= 0 {
		c.RequestBurst = 5
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 100
	}
}

// Option configures a Service beyond its Config.
type Option func(*Service)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithMetrics counts refused requests and failed fetches in m (default:
// not counted).
func WithMetrics(m *wire.Metrics) Option { return func(s *Service) { s.metrics = m } }

// WithClock sets the clock idle-away and name renewals read (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// Service is the social side of the node: contacts, presence, profiles
// and names.
type Service struct {
	cfg     Config
	log     *slog.Logger
	metrics *wire.Metrics
	now     func() time.Time
	store   Store
	net     Network
	links   Links
	tokens  Tokens
	status  StatusSource
	pub     core.Publisher

	// life owns the loops and the pushes in flight: each gets its
	// lifetime context (life.Context), Close waits for them.
	life *wire.Tracker

	mu     sync.Mutex // guards the following fields
	closed bool
	svcs   []io.Closer

	reqs  requests
	wds   withdrawals
	self  selfPresence
	peers contactPeers
	profs profiles
	names nameDir
}

// New makes the Service and starts its loops (idle-away, names). It reads
// our presence from st. The caller must Close it.
func New(ctx context.Context, cfg Config, st Store, net Network, links Links, tokens Tokens, status StatusSource, pub core.Publisher, opts ...Option) (*Service, error) {
	cfg.setDefaults()
	s := &Service{
		cfg: cfg, log: slog.New(slog.DiscardHandler), now: time.Now,
		store: st, net: net, links: links, tokens: tokens, status: status, pub: pub,
	}
	for _, o := range opts {
		o(s)
	}
	s.wds.init()
	s.peers.init()
	s.profs.init()
	s.names.init()
	if err := s.loadPresence(ctx); err != nil {
		return nil, fmt.Errorf("load presence: %w", err)
	}
	ws, err := st.Withdrawals(ctx)
	if err != nil {
		return nil, fmt.Errorf("load withdrawals: %w", err)
	}
	loaded := make([]peer.ID, 0, len(ws))
	for p, at := range ws {
		s.wds.add(p, at)
		loaded = append(loaded, p)
	}
	s.life = wire.NewTracker()
	s.goRun(s.idleLoop)
	s.goRun(s.namesLoop)
	s.goRun(func(ctx context.Context) { s.withdrawLoop(ctx, loaded) })
	return s, nil
}

// goRun starts f as a goroutine owned by s (see life). Once Close has
// begun it starts nothing.
func (s *Service) goRun(f func(ctx context.Context)) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		s.life.Go(f)
	}
}

// Close tells connected contacts we are going (a clean stop, bounded by
// OfflinePushTimeout), stops the loops and the protocol handlers and
// waits for every goroutine it started. It is safe to call more than once.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	svcs := s.svcs
	s.svcs = nil
	s.mu.Unlock()
	s.pushOffline()
	s.life.Close()
	var errs []error
	for _, svc := range svcs {
		errs = append(errs, svc.Close())
	}
	return errors.Join(errs...)
}

// HandleLink applies a change of the link with a contact. It returns
// quickly: the work over the network runs in goroutines of its own.
func (s *Service) HandleLink(ev core.LinkEvent) {
	p := ev.Peer
	if s.wds.pending(p) {
		// A bare link kept for a queued withdrawal: p is no contact.
		s.handleWithdrawLink(ev)
		return
	}
	switch ev.Change {
	case core.LinkUp:
		// A connection opened: tell the contact our presence, or deliver
		// our friend request.
		s.peers.requestSent(p, s.now())
		s.goRun(func(ctx context.Context) {
			s.pushPresence(ctx, p)
			s.sendRequest(ctx, p)
		})
	case core.LinkDown:
		s.peers.reset(p)
		name := ""
		if c, err := s.store.ContactByPeer(s.life.Context(), p); err == nil {
			name = c.Name
		}
		s.pub.Publish(control.Event{Type: control.EventPresence, PeerID: p.String(), Name: name, Presence: control.PresenceOffline})
	case core.LinkPinged:
		s.retryRequest(p)
	}
}

// contactPeers is what social keeps per contact while it has a link: the
// presence it pushed and when we last sent our request.
type contactPeers struct {
	mu sync.Mutex // guards the following fields
	m  map[peer.ID]*contactPeer
}

type contactPeer struct {
	// presence, statusMsg, presenceSet: what the contact last pushed;
	// presenceSent is true once ours reached it over the current
	// connection.
	presence     string
	statusMsg    string
	presenceSet  time.Time
	presenceSent bool
	// lastRequest is when our pending friend request was last sent.
	lastRequest time.Time
}

func (cp *contactPeers) init() { cp.m = map[peer.ID]*contactPeer{} }

// getLocked returns p's entry, made if need be. Callers hold cp.mu.
func (cp *contactPeers) getLocked(p peer.ID) *contactPeer {
	e := cp.m[p]
	if e == nil {
		e = &contactPeer{}
		cp.m[p] = e
	}
	return e
}

func (cp *contactPeers) requestSent(p peer.ID, at time.Time) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.getLocked(p).lastRequest = at
}

// reset forgets what the contact pushed: the link went down.
func (cp *contactPeers) reset(p peer.ID) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if e := cp.m[p]; e != nil {
		e.presence, e.statusMsg, e.presenceSent = "", "", false
	}
}

// forget drops p: it is no contact any more (removed, blocked).
func (cp *contactPeers) forget(p peer.ID) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	delete(cp.m, p)
}

// ids lists the contacts with an entry.
func (cp *contactPeers) ids() []peer.ID {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return slices.Collect(maps.Keys(cp.m))
}
