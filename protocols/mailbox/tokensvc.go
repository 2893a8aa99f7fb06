package mailbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/mailbox/pb"
	"github.com/natterim/natter/protocols/wire"
)

// tokenFrameSize bounds a token push and its ack.
const tokenFrameSize = MaxTokenSize + 64

// DefaultTokenTimeout bounds one token push a TokenService receives.
const DefaultTokenTimeout = 10 * time.Second

// TokenReceiver is the node side of the token protocol.
type TokenReceiver interface {
	// Allow reports whether p may give us tokens (an accepted contact).
	Allow(ctx context.Context, p peer.ID) bool
	// Token keeps a verified token: from lets us deposit in its mailbox
	// until t.Expires. An error resets the stream (the issuer retries on
	// its next connection).
	Token(ctx context.Context, from peer.ID, t Token) error
}

// TokenService receives deposit tokens from contacts on TokenID.
type TokenService struct {
	h   host.Host
	r   TokenReceiver
	cfg config
	t   *wire.Tracker // the handlers in flight

	closeOnce sync.Once
}

// NewTokenService registers the handler on h; r keeps what it receives.
// It reads WithLogger, WithMetrics, WithClock (token expiry) and
// WithTimeout. Close removes the handler.
func NewTokenService(h host.Host, r TokenReceiver, opts ...Option) *TokenService {
	s := &TokenService{h: h, r: r, cfg: newConfig(opts), t: wire.NewTracker()}
	if s.cfg.timeout <= 0 {
		s.cfg.timeout = DefaultTokenTimeout
	}
	h.SetStreamHandler(TokenID, s.t.Handler(s.handle))
	return s
}

// Close removes the handler, resets the streams being served and waits
// for their handlers to return. It is idempotent.
func (s *TokenService) Close() error {
	s.closeOnce.Do(func() {
		s.h.RemoveStreamHandler(TokenID)
		s.t.Close()
	})
	return nil
}

func (s *TokenService) handle(st network.Stream) {
	from := st.Conn().RemotePeer()
	err := wire.Serve(st, wire.ServeOptions{Service: TokenServiceName, Memory: 2 * tokenFrameSize, Timeout: s.cfg.timeout}, func(st network.Stream) error {
		ctx, cancel := context.WithTimeout(s.t.Context(), s.cfg.timeout)
		defer cancel()
		if !s.r.Allow(ctx, from) {
			return fmt.Errorf("token from %s, not a contact: %w", from.ShortString(), wire.ErrRefused)
		}
		var m pb.TokenPush
		if err := wire.ReadMsg(st, &m, tokenFrameSize); err != nil {
			return err
		}
		t, err := VerifyToken(m.GetToken(), from, s.h.ID(), s.cfg.now())
		if err != nil {
			return fmt.Errorf("%w: %w", err, wire.ErrInvalid)
		}
		if err := s.r.Token(ctx, from, t); err != nil {
			return fmt.Errorf("keep token: %w", err)
		}
		return wire.WriteMsg(st, &pb.TokenAck{}, tokenFrameSize)
	})
	if err != nil {
		s.cfg.metrics.StreamError(metricProto+"-token", err)
		s.cfg.log.Debug("mailbox token stream ended", "peer", from.ShortString(), "err", err)
	}
}
