package profile

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/natterim/natter/protocols/presence"
	"github.com/natterim/natter/protocols/profile/pb"
	"github.com/natterim/natter/protocols/wire"
)

// ID is the protocol ID.
const ID = protocol.ID("/natter/profile/1.0.0")

// ServiceName is the resource-manager service of profile streams.
const ServiceName = "natter.profile"

const (
	// MaxNameBytes is the longest display name (as in friend requests).
	MaxNameBytes = 64
	// MaxStatusBytes is the longest status message: the one presence
	// carries.
	MaxStatusBytes = presence.MaxMessageBytes
	// MaxFrameSize bounds a profile: the avatar plus the texts.
	MaxFrameSize = MaxAvatarBytes + 1<<10
	// maxRequestSize bounds a request (empty today).
	maxRequestSize = 64
)

// Profile is what a contact sees of a user.
type Profile struct {
	Version    uint64
	Name       string
	Status     string
	Avatar     []byte
	AvatarType string
}

// Validate checks every field as a receiver must: texts short, valid
// UTF-8, no control characters; the avatar as ValidateAvatar. Errors wrap
// wire.ErrInvalid.
func (p Profile) Validate() error {
	if err := wire.ValidateText("display name", p.Name, MaxNameBytes); err != nil {
		return err
	}
	if err := wire.ValidateText("status message", p.Status, MaxStatusBytes); err != nil {
		return err
	}
	return ValidateAvatar(p.Avatar, p.AvatarType)
}

func toWire(p Profile) *pb.Profile {
	return &pb.Profile{Version: p.Version, Name: p.Name, Status: p.Status, Avatar: p.Avatar, AvatarType: p.AvatarType}
}

func fromWire(m *pb.Profile) (Profile, error) {
	p := Profile{Version: m.GetVersion(), Name: m.GetName(), Status: m.GetStatus(), Avatar: m.GetAvatar(), AvatarType: m.GetAvatarType()}
	return p, p.Validate()
}

// Owner is the node side of the service.
type Owner interface {
	// Allow reports whether p may fetch our profile (an accepted
	// contact).
	Allow(ctx context.Context, p peer.ID) bool
	// Profile returns our current profile.
	Profile(ctx context.Context) (Profile, error)
}

// Defaults of a Service (see the options).
const (
	// DefaultTimeout bounds one exchange: an avatar may cross a slow
	// relay.
	DefaultTimeout = 30 * time.Second
	// DefaultRate and DefaultBurst: 10 fetches at once, then one every
	// 6 s per peer.
	DefaultRate  = 1.0 / 6
	DefaultBurst = 10
)

// config is what the options set; it starts from the defaults.
type config struct {
	log     *slog.Logger
	metrics *wire.Metrics
	timeout time.Duration
	rate    float64
	burst   int
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

// WithMetrics counts failed streams (label protocol = "profile").
func WithMetrics(m *wire.Metrics) Option { return func(c *config) { c.metrics = m } }

// WithRateLimit limits fetches per peer: burst at once, then one every
// 1/perSecond (default DefaultBurst, DefaultRate). The excess is reset and
// counted as rate_limited.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(c *config) {
		if perSecond > 0 && burst > 0 {
			c.rate, c.burst = perSecond, burst
		}
	}
}

// Service answers profile fetches.
type Service struct {
	h     host.Host
	owner Owner
	cfg   config
	lim   *wire.PeerLimiter
	t     *wire.Tracker

	closeOnce sync.Once
}

// New registers the profile handler on h; owner decides who may fetch and
// what they get.
func New(h host.Host, owner Owner, opts ...Option) *Service {
	cfg := config{log: slog.New(slog.DiscardHandler), timeout: DefaultTimeout, rate: DefaultRate, burst: DefaultBurst}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Service{h: h, owner: owner, cfg: cfg, lim: wire.NewPeerLimiter(cfg.rate, cfg.burst), t: wire.NewTracker()}
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
		if !s.owner.Allow(s.t.Context(), from) {
			return fmt.Errorf("profile fetch from %s, not a contact: %w", from.ShortString(), wire.ErrRefused)
		}
		if !s.lim.Allow(from) {
			return fmt.Errorf("profile fetch from %s: %w", from.ShortString(), wire.ErrRateLimited)
		}
		var req pb.Request
		if err := wire.ReadMsg(st, &req, maxRequestSize); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(s.t.Context(), s.cfg.timeout)
		p, err := s.owner.Profile(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("read own profile: %w", err)
		}
		// Never send what a contact would refuse.
		if err := p.Validate(); err != nil {
			return fmt.Errorf("own profile: %w", err)
		}
		return wire.WriteMsg(st, toWire(p), MaxFrameSize)
	})
	if err != nil {
		s.cfg.metrics.StreamError("profile", err)
		s.cfg.log.Debug("profile stream ended", "peer", from.ShortString(), "err", err)
	}
}

// Fetch asks p for its profile over an existing connection (relayed ones
// included; it does not dial) and validates everything it receives: a
// profile that is too large, has bad texts or an avatar that is not a
// small PNG or JPEG is refused with an error wrapping wire.ErrInvalid, and
// the stream is reset. The caller counts failures.
func Fetch(ctx context.Context, h host.Host, p peer.ID) (Profile, error) {
	var m pb.Profile
	err := wire.Call(ctx, h, p, ID, wire.CallOptions{
		Service:      ServiceName,
		AllowLimited: true,
		NoDial:       true,
		RequestMax:   maxRequestSize,
		ResponseMax:  MaxFrameSize,
		Memory:       MaxFrameSize,
		Timeout:      DefaultTimeout,
	}, &pb.Request{}, &m)
	if err != nil {
		return Profile{}, fmt.Errorf("profile request: %w", err)
	}
	prof, err := fromWire(&m)
	if err != nil {
		return Profile{}, fmt.Errorf("profile of %s: %w", p.ShortString(), err)
	}
	return prof, nil
}
