package presence

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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
	// Timeout bounds one push.
	Timeout = 10 * time.Second
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

// Service receives presence pushes.
type Service struct {
	h       host.Host
	r       Receiver
	log     *slog.Logger
	metrics *wire.Metrics
	ctx     context.Context
	stop    context.CancelFunc
}

// NewService registers the handler on h. log and m may be nil.
func NewService(h host.Host, r Receiver, log *slog.Logger, m *wire.Metrics) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{h: h, r: r, log: log, metrics: m, ctx: ctx, stop: cancel}
	h.SetStreamHandler(ID, s.handle)
	return s
}

// Close unregisters the handler.
func (s *Service) Close() {
	s.h.RemoveStreamHandler(ID)
	s.stop()
}

func (s *Service) handle(st network.Stream) {
	from := st.Conn().RemotePeer()
	err := wire.Serve(st, wire.ServeOptions{Service: ServiceName, Memory: 2 * MaxFrameSize, Timeout: Timeout}, func(st network.Stream) error {
		if !s.r.Allow(s.ctx, from) {
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
		s.metrics.StreamError("presence", err)
		s.log.Debug("presence stream ended", "peer", from.ShortString(), "err", err)
	}
}

// Push sends p to peer over an existing connection (relayed ones included;
// it does not dial) and waits for the ack.
func Push(ctx context.Context, h host.Host, to peer.ID, p Presence) error {
	if err := ValidateMessage(p.Message); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	st, err := h.NewStream(network.WithAllowLimitedConn(network.WithNoDial(ctx, "presence"), "presence"), to, ID)
	if err != nil {
		return fmt.Errorf("open presence stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if err := wire.RoundTrip(st, toWire(p), MaxFrameSize, &pb.Ack{}, MaxFrameSize); err != nil {
		return fmt.Errorf("presence push: %w", err)
	}
	return nil
}
