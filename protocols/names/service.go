package names

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/protocols/names/pb"
	"github.com/natterim/natter/protocols/wire"
)

// ID is the protocol ID.
const ID = protocol.ID("/natter/names/1.0.0")

// ServiceName is the resource-manager service of name-directory streams.
const ServiceName = "natter.names"

const (
	// MaxFrameSize bounds one request or response: a record plus a name
	// and a reason.
	MaxFrameSize = MaxRecordSize + 512
	// MaxReasonBytes is the longest reason a response may carry.
	MaxReasonBytes = 200
)

// Limits bound what a Service accepts. Zero values are not defaults:
// start from DefaultLimits and change fields.
type Limits struct {
	// InactiveRelease: a name not renewed for this long is released
	// (lookups stop finding it, anyone may claim it).
	InactiveRelease time.Duration
	// MaxPerPeer is the most names one peer may hold.
	MaxPerPeer int
	// MaxClockSkew: a REGISTER or RELEASE record must have been signed
	// within this much of the server's clock, either way (EXPIRED
	// otherwise), so a record cannot be replayed later.
	MaxClockSkew time.Duration
	// Rate and Burst limit requests per peer (per second, bucket size);
	// the excess is answered RATE_LIMITED.
	Rate  float64
	Burst int
	// Timeout bounds one exchange.
	Timeout time.Duration
	// SweepInterval is how often released (inactive) names are deleted.
	// They are never served or counted in between.
	SweepInterval time.Duration
}

// DefaultLimits returns the limits a Service starts with: names released
// after 30 days without renewal, 5 names per peer, 10 minutes of clock
// skew, 20 requests at once then one every 2 s per peer.
func DefaultLimits() Limits {
	return Limits{
		InactiveRelease: 30 * 24 * time.Hour,
		MaxPerPeer:      5,
		MaxClockSkew:    10 * time.Minute,
		Rate:            0.5,
		Burst:           20,
		Timeout:         10 * time.Second,
		SweepInterval:   time.Hour,
	}
}

func (l Limits) validate() error {
	switch {
	case l.InactiveRelease <= 0:
		return errors.New("InactiveRelease must be positive")
	case l.MaxPerPeer < 1:
		return errors.New("MaxPerPeer must be at least 1")
	case l.MaxClockSkew <= 0:
		return errors.New("MaxClockSkew must be positive")
	case l.Rate <= 0 || l.Burst < 1:
		return errors.New("Rate and Burst must be positive")
	case l.Timeout <= 0 || l.SweepInterval <= 0:
		return errors.New("Timeout and SweepInterval must be positive")
	}
	return nil
}

// config is what the options set; New starts it from the defaults
// (DefaultLimits, a MemRegistry, no metrics, the real clock).
type config struct {
	reg     Registry
	limits  Limits
	log     *slog.Logger
	wm      *wire.Metrics
	promReg prometheus.Registerer
	now     func() time.Time
}

// Option configures a Service.
type Option func(*config)

// WithRegistry sets where names are kept (default: a MemRegistry).
func WithRegistry(r Registry) Option { return func(c *config) { c.reg = r } }

// WithLimits replaces DefaultLimits.
func WithLimits(l Limits) Option { return func(c *config) { c.limits = l } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithMetrics counts failed streams (label protocol = "names").
func WithMetrics(m *wire.Metrics) Option { return func(c *config) { c.wm = m } }

// WithRegisterer exports natter_names_requests_total{op,status} to reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(c *config) { c.promReg = reg } }

// WithClock replaces time.Now for record freshness and inactivity (stream
// deadlines always use the real clock).
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// Service is the server side of the name directory.
type Service struct {
	config
	h host.Host

	requests *prometheus.CounterVec
	lim      *wire.PeerLimiter
	// mu serialises every change, so that a REGISTER's checks and its
	// write see the same state.
	mu sync.Mutex

	t         *wire.Tracker
	closeOnce sync.Once
}

// New registers the name-directory handler on h and starts sweeping
// released names.
func New(h host.Host, opts ...Option) (*Service, error) {
	s := &Service{
		config: config{limits: DefaultLimits(), log: slog.New(slog.DiscardHandler), now: time.Now},
		h:      h,
	}
	for _, o := range opts {
		o(&s.config)
	}
	if err := s.limits.validate(); err != nil {
		return nil, fmt.Errorf("names limits: %w", err)
	}
	if s.reg == nil {
		s.reg = NewMemRegistry()
	}
	s.requests = newRequestCounter(s.promReg)
	s.lim = wire.NewPeerLimiter(s.limits.Rate, s.limits.Burst)
	s.t = wire.NewTracker()
	s.t.Go(s.sweep)
	h.SetStreamHandler(ID, s.t.Handler(s.handle))
	return s, nil
}

// newRequestCounter creates natter_names_requests_total, sharing the one
// already registered in reg if there is one.
func newRequestCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "natter",
		Name:      "names_requests_total",
		Help:      "Name-directory requests answered, by op (register, release, lookup) and status (ok, not_found, taken, invalid_name, bad_record, wrong_peer, expired, outdated, too_many_names, rate_limited, unavailable).",
	}, []string{"op", "status"})
	return wire.SharedCounterVec(reg, cv)
}

// Close removes the handler, resets the streams being served, stops the
// sweeper and waits for all of them. It is idempotent.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.h.RemoveStreamHandler(ID)
		s.t.Close()
	})
	return nil
}

// Requests returns how many requests of op ("register", "release",
// "lookup") were answered with status ("ok", "taken", ...; see
// StatusName).
func (s *Service) Requests(op, status string) float64 {
	return wire.CounterValue(s.requests, op, status)
}

// NamesOf lists the names p holds (for the online list).
func (s *Service) NamesOf(ctx context.Context, p peer.ID) ([]string, error) {
	return s.reg.NamesOf(ctx, p, s.activeSince())
}

func (s *Service) activeSince() time.Time { return s.now().Add(-s.limits.InactiveRelease) }

func (s *Service) sweep(ctx context.Context) {
	t := time.NewTicker(s.limits.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		n, err := s.reg.DeleteInactive(ctx, s.activeSince())
		s.mu.Unlock()
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("names: dropping inactive names failed", "err", err)
		case n > 0:
			s.log.Info("names released after inactivity", "count", n, "inactive_release", s.limits.InactiveRelease)
		}
	}
}

// answer is a response and, for refusals, why (for the log).
type answer struct {
	resp *pb.Response
	err  error
}

func refuse(st pb.Status, reason string, args ...any) answer {
	msg := fmt.Sprintf(reason, args...)
	if len(msg) > MaxReasonBytes {
		msg = strings.ToValidUTF8(msg[:MaxReasonBytes], "")
	}
	return answer{resp: &pb.Response{Status: st, Reason: msg}, err: errors.New(msg)}
}

func (s *Service) handle(st network.Stream) {
	from := st.Conn().RemotePeer()
	var op pb.Op
	err := wire.Serve(st, wire.ServeOptions{Service: ServiceName, Memory: 2 * MaxFrameSize, Timeout: s.limits.Timeout}, func(st network.Stream) error {
		var req pb.Request
		if err := wire.ReadMsg(st, &req, MaxFrameSize); err != nil {
			return err
		}
		op = req.GetOp()
		if op != pb.Op_REGISTER && op != pb.Op_RELEASE && op != pb.Op_LOOKUP {
			return fmt.Errorf("unknown op %d: %w", op, wire.ErrInvalid)
		}
		var a answer
		if !s.lim.Allow(from) {
			a = refuse(pb.Status_RATE_LIMITED, "too many requests; try again later")
		} else {
			ctx, cancel := context.WithTimeout(s.t.Context(), s.limits.Timeout)
			a = s.serve(ctx, from, &req)
			cancel()
		}
		s.requests.WithLabelValues(OpName(op), StatusName(a.resp.GetStatus())).Inc()
		if a.err != nil {
			s.log.Debug("names request refused", "peer", from.ShortString(), "op", OpName(op), "status", StatusName(a.resp.GetStatus()), "reason", a.err)
		}
		// A refusal is answered, and the stream closed cleanly, so that
		// the client learns why.
		return wire.WriteMsg(st, a.resp, MaxFrameSize)
	})
	if err != nil {
		s.wm.StreamError("names", err)
		s.log.Debug("names stream ended", "peer", from.ShortString(), "op", OpName(op), "err", err)
	}
}

func (s *Service) serve(ctx context.Context, from peer.ID, req *pb.Request) answer {
	if req.GetOp() == pb.Op_LOOKUP {
		return s.lookup(ctx, req.GetName())
	}
	rec, err := Open(req.GetRecord())
	if errors.Is(err, ErrInvalidName) {
		return refuse(pb.Status_INVALID_NAME, "%v", err)
	}
	if err != nil {
		return refuse(pb.Status_BAD_RECORD, "%v", err)
	}
	if rec.Op != req.GetOp() {
		return refuse(pb.Status_BAD_RECORD, "the record claims %s, the request asks %s", OpName(rec.Op), OpName(req.GetOp()))
	}
	if rec.Peer != from {
		return refuse(pb.Status_WRONG_PEER, "the record is for %s, not for the peer that sent it", rec.Peer.ShortString())
	}
	now := s.now()
	signed := time.UnixMilli(int64(rec.Seq))
	if d := now.Sub(signed); d > s.limits.MaxClockSkew || -d > s.limits.MaxClockSkew {
		return refuse(pb.Status_EXPIRED, "record signed at %s, server time %s: more than %s apart (check the clock)",
			signed.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), s.limits.MaxClockSkew)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec.Op == OpRegister {
		return s.register(ctx, rec, req.GetRecord(), now)
	}
	return s.release(ctx, rec)
}

// current returns the active entry under skel; an inactive one is
// deleted (released) and reported as not found.
func (s *Service) current(ctx context.Context, skel string) (Entry, error) {
	e, err := s.reg.Get(ctx, skel)
	if err != nil {
		return Entry{}, err
	}
	if e.Renewed.Before(s.activeSince()) {
		if err := s.reg.Delete(ctx, skel); err != nil {
			return Entry{}, err
		}
		s.log.Info("name released after inactivity", "name", e.Name, "peer", e.Peer.ShortString())
		return Entry{}, ErrNotFound
	}
	return e, nil
}

func unavailable(err error) answer {
	a := refuse(pb.Status_UNAVAILABLE, "server storage failed; try again later")
	a.err = err
	return a
}

func (s *Service) register(ctx context.Context, rec Record, raw []byte, now time.Time) answer {
	skel := Skeleton(rec.Name)
	registered := now
	e, err := s.current(ctx, skel)
	switch {
	case errors.Is(err, ErrNotFound):
		held, err := s.reg.NamesOf(ctx, rec.Peer, s.activeSince())
		if err != nil {
			return unavailable(err)
		}
		if len(held) >= s.limits.MaxPerPeer {
			return refuse(pb.Status_TOO_MANY_NAMES, "this peer already holds %d names (the most this server allows)", len(held))
		}
	case err != nil:
		return unavailable(err)
	case e.Peer != rec.Peer && e.Name == rec.Name:
		return refuse(pb.Status_TAKEN, "%q is held by another key", rec.Name)
	case e.Peer != rec.Peer:
		return refuse(pb.Status_TAKEN, "%q is too similar to %q, held by another key", rec.Name, e.Name)
	case e.Name != rec.Name:
		return refuse(pb.Status_TAKEN, "%q is too similar to %q, which this key holds; release that first", rec.Name, e.Name)
	case rec.Seq == e.Seq && bytes.Equal(raw, e.Record):
		// The same record again (an answer was lost): done already.
		return answer{resp: &pb.Response{Status: pb.Status_OK, ReleaseAt: uint64(e.Renewed.Add(s.limits.InactiveRelease).UnixMilli())}}
	case rec.Seq <= e.Seq:
		return refuse(pb.Status_OUTDATED, "record seq %d is not newer than the one held (%d)", rec.Seq, e.Seq)
	default:
		registered = e.Registered
	}
	ne := Entry{Name: rec.Name, Skeleton: skel, Peer: rec.Peer, Seq: rec.Seq, Record: raw, Registered: registered, Renewed: now}
	if err := s.reg.Put(ctx, ne); err != nil {
		return unavailable(err)
	}
	if registered.Equal(now) {
		s.log.Info("name registered", "name", rec.Name, "peer", rec.Peer.ShortString())
	} else {
		s.log.Debug("name renewed", "name", rec.Name, "peer", rec.Peer.ShortString())
	}
	return answer{resp: &pb.Response{Status: pb.Status_OK, ReleaseAt: uint64(now.Add(s.limits.InactiveRelease).UnixMilli())}}
}

func (s *Service) release(ctx context.Context, rec Record) answer {
	skel := Skeleton(rec.Name)
	e, err := s.current(ctx, skel)
	switch {
	case errors.Is(err, ErrNotFound):
		return refuse(pb.Status_NOT_FOUND, "%q is not registered", rec.Name)
	case err != nil:
		return unavailable(err)
	case e.Peer != rec.Peer:
		return refuse(pb.Status_TAKEN, "%q is held by another key", e.Name)
	case e.Name != rec.Name:
		return refuse(pb.Status_NOT_FOUND, "%q is not registered (this key holds %q)", rec.Name, e.Name)
	case rec.Seq <= e.Seq:
		return refuse(pb.Status_OUTDATED, "record seq %d is not newer than the one held (%d)", rec.Seq, e.Seq)
	}
	if err := s.reg.Delete(ctx, skel); err != nil {
		return unavailable(err)
	}
	s.log.Info("name released", "name", rec.Name, "peer", rec.Peer.ShortString())
	return answer{resp: &pb.Response{Status: pb.Status_OK}}
}

func (s *Service) lookup(ctx context.Context, name string) answer {
	canon, err := Normalize(name)
	if err != nil {
		return refuse(pb.Status_INVALID_NAME, "%v", err)
	}
	e, err := s.reg.Get(ctx, Skeleton(canon))
	switch {
	case errors.Is(err, ErrNotFound), err == nil && (e.Name != canon || e.Renewed.Before(s.activeSince())):
		return refuse(pb.Status_NOT_FOUND, "%q is not registered", canon)
	case err != nil:
		return unavailable(err)
	}
	return answer{resp: &pb.Response{Status: pb.Status_OK, Record: e.Record}}
}
