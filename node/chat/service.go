package chat

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	chatproto "github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/wire"
)

// Option configures a Service.
type Option func(*config)

type config struct {
	log          *slog.Logger
	metrics      *wire.Metrics
	readReceipts bool          // default for contacts without their own setting
	window       int           // batches awaiting their ack at once
	ackTimeout   time.Duration // how long a batch may wait for its ack
	idle         time.Duration // closes a stream that carried nothing this long
	groupMax     int           // messages committed in one transaction
	commit       time.Duration // bounds one group commit
	typingMaxAge time.Duration // drops typing notices not sent in time
	retryMin     time.Duration // backoff after a failed delivery...
	retryMax     time.Duration // ...doubling up to this
	maxWait      time.Duration // bounds a send's wait for delivery
}

func defaults() config {
	return config{
		log:          slog.New(slog.DiscardHandler),
		window:       chatproto.DefaultWindow,
		ackTimeout:   30 * time.Second,
		idle:         2 * time.Minute,
		groupMax:     1024,
		commit:       30 * time.Second,
		typingMaxAge: 3 * time.Second,
		retryMin:     500 * time.Millisecond,
		retryMax:     30 * time.Second,
		maxWait:      10 * time.Minute,
	}
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithMetrics counts the chat streams the receiver resets.
func WithMetrics(m *wire.Metrics) Option { return func(c *config) { c.metrics = m } }

// WithReadReceipts sets whether marking a conversation read tells the
// contact, for contacts without their own setting (default false).
func WithReadReceipts(on bool) Option { return func(c *config) { c.readReceipts = on } }

// WithRetry sets the backoff after a failed delivery: min, doubling up to
// max (default 0.5s .. 30s).
func WithRetry(min, max time.Duration) Option {
	return func(c *config) {
		if min > 0 && max >= min {
			c.retryMin, c.retryMax = min, max
		}
	}
}

// Service is the chat feature: the protocol service (receiving), the
// group committer and one deliverer per open contact (sending).
type Service struct {
	h        host.Host
	outbox   Outbox
	history  History
	contacts Contacts
	links    Links
	policy   Policy
	pub      core.Publisher
	cfg      config
	svc      *chatproto.Service
	enq      chan *enqueueReq

	ctx       context.Context // the lifetime of the goroutines below
	cancel    context.CancelFunc
	wg        sync.WaitGroup // commitLoop and the deliverers
	closeOnce sync.Once

	mu      sync.Mutex // guards the following fields
	closed  bool
	boxes   map[peer.ID]*outbox
	waiters map[chatproto.MsgID][]chan delivery
	kinds   map[pb.Kind]KindHandler
}

// outbox is one contact's deliverer state.
type outbox struct {
	peer   peer.ID
	kick   chan struct{}  // new messages queued
	eph    chan ephemeral // typing notices
	cancel context.CancelFunc
	done   chan struct{} // closed when the deliverer returned

	mu   sync.Mutex                   // guards the following fields
	sent map[chatproto.MsgID]struct{} // written to a stream, not yet acked
}

type ephemeral struct {
	msg *pb.Message
	at  time.Time
}

// delivery is what a waiter for one message learns.
type delivery struct {
	status store.Status
	via    string
	reason string
}

// New starts the chat feature on h: it registers the chat protocol handler
// and starts the group committer. Deliverers start with Open. Close stops
// everything.
func New(h host.Host, ob Outbox, hist History, contacts Contacts, links Links, policy Policy, pub core.Publisher, opts ...Option) *Service {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		h:        h,
		outbox:   ob,
		history:  hist,
		contacts: contacts,
		links:    links,
		policy:   policy,
		pub:      pub,
		cfg:      cfg,
		enq:      make(chan *enqueueReq),
		ctx:      ctx,
		cancel:   cancel,
		boxes:    map[peer.ID]*outbox{},
		waiters:  map[chatproto.MsgID][]chan delivery{},
		kinds:    map[pb.Kind]KindHandler{},
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.commitLoop(ctx)
	}()
	s.svc = chatproto.New(h, receiver{s}, chatproto.WithLogger(cfg.log), chatproto.WithMetrics(cfg.metrics))
	return s
}

// Close stops receiving, stops the committer and the deliverers and waits
// for them. Enqueue fails with core.ErrClosed afterwards. It is idempotent.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		_ = s.svc.Close()
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// Register makes h the handler of the message kinds given (files:
// FILE_OFFER, FILE_UPDATE). Received messages of a kind nobody handles are
// not acknowledged, so that the sender retries them.
func (s *Service) Register(h KindHandler, kinds ...pb.Kind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range kinds {
		s.kinds[k] = h
	}
}

func (s *Service) handler(k pb.Kind) KindHandler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kinds[k]
}

// handlers returns each registered handler once.
func (s *Service) handlers() []KindHandler {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []KindHandler
	for _, h := range s.kinds {
		dup := false
		for _, o := range out {
			dup = dup || o == h
		}
		if !dup {
			out = append(out, h)
		}
	}
	return out
}

// Open starts p's deliverer; it is a no-op if one runs or the service is
// closed.
func (s *Service) Open(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.boxes[p]; ok || s.closed {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	ob := &outbox{
		peer:   p,
		kick:   make(chan struct{}, 1),
		eph:    make(chan ephemeral, 16),
		cancel: cancel,
		done:   make(chan struct{}),
		sent:   map[chatproto.MsgID]struct{}{},
	}
	s.boxes[p] = ob
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(ob.done)
		s.run(ctx, ob)
	}()
}

// Drop stops p's deliverer and waits for it.
func (s *Service) Drop(p peer.ID) {
	s.mu.Lock()
	ob := s.boxes[p]
	delete(s.boxes, p)
	s.mu.Unlock()
	if ob != nil {
		ob.cancel()
		<-ob.done
	}
}

// Wake tells p's deliverer that something was queued for it.
func (s *Service) Wake(p peer.ID) {
	if ob := s.box(p); ob != nil {
		ob.wake()
	}
}

// box returns p's deliverer state, nil if it has none.
func (s *Service) box(p peer.ID) *outbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.boxes[p]
}

func (ob *outbox) wake() {
	select {
	case ob.kick <- struct{}{}:
	default:
	}
}

func (ob *outbox) markSent(ids []chatproto.MsgID) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for _, id := range ids {
		ob.sent[id] = struct{}{}
	}
}

func (ob *outbox) unmark(ids []chatproto.MsgID) {
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

func (ob *outbox) isSent(id chatproto.MsgID) bool {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	_, ok := ob.sent[id]
	return ok
}
