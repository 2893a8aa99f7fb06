package rendezvous

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/rendezvous/pb"
	"github.com/natterim/natter/protocols/wire"
)

// Limits bound what a Service accepts. Zero values are not defaults: start
// from DefaultLimits and change fields.
type Limits struct {
	// MinTTL and MaxTTL bound the TTL a peer may ask for (E_INVALID_TTL
	// outside); DefaultTTL is granted when it asks for 0.
	MinTTL, MaxTTL, DefaultTTL time.Duration
	// MaxNamespaceLen is the longest namespace, in bytes.
	MaxNamespaceLen int
	// MaxAddrs is the most addresses one signed peer record may carry.
	MaxAddrs int
	// MaxRecordSize is the largest signed peer record envelope, in bytes.
	MaxRecordSize int
	// MaxRegistrationsPerPeer is the most namespaces one peer may be
	// registered in at once (E_NOT_AUTHORIZED beyond).
	MaxRegistrationsPerPeer int
	// MaxRegistrations is the most registrations held in all
	// (E_UNAVAILABLE beyond).
	MaxRegistrations int
	// MaxRegistrationsPerSource is the most registrations held for peers
	// connected from one source (an IPv4 address or an IPv6 /56, see
	// wire.SourceKey): several nodes behind one carrier-grade NAT share
	// it. Zero means no cap. A registration refreshed from the same
	// source never counts twice; E_UNAVAILABLE beyond.
	MaxRegistrationsPerSource int
	// MaxDiscoverLimit caps the registrations in one discover response;
	// it is also the limit used when a client asks for 0.
	MaxDiscoverLimit int
	// RequestTimeout is the deadline for reading one request and writing
	// its response.
	RequestTimeout time.Duration
}

// DefaultLimits returns the limits a Service starts with.
func DefaultLimits() Limits {
	return Limits{
		MinTTL:                  2 * time.Minute,
		MaxTTL:                  72 * time.Hour,
		DefaultTTL:              2 * time.Hour,
		MaxNamespaceLen:         255,
		MaxAddrs:                32,
		MaxRecordSize:           8 << 10,
		MaxRegistrationsPerPeer: 64,
		MaxRegistrations:        200_000,
		MaxDiscoverLimit:        1000,
		RequestTimeout:          30 * time.Second,
	}
}

func (l Limits) validate() error {
	switch {
	case l.MinTTL < time.Second || l.MaxTTL < l.MinTTL:
		return errors.New("need 1s <= MinTTL <= MaxTTL")
	case l.DefaultTTL < l.MinTTL || l.DefaultTTL > l.MaxTTL:
		return errors.New("DefaultTTL outside [MinTTL, MaxTTL]")
	case l.MaxNamespaceLen < 1 || l.MaxAddrs < 0 || l.MaxRecordSize < 1:
		return errors.New("namespace, address and record limits must be positive")
	case l.MaxRecordSize+l.MaxNamespaceLen+responseSlack > maxResponseSize:
		return fmt.Errorf("MaxRecordSize+MaxNamespaceLen must stay under %d bytes", maxResponseSize-responseSlack)
	case l.MaxRegistrationsPerPeer < 1 || l.MaxRegistrations < 1 || l.MaxDiscoverLimit < 1:
		return errors.New("registration and discover limits must be positive")
	case l.MaxRegistrationsPerSource < 0:
		return errors.New("MaxRegistrationsPerSource must not be negative")
	case l.RequestTimeout <= 0:
		return errors.New("RequestTimeout must be positive")
	}
	return nil
}

// responseSlack is room left in a response for everything but the
// registrations (cookie, status, framing of each entry).
const responseSlack = 1024

// bigResponse is the size above which a response is reserved from the
// stream's resource scope before it is written.
const bigResponse = 64 << 10

// defaultGCInterval is how often expired registrations are dropped.
const defaultGCInterval = 30 * time.Second

// EventKind says what happened to a registration.
type EventKind int

// Kinds of Event.
const (
	// Registered: a registration was added or replaced (refreshed).
	Registered EventKind = iota + 1
	// Unregistered: the peer unregistered, or RemovePeer dropped it.
	Unregistered
	// Expired: the TTL ran out.
	Expired
)

// String implements fmt.Stringer.
func (k EventKind) String() string {
	switch k {
	case Registered:
		return "registered"
	case Unregistered:
		return "unregistered"
	case Expired:
		return "expired"
	default:
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
}

// Event reports a change to the registry to the WithEventHandler callback.
type Event struct {
	Kind         EventKind
	Registration Registration
}

// Option configures a Service.
type Option func(*config)

// Request is what a Gate sees of a request before the Service handles it.
type Request struct {
	// Type is REGISTER, UNREGISTER or DISCOVER.
	Type pb.Message_MessageType
	// Peer is the remote peer.
	Peer peer.ID
	// Source is the connection's IPv4 address or IPv6 /56 (wire.SourceKey);
	// invalid (!Source.IsValid()) when the connection has no IP address.
	Source netip.Prefix
}

// Gate decides whether a request is served at all: it runs before any
// work is done (rate limits). An error refuses the request: REGISTER and
// DISCOVER are answered E_UNAVAILABLE ("rate limited" if the error wraps
// wire.ErrRateLimited, else "refused"); UNREGISTER, which has no
// response, resets the stream.
type Gate func(Request) error

// WithGate makes every request pass g first.
func WithGate(g Gate) Option { return func(c *config) { c.gate = g } }

// Reasons a request is refused, as reported to WithRefusals: a small fixed
// set, usable as metric labels.
const (
	RefusedRateLimited   = "rate_limited"   // the Gate refused it
	RefusedSourceCap     = "source_cap"     // MaxRegistrationsPerSource reached
	RefusedPeerCap       = "peer_cap"       // MaxRegistrationsPerPeer reached
	RefusedFull          = "full"           // MaxRegistrations reached
	RefusedNotAuthorized = "not_authorized" // another peer's namespace or record
	RefusedInvalid       = "invalid"        // a field failed validation
)

// WithRefusals calls f for every REGISTER or DISCOVER answered with an
// error status (request is "register" or "discover", reason one of the
// Refused* constants), from the goroutine serving the request.
func WithRefusals(f func(request, reason string)) Option {
	return func(c *config) { c.onRefused = f }
}

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

// WithMetrics counts failed streams (label protocol = ID).
func WithMetrics(m *wire.Metrics) Option { return func(c *config) { c.metrics = m } }

// WithClock replaces time.Now for registration times and expiry (stream
// deadlines always use the real clock).
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithEventHandler calls f for every registration added, replaced,
// removed or expired. f runs synchronously on the goroutine that made the
// change, with no lock held; it must not block for long.
func WithEventHandler(f func(Event)) Option { return func(c *config) { c.onEvent = f } }

// WithGCInterval sets how often expired registrations are dropped (default
// 30s). Expired registrations are never served in between.
func WithGCInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.gcInterval = d
		}
	}
}

// entry is one registration as stored.
type entry struct {
	reg     Registration
	record  []byte       // the signed envelope, as received
	source  netip.Prefix // where it came from (invalid: unknown)
	seq     uint64       // position in the registration counter
	removed bool
}

// seqLog holds entries in increasing seq order; removed ones are dropped
// lazily once they are the majority.
type seqLog struct {
	entries []*entry
	dead    int
}

func (l *seqLog) remove() {
	l.dead++
	if l.dead > 32 && l.dead*2 > len(l.entries) {
		l.entries = slices.DeleteFunc(l.entries, func(e *entry) bool { return e.removed })
		l.dead = 0
	}
}

// nsIndex is one namespace.
type nsIndex struct {
	peers map[peer.ID]*entry
	log   seqLog
}

// config is what the options set; it starts from DefaultLimits, a GC
// every 30 s, the real clock, no gate, no callbacks, no metrics.
type config struct {
	limits     Limits
	log        *slog.Logger
	metrics    *wire.Metrics
	now        func() time.Time
	onEvent    func(Event)
	onRefused  func(request, reason string)
	gate       Gate
	gcInterval time.Duration
}

// Service is a rendezvous server: it holds registrations and answers
// REGISTER, UNREGISTER and DISCOVER on ID.
type Service struct {
	config
	host       host.Host
	maxRequest int

	mu     sync.Mutex
	seq    uint64
	byNS   map[string]*nsIndex
	all    seqLog
	byPeer map[peer.ID]map[string]*entry
	bySrc  map[netip.Prefix]int
	count  int

	t         *wire.Tracker // nil offline (NewOffline)
	closeOnce sync.Once
}

// New starts a rendezvous server on h: it sets the stream handler for ID
// and starts the loop that drops expired registrations. Close undoes both.
func New(h host.Host, opts ...Option) (*Service, error) {
	s := newService(opts...)
	if err := s.limits.validate(); err != nil {
		return nil, fmt.Errorf("rendezvous limits: %w", err)
	}
	s.host = h
	s.t = wire.NewTracker()
	s.t.Go(s.gcLoop)
	h.SetStreamHandler(ID, s.t.Handler(s.handleStream))
	return s, nil
}

// newService builds the registry without a host (New and tests).
func newService(opts ...Option) *Service {
	s := &Service{
		config: config{
			limits:     DefaultLimits(),
			log:        slog.New(slog.DiscardHandler),
			now:        time.Now,
			gcInterval: defaultGCInterval,
		},
		// Positions start at the wall clock so that they keep increasing
		// across restarts and old cookies stay meaningful.
		seq:    uint64(max(time.Now().UnixNano(), 0)),
		byNS:   map[string]*nsIndex{},
		byPeer: map[peer.ID]map[string]*entry{},
		bySrc:  map[netip.Prefix]int{},
	}
	for _, o := range opts {
		o(&s.config)
	}
	s.maxRequest = s.limits.MaxRecordSize + s.limits.MaxNamespaceLen + responseSlack
	return s
}

// Close removes the stream handler, resets streams being served and stops
// the GC loop, waiting for all of them. It is idempotent.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		if s.host != nil {
			s.host.RemoveStreamHandler(ID)
		}
		if s.t != nil {
			s.t.Close()
		}
	})
	return nil
}

func (s *Service) gcLoop(ctx context.Context) {
	t := time.NewTicker(s.gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			var events []Event
			s.mu.Lock()
			s.gcLocked(s.now(), &events)
			s.mu.Unlock()
			s.emit(events)
		}
	}
}

// Registrations returns a snapshot of the live registrations, sorted by
// namespace, then peer ID.
func (s *Service) Registrations() []Registration {
	now := s.now()
	s.mu.Lock()
	out := make([]Registration, 0, s.count)
	for _, e := range s.all.entries {
		if !e.removed && now.Before(e.reg.Expires) {
			out = append(out, copyReg(e.reg))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Registration) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Peer.ID, b.Peer.ID))
	})
	return out
}

// Lookup returns p's live registration under PeerNamespace(p).
func (s *Service) Lookup(p peer.ID) (Registration, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byPeer[p][PeerNamespace(p)]
	if e == nil || !now.Before(e.reg.Expires) {
		return Registration{}, false
	}
	return copyReg(e.reg), true
}

// RemovePeer drops every registration of p (for example when p
// disconnects). Each one is reported as Unregistered.
func (s *Service) RemovePeer(p peer.ID) {
	var events []Event
	s.mu.Lock()
	for _, e := range s.byPeer[p] {
		s.removeLocked(e)
		events = append(events, Event{Unregistered, copyReg(e.reg)})
	}
	s.mu.Unlock()
	s.emit(events)
	if len(events) > 0 {
		s.log.Debug("rendezvous peer removed", "peer", p, "registrations", len(events))
	}
}

func copyReg(r Registration) Registration {
	r.Peer.Addrs = slices.Clone(r.Peer.Addrs)
	return r
}

func (s *Service) emit(events []Event) {
	if s.onEvent == nil {
		return
	}
	for _, ev := range events {
		s.onEvent(ev)
	}
}

// removeLocked takes e out of every index.
func (s *Service) removeLocked(e *entry) {
	if e.removed {
		return
	}
	e.removed = true
	ns, p := e.reg.Namespace, e.reg.Peer.ID
	if idx := s.byNS[ns]; idx != nil {
		delete(idx.peers, p)
		if len(idx.peers) == 0 {
			delete(s.byNS, ns)
		} else {
			idx.log.remove()
		}
	}
	if regs := s.byPeer[p]; regs != nil {
		delete(regs, ns)
		if len(regs) == 0 {
			delete(s.byPeer, p)
		}
	}
	s.all.remove()
	s.count--
	if e.source.IsValid() {
		if s.bySrc[e.source]--; s.bySrc[e.source] <= 0 {
			delete(s.bySrc, e.source)
		}
	}
}

// gcLocked drops every registration expired at now.
func (s *Service) gcLocked(now time.Time, events *[]Event) {
	var expired []*entry
	for _, e := range s.all.entries {
		if !e.removed && !now.Before(e.reg.Expires) {
			expired = append(expired, e)
		}
	}
	for _, e := range expired {
		s.removeLocked(e)
		*events = append(*events, Event{Expired, copyReg(e.reg)})
	}
}

// expirePeerLocked drops p's registrations expired at now.
func (s *Service) expirePeerLocked(p peer.ID, now time.Time, events *[]Event) {
	for _, e := range s.byPeer[p] {
		if !now.Before(e.reg.Expires) {
			s.removeLocked(e)
			*events = append(*events, Event{Expired, copyReg(e.reg)})
		}
	}
}

func (s *Service) handleStream(st network.Stream) {
	remote := st.Conn().RemotePeer()
	from := origin{peer: remote}
	from.source, _ = wire.SourceKey(st.Conn().RemoteMultiaddr())
	err := wire.Serve(st, wire.ServeOptions{
		Service: ServiceName,
		Memory:  s.maxRequest,
		Timeout: s.limits.RequestTimeout,
	}, func(st network.Stream) error { return s.serve(st, from) })
	if err != nil {
		s.log.Debug("rendezvous stream failed", "peer", remote, "reason", wire.Reason(err), "err", err)
		s.metrics.StreamError(string(ID), err)
	}
}

// serve answers requests on st until EOF; each one gets RequestTimeout.
// Besides the stream deadline (which not every transport honours), a
// watchdog resets the stream when a request takes too long.
func (s *Service) serve(st network.Stream, from origin) (err error) {
	timeout := s.limits.RequestTimeout
	watchdog := wire.NewWatchdog(st, timeout)
	defer func() { err = watchdog.Stop(err) }()
	for first := true; ; first = false {
		if !first {
			watchdog.Restart()
			if err := st.SetDeadline(time.Now().Add(timeout)); err != nil {
				return fmt.Errorf("set deadline: %w", err)
			}
		}
		req, err := readRequest(st, s.maxRequest)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.handle(from, req)
		if err != nil {
			return err
		}
		if resp == nil {
			continue
		}
		if err := s.writeResponse(st, resp); err != nil {
			return err
		}
	}
}

func (s *Service) writeResponse(st network.Stream, resp *pb.Message) error {
	if n := proto.Size(resp); n > bigResponse {
		if err := st.Scope().ReserveMemory(n, network.ReservationPriorityMedium); err != nil {
			s.log.Debug("rendezvous response refused by resource manager", "size", n, "err", err)
			resp = discoverStatus(pb.Message_E_UNAVAILABLE, "server busy")
		} else {
			defer st.Scope().ReleaseMemory(n)
		}
	}
	if err := wire.WriteMsg(st, resp, maxResponseSize); err != nil {
		return fmt.Errorf("write %s: %w", resp.GetType(), err)
	}
	return nil
}

// readRequest reads one frame and checks that it is a request with its
// body. io.EOF (unwrapped) means the stream ended cleanly between frames.
func readRequest(r io.Reader, maxSize int) (*pb.Message, error) {
	var m pb.Message
	if err := wire.ReadMsg(r, &m, maxSize); err != nil {
		return nil, err
	}
	if err := checkRequest(&m); err != nil {
		return nil, err
	}
	return &m, nil
}

// checkRequest refuses anything but a request whose body matches its type.
func checkRequest(m *pb.Message) error {
	if m.Type == nil {
		return fmt.Errorf("message without type: %w", wire.ErrMalformed)
	}
	var ok bool
	switch m.GetType() {
	case pb.Message_REGISTER:
		ok = m.Register != nil
	case pb.Message_UNREGISTER:
		ok = m.Unregister != nil
	case pb.Message_DISCOVER:
		ok = m.Discover != nil
	default:
		return fmt.Errorf("%s is not a request: %w", m.GetType(), wire.ErrInvalid)
	}
	if !ok {
		return fmt.Errorf("%s without its body: %w", m.GetType(), wire.ErrMalformed)
	}
	return nil
}

// origin is who sent a request: the peer and the source of its
// connection (invalid if unknown).
type origin struct {
	peer   peer.ID
	source netip.Prefix
}

// handle answers one checked request. A nil response means none is sent
// (UNREGISTER); an error resets the stream.
func (s *Service) handle(from origin, m *pb.Message) (*pb.Message, error) {
	remote := from.peer
	if s.gate != nil {
		if err := s.gate(Request{Type: m.GetType(), Peer: remote, Source: from.source}); err != nil {
			text := "refused"
			if errors.Is(err, wire.ErrRateLimited) {
				text = "rate limited"
			}
			switch m.GetType() {
			case pb.Message_REGISTER:
				s.refuse(remote, "register", RefusedRateLimited, pb.Message_E_UNAVAILABLE, text)
				return registerStatus(pb.Message_E_UNAVAILABLE, text, 0), nil
			case pb.Message_DISCOVER:
				s.refuse(remote, "discover", RefusedRateLimited, pb.Message_E_UNAVAILABLE, text)
				return discoverStatus(pb.Message_E_UNAVAILABLE, text), nil
			default:
				return nil, fmt.Errorf("%s: %w", m.GetType(), err)
			}
		}
	}
	switch m.GetType() {
	case pb.Message_REGISTER:
		return s.register(from, m.Register), nil
	case pb.Message_UNREGISTER:
		return nil, s.unregister(remote, m.Unregister.GetNs())
	case pb.Message_DISCOVER:
		return s.discover(remote, m.Discover), nil
	default:
		return nil, fmt.Errorf("%s is not a request: %w", m.GetType(), wire.ErrInvalid)
	}
}

func registerStatus(st pb.Message_ResponseStatus, text string, ttl uint64) *pb.Message {
	r := &pb.Message_RegisterResponse{Status: st.Enum(), StatusText: proto.String(text)}
	if st == pb.Message_OK {
		r.Ttl = proto.Uint64(ttl)
		r.StatusText = nil
	}
	return &pb.Message{Type: pb.Message_REGISTER_RESPONSE.Enum(), RegisterResponse: r}
}

func discoverStatus(st pb.Message_ResponseStatus, text string) *pb.Message {
	return &pb.Message{
		Type: pb.Message_DISCOVER_RESPONSE.Enum(),
		DiscoverResponse: &pb.Message_DiscoverResponse{
			Status:     st.Enum(),
			StatusText: proto.String(text),
		},
	}
}

func (s *Service) refuse(remote peer.ID, req, reason string, st pb.Message_ResponseStatus, text string) {
	s.log.Debug("rendezvous request refused", "peer", remote, "request", req, "status", st.String(), "why", text)
	if s.onRefused != nil {
		s.onRefused(req, reason)
	}
}

// refusalReason is the WithRefusals reason of a status (E_UNAVAILABLE is
// told apart by the code that returns it).
func refusalReason(st pb.Message_ResponseStatus) string {
	if st == pb.Message_E_NOT_AUTHORIZED {
		return RefusedNotAuthorized
	}
	return RefusedInvalid
}

func (s *Service) register(from origin, r *pb.Message_Register) *pb.Message {
	remote := from.peer
	failWhy := func(reason string, st pb.Message_ResponseStatus, text string) *pb.Message {
		s.refuse(remote, "register", reason, st, text)
		return registerStatus(st, text, 0)
	}
	fail := func(st pb.Message_ResponseStatus, text string) *pb.Message {
		return failWhy(refusalReason(st), st, text)
	}
	ns := r.GetNs()
	if why := validNamespace(ns, s.limits.MaxNamespaceLen); why != "" {
		return fail(pb.Message_E_INVALID_NAMESPACE, why)
	}
	if isPeerNamespace(ns) && ns != PeerNamespace(remote) {
		return fail(pb.Message_E_NOT_AUTHORIZED, "namespace reserved for another peer")
	}
	ttl := s.limits.DefaultTTL
	if secs := r.GetTtl(); secs != 0 {
		if secs > uint64(math.MaxInt64/time.Second) || time.Duration(secs)*time.Second > s.limits.MaxTTL {
			return fail(pb.Message_E_INVALID_TTL, "ttl too long")
		}
		ttl = time.Duration(secs) * time.Second
		if ttl < s.limits.MinTTL {
			return fail(pb.Message_E_INVALID_TTL, "ttl too short")
		}
	}
	data := r.GetSignedPeerRecord()
	if len(data) == 0 {
		return fail(pb.Message_E_INVALID_SIGNED_PEER_RECORD, "no signed peer record")
	}
	if len(data) > s.limits.MaxRecordSize {
		return fail(pb.Message_E_INVALID_SIGNED_PEER_RECORD, "signed peer record too large")
	}
	rec, err := openRecord(data)
	if err != nil {
		return fail(pb.Message_E_INVALID_SIGNED_PEER_RECORD, "signed peer record does not verify")
	}
	if rec.PeerID != remote {
		return fail(pb.Message_E_NOT_AUTHORIZED, "record of another peer")
	}
	if len(rec.Addrs) > s.limits.MaxAddrs {
		return fail(pb.Message_E_INVALID_SIGNED_PEER_RECORD, "too many addresses")
	}

	now := s.now()
	reg := Registration{
		Namespace:  ns,
		Peer:       peer.AddrInfo{ID: remote, Addrs: rec.Addrs},
		Expires:    now.Add(ttl),
		Registered: now,
	}
	var events []Event
	s.mu.Lock()
	st, reason, text := s.addLocked(reg, slices.Clone(data), from.source, now, &events)
	s.mu.Unlock()
	s.emit(events)
	if st != pb.Message_OK {
		return failWhy(reason, st, text)
	}
	s.log.Debug("rendezvous registration", "peer", remote, "ns", ns, "ttl", ttl, "addrs", len(rec.Addrs))
	return registerStatus(pb.Message_OK, "", ttlSeconds(ttl))
}

// addLocked stores reg, replacing the peer's registration in the same
// namespace, or returns why not (status, WithRefusals reason, text).
func (s *Service) addLocked(reg Registration, record []byte, source netip.Prefix, now time.Time, events *[]Event) (pb.Message_ResponseStatus, string, string) {
	p, ns := reg.Peer.ID, reg.Namespace
	old := s.byPeer[p][ns]
	if old != nil && !now.Before(old.reg.Expires) {
		s.removeLocked(old)
		*events = append(*events, Event{Expired, copyReg(old.reg)})
		old = nil
	}
	if old == nil {
		if len(s.byPeer[p]) >= s.limits.MaxRegistrationsPerPeer {
			s.expirePeerLocked(p, now, events)
			if len(s.byPeer[p]) >= s.limits.MaxRegistrationsPerPeer {
				return pb.Message_E_NOT_AUTHORIZED, RefusedPeerCap, "too many registrations for this peer"
			}
		}
		if s.count >= s.limits.MaxRegistrations {
			s.gcLocked(now, events)
			if s.count >= s.limits.MaxRegistrations {
				return pb.Message_E_UNAVAILABLE, RefusedFull, "registry full"
			}
		}
	}
	if limit := s.limits.MaxRegistrationsPerSource; limit > 0 && source.IsValid() && (old == nil || old.source != source) {
		if s.bySrc[source] >= limit {
			s.gcLocked(now, events)
			if s.bySrc[source] >= limit {
				return pb.Message_E_UNAVAILABLE, RefusedSourceCap, "too many registrations from this address"
			}
		}
	}
	if old != nil {
		s.removeLocked(old) // replaced: reported once, as Registered
	}
	s.seq++
	e := &entry{reg: reg, record: record, source: source, seq: s.seq}
	idx := s.byNS[ns]
	if idx == nil {
		idx = &nsIndex{peers: map[peer.ID]*entry{}}
		s.byNS[ns] = idx
	}
	idx.peers[p] = e
	idx.log.entries = append(idx.log.entries, e)
	s.all.entries = append(s.all.entries, e)
	regs := s.byPeer[p]
	if regs == nil {
		regs = map[string]*entry{}
		s.byPeer[p] = regs
	}
	regs[ns] = e
	s.count++
	if source.IsValid() {
		s.bySrc[source]++
	}
	*events = append(*events, Event{Registered, copyReg(reg)})
	return pb.Message_OK, "", ""
}

// unregister removes remote's registration in ns, or all of them for "".
func (s *Service) unregister(remote peer.ID, ns string) error {
	if ns != "" {
		if why := validNamespace(ns, s.limits.MaxNamespaceLen); why != "" {
			return fmt.Errorf("unregister: %s: %w", why, wire.ErrInvalid)
		}
	}
	now := s.now()
	var events []Event
	s.mu.Lock()
	for rns, e := range s.byPeer[remote] {
		if ns != "" && rns != ns {
			continue
		}
		s.removeLocked(e)
		kind := Unregistered
		if !now.Before(e.reg.Expires) {
			kind = Expired
		}
		events = append(events, Event{kind, copyReg(e.reg)})
	}
	s.mu.Unlock()
	s.emit(events)
	s.log.Debug("rendezvous unregistration", "peer", remote, "ns", ns, "removed", len(events))
	return nil
}

func (s *Service) discover(remote peer.ID, d *pb.Message_Discover) *pb.Message {
	fail := func(st pb.Message_ResponseStatus, text string) *pb.Message {
		s.refuse(remote, "discover", refusalReason(st), st, text)
		return discoverStatus(st, text)
	}
	ns := d.GetNs()
	if ns != "" {
		if why := validNamespace(ns, s.limits.MaxNamespaceLen); why != "" {
			return fail(pb.Message_E_INVALID_NAMESPACE, why)
		}
	}
	limit := s.limits.MaxDiscoverLimit
	if l := d.GetLimit(); l != 0 && l < uint64(limit) {
		limit = int(l)
	}
	pos, ok := decodeCookie(ns, d.GetCookie())
	if !ok {
		return fail(pb.Message_E_INVALID_COOKIE, "malformed cookie")
	}
	now := s.now()
	var regs []*pb.Message_Register
	budget := maxResponseSize - responseSlack
	s.mu.Lock()
	if pos > s.seq {
		s.mu.Unlock()
		return fail(pb.Message_E_INVALID_COOKIE, "cookie from the future")
	}
	var log *seqLog
	if ns == "" {
		log = &s.all
	} else if idx := s.byNS[ns]; idx != nil {
		log = &idx.log
	}
	if log != nil {
		i := sort.Search(len(log.entries), func(i int) bool { return log.entries[i].seq > pos })
		for ; i < len(log.entries) && len(regs) < limit; i++ {
			e := log.entries[i]
			if e.removed || !now.Before(e.reg.Expires) {
				pos = e.seq // gone for good; do not scan it again
				continue
			}
			r := &pb.Message_Register{
				Ns:               proto.String(e.reg.Namespace),
				SignedPeerRecord: e.record,
				Ttl:              proto.Uint64(ttlSeconds(e.reg.Expires.Sub(now))),
			}
			n := proto.Size(r) + 8 // field tag and length
			if n > budget {
				break
			}
			budget -= n
			regs = append(regs, r)
			pos = e.seq
		}
	}
	s.mu.Unlock()
	s.log.Debug("rendezvous discover", "peer", remote, "ns", ns, "returned", len(regs))
	return &pb.Message{
		Type: pb.Message_DISCOVER_RESPONSE.Enum(),
		DiscoverResponse: &pb.Message_DiscoverResponse{
			Registrations: regs,
			Cookie:        encodeCookie(ns, pos),
			Status:        pb.Message_OK.Enum(),
		},
	}
}
