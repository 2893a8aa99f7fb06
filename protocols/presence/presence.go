package presence

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/natterim/natter/protocols/presence/pb"
	"github.com/natterim/natter/protocols/wire"
)

// ID is the protocol ID.
const ID = protocol.ID("/natter/presence/1.0.0")

// ServiceName is the resource-manager service of presence streams.
const ServiceName = "natter.presence"

const (
	// MaxMessageBytes is the longest status message.
	MaxMessageBytes = 256
	// MaxFrameSize bounds one frame.
	MaxFrameSize = 1 << 10
	// DefaultTimeout bounds one push, on both sides.
	DefaultTimeout = 10 * time.Second
)

// States as users and the control API name them.
const (
	Online    = "online"
	Away      = "away"
	Busy      = "busy"
	Invisible = "invisible"
	Offline   = "offline"
)

// ParseState checks a state name a user may set (online, away, busy,
// invisible).
func ParseState(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case Online:
		return Online, nil
	case Away:
		return Away, nil
	case Busy:
		return Busy, nil
	case Invisible:
		return Invisible, nil
	}
	return "", fmt.Errorf("unknown presence %q (online, away, busy or invisible)", s)
}

// Presence is one pushed state.
type Presence struct {
	// State is online, away, busy or offline (invisible is sent as
	// offline).
	State          string
	Message        string
	ProfileVersion uint64
	// Set is when the sender set this state (its clock).
	Set time.Time
}

func toWire(p Presence) *pb.Presence {
	st := pb.State_OFFLINE
	switch p.State {
	case Online:
		st = pb.State_ONLINE
	case Away:
		st = pb.State_AWAY
	case Busy:
		st = pb.State_BUSY
	}
	return &pb.Presence{State: st, Message: p.Message, ProfileVersion: p.ProfileVersion, Seq: uint64(max(p.Set.UnixMilli(), 0))}
}

// decode validates a received frame and converts it.
func decode(m *pb.Presence) (Presence, error) {
	var state string
	switch m.GetState() {
	case pb.State_ONLINE:
		state = Online
	case pb.State_AWAY:
		state = Away
	case pb.State_BUSY:
		state = Busy
	case pb.State_OFFLINE:
		state = Offline
	default:
		return Presence{}, fmt.Errorf("unknown state %d: %w", m.GetState(), wire.ErrInvalid)
	}
	if err := ValidateMessage(m.GetMessage()); err != nil {
		return Presence{}, err
	}
	if m.GetSeq() > 1<<62 {
		return Presence{}, fmt.Errorf("seq %d out of range: %w", m.GetSeq(), wire.ErrInvalid)
	}
	return Presence{State: state, Message: m.GetMessage(), ProfileVersion: m.GetProfileVersion(), Set: time.UnixMilli(int64(m.GetSeq()))}, nil
}

// ValidateMessage checks a status message: UTF-8, no control characters,
// at most MaxMessageBytes.
func ValidateMessage(s string) error { return wire.ValidateText("status message", s, MaxMessageBytes) }

// Receiver is the node side.
type Receiver interface {
	// Allow reports whether p may push presence to us (an accepted
	// contact).
	Allow(ctx context.Context, p peer.ID) bool
	// Presence applies a push from p.
	Presence(from peer.ID, conn network.Conn, p Presence)
}

// config is what the options set; it starts from the defaults.
type config struct {
	timeout time.Duration
	log     *slog.Logger
	metrics *wire.Metrics
}

// Option configures a Service.
type Option func(*config)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithMetrics counts failed streams (label protocol = "presence").
func WithMetrics(m *wire.Metrics) Option { return func(c *config) { c.metrics = m } }

// Service receives presence pushes.
type Service struct {
	h   host.Host
	r   Receiver
	cfg config
	t   *wire.Tracker

	closeOnce sync.Once
}

// New registers the handler on h; r decides who may push and applies
// the pushes.
func New(h host.Host, r Receiver, opts ...Option) *Service {
	cfg := config{timeout: DefaultTimeout, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Service{h: h, r: r, cfg: cfg, t: wire.NewTracker()}
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
		if !s.r.Allow(s.t.Context(), from) {
			return fmt.Errorf("presence from %s, not a contact: %w", from.ShortString(), wire.ErrRefused)
		}
		var m pb.Presence
		if err := wire.ReadMsg(st, &m, MaxFrameSize); err != nil {
			return err
		}
		p, err := decode(&m)
		if err != nil {
			return err
		}
		s.r.Presence(from, st.Conn(), p)
		return wire.WriteMsg(st, &pb.Ack{}, MaxFrameSize)
	})
	if err != nil {
		s.cfg.metrics.StreamError("presence", err)
		s.cfg.log.Debug("presence stream ended", "peer", from.ShortString(), "err", err)
	}
}

// Push sends p to peer over an existing connection (relayed ones included;
// it does not dial) and waits for the ack.
func Push(ctx context.Context, h host.Host, to peer.ID, p Presence) error {
	if err := ValidateMessage(p.Message); err != nil {
		return err
	}
	err := wire.Call(ctx, h, to, ID, wire.CallOptions{
		Service:      ServiceName,
		AllowLimited: true,
		NoDial:       true,
		RequestMax:   MaxFrameSize,
		ResponseMax:  MaxFrameSize,
		Timeout:      DefaultTimeout,
	}, toWire(p), &pb.Ack{})
	if err != nil {
		return fmt.Errorf("presence push: %w", err)
	}
	return nil
}
