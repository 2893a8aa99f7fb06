package contact

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
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/natterim/natter/protocols/contact/pb"
	"github.com/natterim/natter/protocols/wire"
)

// ID is the protocol ID.
const ID = protocol.ID("/natter/contact/1.0.0")

// ServiceName is the resource-manager service of contact streams.
const ServiceName = "natter.contact"

const (
	// MaxNoteBytes is the longest note a request may carry.
	MaxNoteBytes = 280
	// MaxNameBytes is the longest display name a request may carry.
	MaxNameBytes = 64
	// MaxReasonBytes is the longest reason a response may carry.
	MaxReasonBytes = 200
	// MaxFrameSize bounds one request or response.
	MaxFrameSize = 1 << 10
)

// Kinds and statuses, re-exported so that callers need not import pb.
const (
	KindRequest  = pb.Kind_REQUEST
	KindAccept   = pb.Kind_ACCEPT
	KindReject   = pb.Kind_REJECT
	KindWithdraw = pb.Kind_WITHDRAW

	StatusOK          = pb.Status_OK
	StatusPending     = pb.Status_PENDING
	StatusAccepted    = pb.Status_ACCEPTED
	StatusRejected    = pb.Status_REJECTED
	StatusRateLimited = pb.Status_RATE_LIMITED
	StatusRefused     = pb.Status_REFUSED
)

// Request is one message from the opener.
type Request struct {
	Kind pb.Kind
	Note string
	Name string
}

// Response is the receiver's answer.
type Response struct {
	Status pb.Status
	Reason string
}

// Handler is the node side: it applies a request from a peer and answers.
// It is only called for valid requests from peers within their rate limit.
type Handler interface {
	HandleContact(ctx context.Context, from peer.ID, req Request) Response
}

// ValidateText checks a note or a name before it is sent or stored (see
// wire.ValidateText).
func ValidateText(what, s string, max int) error { return wire.ValidateText(what, s, max) }

func validateRequest(m *pb.Request) error {
	switch m.GetKind() {
	case pb.Kind_REQUEST, pb.Kind_ACCEPT, pb.Kind_REJECT, pb.Kind_WITHDRAW:
	default:
		return fmt.Errorf("unknown kind %d: %w", m.GetKind(), wire.ErrInvalid)
	}
	if err := ValidateText("note", m.GetNote(), MaxNoteBytes); err != nil {
		return err
	}
	return ValidateText("name", m.GetName(), MaxNameBytes)
}

func validateResponse(m *pb.Response) error {
	if m.GetStatus() < pb.Status_OK || m.GetStatus() > pb.Status_REFUSED {
		return fmt.Errorf("unknown status %d: %w", m.GetStatus(), wire.ErrInvalid)
	}
	return ValidateText("reason", m.GetReason(), MaxReasonBytes)
}

// Defaults of a Service (see the options).
const (
	// DefaultRate and DefaultBurst: 5 requests at once, then one a minute
	// per peer.
	DefaultRate  = 1.0 / 60
	DefaultBurst = 5
	// DefaultTimeout bounds one exchange, on both sides.
	DefaultTimeout = 10 * time.Second
)

// config is what the options set; it starts from the defaults above.
type config struct {
	rate    float64
	burst   int
	timeout time.Duration
	log     *slog.Logger
	metrics *wire.Metrics
}

// Option configures a Service.
type Option func(*config)

// WithRateLimit limits requests per peer: burst at once, then perSecond
// (default DefaultBurst, DefaultRate). The excess is answered RATE_LIMITED.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(c *config) {
		if perSecond > 0 && burst > 0 {
			c.rate, c.burst = perSecond, burst
		}
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

// WithMetrics counts failed streams (label protocol = "contact").
func WithMetrics(m *wire.Metrics) Option { return func(c *config) { c.metrics = m } }

// Service answers contact streams.
type Service struct {
	h   host.Host
	hd  Handler
	cfg config
	lim *wire.PeerLimiter
	t   *wire.Tracker

	closeOnce sync.Once
}

// New registers the handler on h; hd applies the requests.
func New(h host.Host, hd Handler, opts ...Option) *Service {
	cfg := config{rate: DefaultRate, burst: DefaultBurst, timeout: DefaultTimeout, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Service{h: h, hd: hd, cfg: cfg, lim: wire.NewPeerLimiter(cfg.rate, cfg.burst), t: wire.NewTracker()}
	h.SetStreamHandler(ID, s.t.Handler(s.handle))
	return s
}

// Close removes the handler, resets the streams being served and waits
// for their handlers. It is idempotent.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.h.RemoveStreamHandler(ID)
		s.t.Close()
	})
	return nil
}

func (s *Service) handle(st network.Stream) {
	from := st.Conn().RemotePeer()
	err := wire.Serve(st, wire.ServeOptions{Service: ServiceName, Memory: 2 * MaxFrameSize, Timeout: s.cfg.timeout}, func(st network.Stream) error {
		var req pb.Request
		if err := wire.ReadMsg(st, &req, MaxFrameSize); err != nil {
			return err
		}
		if err := validateRequest(&req); err != nil {
			return err
		}
		if !s.lim.Allow(from) {
			// Answer (and close cleanly, so that the answer arrives): an
			// honest but impatient peer learns why. Count it all the same.
			s.cfg.metrics.StreamError("contact", wire.ErrRateLimited)
			s.cfg.log.Debug("contact request rate-limited", "peer", from.ShortString(), "kind", req.GetKind())
			return wire.WriteMsg(st, &pb.Response{Status: pb.Status_RATE_LIMITED, Reason: "too many requests; try again later"}, MaxFrameSize)
		}
		ctx, cancel := context.WithTimeout(s.t.Context(), s.cfg.timeout)
		resp := s.hd.HandleContact(ctx, from, Request{Kind: req.GetKind(), Note: req.GetNote(), Name: req.GetName()})
		cancel()
		if len(resp.Reason) > MaxReasonBytes {
			resp.Reason = resp.Reason[:MaxReasonBytes]
		}
		return wire.WriteMsg(st, &pb.Response{Status: resp.Status, Reason: resp.Reason}, MaxFrameSize)
	})
	if err != nil {
		s.cfg.metrics.StreamError("contact", err)
		s.cfg.log.Debug("contact stream ended", "peer", from.ShortString(), "err", err)
	}
}

// ErrRateLimited is returned by Send when the peer said RATE_LIMITED.
var ErrRateLimited = errors.New("the contact's node is rate-limiting our requests")

// Send makes one exchange with p over an existing connection (relayed ones
// included; it does not dial).
func Send(ctx context.Context, h host.Host, p peer.ID, req Request) (Response, error) {
	if err := validateRequest(&pb.Request{Kind: req.Kind, Note: req.Note, Name: req.Name}); err != nil {
		return Response{}, err
	}
	var resp pb.Response
	err := wire.Call(ctx, h, p, ID, wire.CallOptions{
		Service:      ServiceName,
		AllowLimited: true,
		NoDial:       true,
		RequestMax:   MaxFrameSize,
		ResponseMax:  MaxFrameSize,
		Timeout:      DefaultTimeout,
	}, &pb.Request{Kind: req.Kind, Note: req.Note, Name: req.Name}, &resp)
	if err != nil {
		return Response{}, fmt.Errorf("contact request: %w", err)
	}
	if err := validateResponse(&resp); err != nil {
		return Response{}, err
	}
	out := Response{Status: resp.GetStatus(), Reason: resp.GetReason()}
	if out.Status == pb.Status_RATE_LIMITED {
		return out, ErrRateLimited
	}
	return out, nil
}
