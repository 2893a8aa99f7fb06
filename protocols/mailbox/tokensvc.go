package mailbox

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/mailbox/pb"
	"github.com/natterim/natter/protocols/wire"
)

// tokenFrameSize bounds a token push and its ack.
const tokenFrameSize = MaxTokenSize + 64

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
	ctx context.Context
	end context.CancelFunc
}

// NewTokenService registers the handler on h.
func NewTokenService(h host.Host, r TokenReceiver, opts ...Option) *TokenService {
	s := &TokenService{h: h, r: r, cfg: newConfig(opts)}
	s.ctx, s.end = context.WithCancel(context.Background())
	h.SetStreamHandler(TokenID, s.handle)
	return s
}

// Close unregisters the handler. It is idempotent.
func (s *TokenService) Close() {
	s.h.RemoveStreamHandler(TokenID)
	s.end()
}

func (s *TokenService) handle(st network.Stream) {
	from := st.Conn().RemotePeer()
	err := wire.Serve(st, wire.ServeOptions{Service: TokenServiceName, Memory: 2 * tokenFrameSize, Timeout: s.cfg.timeout}, func(st network.Stream) error {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.timeout)
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

// PushToken gives token (issued by us to peer to) to it over an existing
// connection (relayed ones included; it does not dial) and waits for the
// ack.
func PushToken(ctx context.Context, h host.Host, to peer.ID, token []byte) error {
	if len(token) == 0 || len(token) > MaxTokenSize {
		return fmt.Errorf("token of %d bytes (1..%d)", len(token), MaxTokenSize)
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultClientTimeout)
	defer cancel()
	st, err := h.NewStream(network.WithAllowLimitedConn(network.WithNoDial(ctx, "mailbox token"), "mailbox token"), to, TokenID)
	if err != nil {
		return fmt.Errorf("open token stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if err := wire.RoundTrip(st, &pb.TokenPush{Token: token}, tokenFrameSize, &pb.TokenAck{}, tokenFrameSize); err != nil {
		return fmt.Errorf("token push: %w", err)
	}
	return nil
}
