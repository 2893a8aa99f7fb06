package mailbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/protocols/mailbox/pb"
	"github.com/natterim/natter/protocols/wire"
)

// metricProto is the protocol label of stream errors.
const metricProto = "mailbox"

// fetchSlack is room kept in a fetch response for everything but the
// boxes (ids, positions, times, framing of each entry).
const fetchSlack = 64 << 10

// Option configures a Service, a TokenService or a Client; each says which
// options it reads.
type Option func(*config)

type config struct {
	limits  Limits
	log     *slog.Logger
	metrics *wire.Metrics
	reg     prometheus.Registerer
	now     func() time.Time
	timeout time.Duration // one exchange (0: the constructor's default)
}

func newConfig(opts []Option) config {
	c := config{
		limits: DefaultLimits(),
		log:    slog.New(slog.DiscardHandler),
		now:    time.Now,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithLimits replaces DefaultLimits (Service only).
func WithLimits(l Limits) Option { return func(c *config) { c.limits = l } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithMetrics counts reset streams (natter_protocol_stream_errors_total,
// protocol="mailbox" or "mailbox-token").
func WithMetrics(m *wire.Metrics) Option { return func(c *config) { c.metrics = m } }

// WithRegisterer exports the Service's counters
// (natter_mailbox_requests_total, natter_mailbox_deposits_total,
// natter_mailbox_deposited_bytes_total, natter_mailbox_expired_total) to
// reg. Without it they are kept but not exported.
func WithRegisterer(reg prometheus.Registerer) Option { return func(c *config) { c.reg = reg } }

// WithClock replaces time.Now for token expiry, deposit times and expiry
// (stream deadlines always use the real clock).
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithTimeout bounds one exchange: a token push received (TokenService;
// default DefaultTokenTimeout) or a request made (Client; default
// DefaultClientTimeout). The Service's bound is Limits.RequestTimeout.
func WithTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// Service is the mailbox server: it answers DEPOSIT, FETCH, DELETE and
// STATUS on ID, keeps the boxes in a Store and drops expired ones.
type Service struct {
	h    host.Host
	st   Store
	cfg  config
	lim  *wire.PeerLimiter
	ctrs *counters
	t    *wire.Tracker // the handlers in flight and the expiry loop

	closeOnce sync.Once
	saveOnce  sync.Once
}

// restoreLimits loads the per-sender deposit rate limits saved before a
// restart, so that restarting the server does not refill every sender's
// bucket.
func (s *Service) restoreLimits() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ls, err := s.st.SenderLimits(ctx)
	if err != nil {
		s.cfg.log.Warn("mailbox: cannot load the deposit rate limits; senders start with full buckets", "err", err)
		return
	}
	for _, l := range ls {
		s.lim.Restore(l.Sender, wire.Bucket{Tokens: l.Tokens, At: l.At})
	}
}

// saveLimits keeps the per-sender deposit rate limits in the store: every
// GCInterval and on Close, so a restart loses at most one interval.
func (s *Service) saveLimits(ctx context.Context) {
	snap := s.lim.Snapshot()
	ls := make([]SenderLimit, 0, len(snap))
	for p, b := range snap {
		ls = append(ls, SenderLimit{Sender: p, Tokens: b.Tokens, At: b.At})
	}
	if err := s.st.SaveSenderLimits(ctx, ls); err != nil {
		s.cfg.log.Warn("mailbox: cannot save the deposit rate limits", "err", err)
	}
}

// New starts a mailbox server on h backed by st: it sets the stream handler
// and starts the expiry loop. Close undoes both.
func New(h host.Host, st Store, opts ...Option) (*Service, error) {
	cfg := newConfig(opts)
	if err := cfg.limits.Validate(); err != nil {
		return nil, fmt.Errorf("mailbox limits: %w", err)
	}
	ctrs, err := newCounters(cfg.reg)
	if err != nil {
		return nil, err
	}
	s := &Service{
		h:    h,
		st:   st,
		cfg:  cfg,
		lim:  wire.NewPeerLimiter(1/cfg.limits.DepositInterval.Seconds(), cfg.limits.DepositBurst),
		ctrs: ctrs,
		t:    wire.NewTracker(),
	}
	s.restoreLimits()
	s.t.Go(s.gcLoop)
	h.SetStreamHandler(ID, s.t.Handler(s.handle))
	return s, nil
}

// Close removes the handler, resets the streams being served, stops the
// expiry loop and waits for all of them. It is idempotent.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.h.RemoveStreamHandler(ID)
		s.t.Close()
	})
	s.saveOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.saveLimits(ctx)
	})
	s.ctrs.unregister(s.cfg.reg)
	return nil
}

// Count returns how many requests of op ("deposit", "fetch", "delete",
// "status") ended with result (a CodeName), for tests and status output.
func (s *Service) Count(op, result string) float64 {
	return wire.CounterValue(s.ctrs.requests, op, result)
}

// CountBoxes returns how many deposited boxes ended with result.
func (s *Service) CountBoxes(result string) float64 {
	return wire.CounterValue(s.ctrs.deposits, result)
}

// CountExpired returns how many boxes expired since the service started.
func (s *Service) CountExpired() float64 { return wire.ReadCounter(s.ctrs.expired) }

// GC runs one expiry pass now (the loop runs one every GCInterval).
func (s *Service) GC(ctx context.Context) (ExpireStats, error) {
	st, err := s.st.Expire(ctx, s.cfg.now(), s.cfg.limits)
	if err != nil {
		return st, fmt.Errorf("mailbox expiry: %w", err)
	}
	s.ctrs.expired.Add(float64(st.Expired))
	if st.Expired+st.Fates+st.Owners > 0 {
		s.cfg.log.Info("mailbox expiry", "expired_boxes", st.Expired, "forgotten_fates", st.Fates, "forgotten_mailboxes", st.Owners)
	}
	return st, nil
}

func (s *Service) gcLoop(life context.Context) {
	t := time.NewTicker(s.cfg.limits.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-life.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(life, time.Minute)
			if _, err := s.GC(ctx); err != nil && life.Err() == nil {
				s.cfg.log.Warn("mailbox expiry failed", "err", err)
			}
			s.saveLimits(ctx)
			cancel()
		}
	}
}

func (s *Service) handle(st network.Stream) {
	from := st.Conn().RemotePeer()
	op := "unknown"
	timeout := s.cfg.limits.RequestTimeout
	err := wire.Serve(st, wire.ServeOptions{Service: ServiceName, Memory: 2 * MaxFrameSize, Timeout: timeout}, func(st network.Stream) (err error) {
		// Besides the deadline (which not every transport honours), a
		// watchdog resets a stream whose exchange takes too long.
		watchdog := wire.NewWatchdog(st, timeout)
		defer func() { err = watchdog.Stop(err) }()
		var req pb.Request
		if err := wire.ReadMsg(st, &req, MaxFrameSize); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(s.t.Context(), s.cfg.limits.RequestTimeout)
		defer cancel()
		var resp *pb.Response
		switch b := req.GetBody().(type) {
		case *pb.Request_Deposit:
			op, resp = "deposit", s.deposit(ctx, from, b.Deposit)
		case *pb.Request_Fetch:
			op, resp = "fetch", s.fetch(ctx, from, b.Fetch)
		case *pb.Request_Delete:
			op, resp = "delete", s.delete(ctx, from, b.Delete)
		case *pb.Request_Status:
			op, resp = "status", s.status(ctx, from, b.Status)
		default:
			return fmt.Errorf("request without a body: %w", wire.ErrInvalid)
		}
		if len(resp.Reason) > MaxReasonBytes {
			resp.Reason = resp.Reason[:MaxReasonBytes]
		}
		s.ctrs.requests.WithLabelValues(op, CodeName(resp.GetCode())).Inc()
		if resp.GetCode() != CodeOK {
			s.cfg.log.Debug("mailbox request refused", "peer", from.ShortString(), "op", op, "code", CodeName(resp.GetCode()), "reason", resp.GetReason())
		}
		return wire.WriteMsg(st, resp, MaxFrameSize)
	})
	if err != nil {
		s.cfg.metrics.StreamError(metricProto, err)
		s.cfg.log.Debug("mailbox stream ended", "peer", from.ShortString(), "op", op, "err", err)
	}
}

func refuse(c Code, format string, args ...any) *pb.Response {
	return &pb.Response{Code: c, Reason: fmt.Sprintf(format, args...)}
}

// parsedDeposit is a deposit request whose shape was checked.
type parsedDeposit struct {
	recipient peer.ID
	results   []*pb.Result // one per item; Code set for items refused already
	items     []Item       // the items to store
	idx       []int        // results index of each of items
}

// parseDeposit checks a deposit's shape: 1..MaxItems items with 16-byte
// ids, a recipient peer ID. Boxes larger than maxBox are refused
// (TOO_LARGE), shorter than a sealed box can be (MALFORMED), each on its
// own. A non-nil response refuses the whole request.
func parseDeposit(d *pb.Deposit, maxBox int) (parsedDeposit, *pb.Response) {
	n := len(d.GetItems())
	if n == 0 || n > MaxItems {
		return parsedDeposit{}, refuse(CodeMalformed, "a deposit holds 1..%d boxes, not %d", MaxItems, n)
	}
	recipient, err := peer.IDFromBytes(d.GetRecipient())
	if err != nil {
		return parsedDeposit{}, refuse(CodeMalformed, "recipient is not a peer ID")
	}
	p := parsedDeposit{recipient: recipient, results: make([]*pb.Result, n)}
	for i, it := range d.GetItems() {
		id, err := depositID(it.GetId())
		if err != nil {
			return parsedDeposit{}, refuse(CodeMalformed, "box %d: deposit id of %d bytes, want %d", i, len(it.GetId()), IDLen)
		}
		p.results[i] = &pb.Result{Id: it.GetId()}
		switch size := len(it.GetBox()); {
		case size > maxBox:
			p.results[i].Code = CodeTooLarge
		case size < MinBoxSize:
			p.results[i].Code = CodeMalformed
		default:
			p.items = append(p.items, Item{ID: id, Box: it.GetBox()})
			p.idx = append(p.idx, i)
		}
	}
	return p, nil
}

// deposit checks the request in the order that reveals least: shape,
// then the token (a stranger learns nothing about which mailboxes exist),
// then the rate limit, then the recipient, then the quota (in the store).
func (s *Service) deposit(ctx context.Context, from peer.ID, d *pb.Deposit) *pb.Response {
	n := len(d.GetItems())
	p, refusal := parseDeposit(d, s.cfg.limits.MaxBoxSize)
	if refusal != nil {
		return s.countBoxes(n, refusal)
	}
	now := s.cfg.now()
	if _, err := VerifyToken(d.GetToken(), p.recipient, from, now); err != nil {
		return s.countBoxes(n, refuse(CodeBadToken, "%v", err))
	}
	if len(p.items) > 0 && !s.lim.AllowN(from, len(p.items)) {
		return s.countBoxes(n, refuse(CodeRateLimited, "too many deposits; try again later"))
	}
	ok, err := s.st.HasMailbox(ctx, p.recipient)
	if err != nil {
		s.cfg.log.Warn("mailbox store failed", "op", "has_mailbox", "err", err)
		return s.countBoxes(n, refuse(CodeUnavailable, "the server cannot store boxes now"))
	}
	if !ok {
		return s.countBoxes(n, refuse(CodeUnknownRecipient, "the recipient has no mailbox on this server"))
	}
	if len(p.items) > 0 {
		codes, err := s.st.Deposit(ctx, DepositBatch{
			Recipient: p.recipient, Sender: from, Items: p.items, Now: now,
			MaxMessages: s.cfg.limits.MaxMessages, MaxBytes: s.cfg.limits.MaxBytes, MaxTotalBytes: s.cfg.limits.MaxTotalBytes,
		})
		if err == nil && len(codes) != len(p.items) {
			err = fmt.Errorf("store answered %d codes for %d boxes", len(codes), len(p.items))
		}
		if err != nil {
			s.cfg.log.Warn("mailbox store failed", "op", "deposit", "err", err)
			return s.countBoxes(n, refuse(CodeUnavailable, "the server cannot store boxes now"))
		}
		for j, c := range codes {
			p.results[p.idx[j]].Code = c
			if c == CodeOK {
				s.ctrs.bytes.Add(float64(len(p.items[j].Box)))
			}
		}
	}
	for _, r := range p.results {
		s.ctrs.deposits.WithLabelValues(CodeName(r.GetCode())).Inc()
	}
	return &pb.Response{Code: CodeOK, Results: p.results}
}

// countBoxes counts n boxes refused with the whole request.
func (s *Service) countBoxes(n int, resp *pb.Response) *pb.Response {
	s.ctrs.deposits.WithLabelValues(CodeName(resp.GetCode())).Add(float64(n))
	return resp
}

// owner checks the owner field of a fetch or delete.
func owner(b []byte, from peer.ID) (*pb.Response, bool) {
	o, err := peer.IDFromBytes(b)
	if err != nil {
		return refuse(CodeMalformed, "owner is not a peer ID"), false
	}
	if o != from {
		return refuse(CodeNotOwner, "only the owner may read or change a mailbox"), false
	}
	return nil, true
}

func (s *Service) fetch(ctx context.Context, from peer.ID, f *pb.Fetch) *pb.Response {
	if resp, ok := owner(f.GetOwner(), from); !ok {
		return resp
	}
	now := s.cfg.now()
	if err := s.st.TouchMailbox(ctx, from, now); err != nil {
		s.cfg.log.Warn("mailbox store failed", "op", "touch", "err", err)
		return refuse(CodeUnavailable, "the server cannot read mailboxes now")
	}
	limit := int(f.GetLimit())
	if limit == 0 || limit > MaxItems {
		limit = MaxItems
	}
	boxes, more, err := s.st.Fetch(ctx, from, f.GetAfter(), limit, MaxFrameSize-fetchSlack, now)
	if err != nil {
		s.cfg.log.Warn("mailbox store failed", "op", "fetch", "err", err)
		return refuse(CodeUnavailable, "the server cannot read mailboxes now")
	}
	resp := &pb.Response{Code: CodeOK, More: more, Items: make([]*pb.Stored, 0, len(boxes))}
	for _, b := range boxes {
		resp.Items = append(resp.Items, &pb.Stored{Id: b.ID[:], Box: b.Box, Seq: b.Seq, DepositedMs: b.Deposited.UnixMilli()})
	}
	return resp
}

func idList(bs [][]byte) ([]DepositID, error) {
	out := make([]DepositID, 0, len(bs))
	for _, b := range bs {
		id, err := depositID(b)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// parseDelete checks a delete's ids.
func parseDelete(d *pb.Delete) (delivered, rejected []DepositID, refusal *pb.Response) {
	if n := len(d.GetIds()) + len(d.GetRejected()); n == 0 || n > MaxStatusIDs {
		return nil, nil, refuse(CodeMalformed, "a delete names 1..%d boxes, not %d", MaxStatusIDs, n)
	}
	delivered, err := idList(d.GetIds())
	if err != nil {
		return nil, nil, refuse(CodeMalformed, "%v", err)
	}
	rejected, err = idList(d.GetRejected())
	if err != nil {
		return nil, nil, refuse(CodeMalformed, "%v", err)
	}
	return delivered, rejected, nil
}

func (s *Service) delete(ctx context.Context, from peer.ID, d *pb.Delete) *pb.Response {
	if resp, ok := owner(d.GetOwner(), from); !ok {
		return resp
	}
	delivered, rejected, refusal := parseDelete(d)
	if refusal != nil {
		return refusal
	}
	n, err := s.st.Delete(ctx, from, delivered, rejected, s.cfg.now())
	if err != nil {
		s.cfg.log.Warn("mailbox store failed", "op", "delete", "err", err)
		return refuse(CodeUnavailable, "the server cannot change mailboxes now")
	}
	return &pb.Response{Code: CodeOK, Deleted: uint32(n)}
}

// parseStatus checks a status query's ids.
func parseStatus(q *pb.StatusQuery) ([]DepositID, *pb.Response) {
	if n := len(q.GetIds()); n == 0 || n > MaxStatusIDs {
		return nil, refuse(CodeMalformed, "a status query names 1..%d deposits, not %d", MaxStatusIDs, n)
	}
	ids, err := idList(q.GetIds())
	if err != nil {
		return nil, refuse(CodeMalformed, "%v", err)
	}
	return ids, nil
}

func (s *Service) status(ctx context.Context, from peer.ID, q *pb.StatusQuery) *pb.Response {
	ids, refusal := parseStatus(q)
	if refusal != nil {
		return refusal
	}
	fates, err := s.st.Fates(ctx, from, ids)
	if err == nil && len(fates) != len(ids) {
		err = fmt.Errorf("store answered %d fates for %d ids", len(fates), len(ids))
	}
	if err != nil {
		s.cfg.log.Warn("mailbox store failed", "op", "status", "err", err)
		return refuse(CodeUnavailable, "the server cannot read mailboxes now")
	}
	resp := &pb.Response{Code: CodeOK, Fates: make([]*pb.Fate, 0, len(fates))}
	for _, f := range fates {
		pf := &pb.Fate{Id: f.ID[:], State: f.State, Fetched: f.Fetched}
		if !f.At.IsZero() {
			pf.AtMs = f.At.UnixMilli()
		}
		resp.Fates = append(resp.Fates, pf)
	}
	return resp
}

// counters are the Service's Prometheus counters.
type counters struct {
	requests *prometheus.CounterVec
	deposits *prometheus.CounterVec
	bytes    prometheus.Counter
	expired  prometheus.Counter
	all      []prometheus.Collector
}

func newCounters(reg prometheus.Registerer) (*counters, error) {
	c := &counters{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "natter", Subsystem: "mailbox", Name: "requests_total",
			Help: "Mailbox requests answered, by op (deposit, fetch, delete, status) and result (ok, bad_token, unknown_recipient, rate_limited, not_owner, malformed, unavailable, ...).",
		}, []string{"op", "result"}),
		deposits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "natter", Subsystem: "mailbox", Name: "deposits_total",
			Help: "Boxes offered for deposit, by result (ok, duplicate, over_quota, too_large, malformed, bad_token, unknown_recipient, rate_limited, unavailable).",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "natter", Subsystem: "mailbox", Name: "deposited_bytes_total",
			Help: "Bytes of sealed boxes stored.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "natter", Subsystem: "mailbox", Name: "expired_total",
			Help: "Boxes dropped at the maximum age before their owner deleted them.",
		}),
	}
	c.all = []prometheus.Collector{c.requests, c.deposits, c.bytes, c.expired}
	if reg == nil {
		return c, nil
	}
	var done []prometheus.Collector
	for _, col := range c.all {
		if err := reg.Register(col); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, fmt.Errorf("register mailbox metrics: %w", err)
		}
		done = append(done, col)
	}
	return c, nil
}

func (c *counters) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, col := range c.all {
		reg.Unregister(col)
	}
}

// errUnexpected marks a response that does not answer the request.
var errUnexpected = errors.New("unexpected mailbox response")
