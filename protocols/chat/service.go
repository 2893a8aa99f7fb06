package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/wire"
)

// Receiver is the node side of the service: who may chat, and where
// batches go.
type Receiver interface {
	// Allow reports whether p may send chat messages at all (an
	// accepted contact). Streams from others are reset.
	Allow(ctx context.Context, p peer.ID) bool
	// Receive handles one batch from p, in order: it must store every
	// durable message (de-duplicating by id) and apply receipts in one
	// durable write before it returns nil. Messages of unknown kinds have
	// already been removed. An error leaves the batch unacknowledged and
	// resets the stream; the sender will send it again.
	Receive(ctx context.Context, from peer.ID, conn network.Conn, msgs []*pb.Message) error
}

// Option configures a Service.
type Option func(*config)

type config struct {
	idle    time.Duration // IdleTimeout
	store   time.Duration // bounds one Receive call
	write   time.Duration // bounds writing one ack, and reading a started frame
	log     *slog.Logger
	metrics *wire.Metrics
}

// Defaults of a Service.
const (
	DefaultIdleTimeout  = 5 * time.Minute
	DefaultStoreTimeout = 30 * time.Second
	DefaultWriteTimeout = 30 * time.Second
)

// WithIdleTimeout closes a stream that carried nothing for d (cleanly:
// everything on it was acknowledged). Default DefaultIdleTimeout.
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.idle = d
		}
	}
}

// WithStoreTimeout bounds one Receive call. Default DefaultStoreTimeout.
func WithStoreTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.store = d
		}
	}
}

// WithWriteTimeout bounds writing one ack, and reading the rest of a frame
// once its first byte arrived. Default DefaultWriteTimeout.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.write = d
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

// WithMetrics counts reset streams
// (natter_protocol_stream_errors_total{protocol="chat"}).
func WithMetrics(m *wire.Metrics) Option { return func(c *config) { c.metrics = m } }

// Service receives chat streams.
type Service struct {
	h   host.Host
	r   Receiver
	cfg config
	t   *wire.Tracker // the handlers in flight; its context aborts stores on Close

	closeOnce sync.Once
}

// New registers the chat handler on h; batches go to r. Close undoes it.
func New(h host.Host, r Receiver, opts ...Option) *Service {
	cfg := config{
		idle:  DefaultIdleTimeout,
		store: DefaultStoreTimeout,
		write: DefaultWriteTimeout,
		log:   slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Service{h: h, r: r, cfg: cfg, t: wire.NewTracker()}
	h.SetStreamHandler(ID, s.t.Handler(s.handle))
	return s
}

// Close removes the handler, aborts stores in progress, resets the
// streams being served and waits for their handlers. It is idempotent.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.h.RemoveStreamHandler(ID)
		s.t.Close()
	})
	return nil
}

func (s *Service) handle(st network.Stream) {
	from := st.Conn().RemotePeer()
	err := wire.Serve(st, wire.ServeOptions{Service: ServiceName, Memory: MaxFrameSize}, func(st network.Stream) error {
		if !s.r.Allow(s.t.Context(), from) {
			return fmt.Errorf("chat from %s, not a contact: %w", from.ShortString(), wire.ErrRefused)
		}
		return s.serve(st, from)
	})
	if err != nil {
		s.cfg.metrics.StreamError("chat", err)
		s.cfg.log.Debug("chat stream ended", "peer", from.ShortString(), "err", err)
	}
}

func (s *Service) serve(st network.Stream, from peer.ID) error {
	r := bufio.NewReaderSize(st, 32<<10)
	for {
		// Between frames every batch has been acknowledged, so a sender
		// that went quiet (or closed) ends the stream cleanly; inside a
		// frame a stall is an error.
		if err := st.SetReadDeadline(time.Now().Add(s.cfg.idle)); err != nil {
			return err
		}
		if _, err := r.Peek(1); err != nil {
			if errors.Is(err, io.EOF) || wire.IsTimeout(err) {
				return nil
			}
			return err
		}
		if err := st.SetReadDeadline(time.Now().Add(s.cfg.write)); err != nil {
			return err
		}
		var f pb.Frame
		if err := wire.ReadMsg(r, &f, MaxFrameSize); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the sender closed: done
			}
			return err
		}
		if err := validateBatch(&f); err != nil {
			return err
		}
		msgs := f.GetMessages()
		acks := make([][]byte, 0, len(msgs))
		known := msgs[:0:0]
		for _, m := range msgs {
			acks = append(acks, m.GetId())
			if !Known(m.GetKind()) {
				s.cfg.log.Debug("ignoring chat message of unknown kind", "peer", from.ShortString(), "kind", int32(m.GetKind()))
				continue
			}
			known = append(known, m)
		}
		if len(known) > 0 {
			ctx, cancel := context.WithTimeout(s.t.Context(), s.cfg.store)
			err := s.r.Receive(ctx, from, st.Conn(), known)
			cancel()
			if err != nil {
				return fmt.Errorf("store batch: %w", err)
			}
		}
		if err := st.SetWriteDeadline(time.Now().Add(s.cfg.write)); err != nil {
			return err
		}
		if err := wire.WriteMsg(st, &pb.Frame{Acks: acks}, MaxFrameSize); err != nil {
			return err
		}
	}
}

// Stream is the opener's side of a chat stream: it writes batches and
// reads acks, which may be done from two goroutines at once.
type Stream struct {
	s  network.Stream
	r  *bufio.Reader
	to time.Duration
}

// Open opens a chat stream to p over an existing connection (relayed ones
// included); it does not dial. ackTimeout bounds how long a sent batch may
// wait for its ack (see Send).
func Open(ctx context.Context, h host.Host, p peer.ID, ackTimeout time.Duration) (*Stream, error) {
	ctx = network.WithAllowLimitedConn(network.WithNoDial(ctx, "chat"), "chat")
	s, err := h.NewStream(ctx, p, ID)
	if err != nil {
		return nil, fmt.Errorf("open chat stream: %w", err)
	}
	if err := s.Scope().SetService(ServiceName); err != nil {
		s.Reset()
		return nil, fmt.Errorf("open chat stream: %w", err)
	}
	return &Stream{s: s, r: bufio.NewReaderSize(s, 4<<10), to: ackTimeout}, nil
}

// Conn is the connection the stream runs on.
func (c *Stream) Conn() network.Conn { return c.s.Conn() }

// Send writes one batch. It also moves the read deadline to ackTimeout
// from now, so a peer that stops acknowledging makes ReadAck fail.
func (c *Stream) Send(msgs []*pb.Message) error {
	if len(msgs) == 0 || len(msgs) > MaxBatch {
		return fmt.Errorf("batch of %d messages (1..%d)", len(msgs), MaxBatch)
	}
	dl := time.Now().Add(c.to)
	if err := c.s.SetWriteDeadline(dl); err != nil {
		return err
	}
	if err := c.s.SetReadDeadline(dl); err != nil {
		return err
	}
	return wire.WriteMsg(c.s, &pb.Frame{Messages: msgs}, MaxFrameSize)
}

// BatchLen returns how many of msgs, from the first, fit in one frame
// for Send: at most MaxBatch, and their encoding within MaxFrameSize
// (which 256 texts of up to MaxTextBytes each would overflow). It is at
// least 1 when msgs is not empty: one valid message always fits.
func BatchLen(msgs []*pb.Message) int {
	size := 0
	for i, m := range msgs {
		if i == MaxBatch {
			return i
		}
		n := proto.Size(m)
		// The field's tag and length prefix: at most 1 + 4 bytes.
		size += n + 1 + protowire.SizeVarint(uint64(n))
		if size > MaxFrameSize && i > 0 {
			return i
		}
	}
	return len(msgs)
}

// ReadAck blocks for the next ack frame and returns its ids.
func (c *Stream) ReadAck() ([]MsgID, error) {
	var f pb.Frame
	if err := wire.ReadMsg(c.r, &f, MaxFrameSize); err != nil {
		return nil, err
	}
	if err := validateAck(&f); err != nil {
		return nil, err
	}
	ids := make([]MsgID, len(f.GetAcks()))
	for i, a := range f.GetAcks() {
		ids[i] = MsgID(a)
	}
	return ids, nil
}

// Idle clears the read deadline Send set: call it when nothing is in
// flight, so that a quiet stream is not mistaken for a dead one.
func (c *Stream) Idle() error { return c.s.SetReadDeadline(time.Time{}) }

// CloseWrite tells the receiver no more batches follow; acks for the
// batches in flight still arrive (within ackTimeout), then ReadAck returns
// io.EOF.
func (c *Stream) CloseWrite() error {
	if err := c.s.SetReadDeadline(time.Now().Add(c.to)); err != nil {
		return err
	}
	return c.s.CloseWrite()
}

// Close closes the stream in both directions.
func (c *Stream) Close() error { return c.s.Close() }

// Reset aborts the stream.
func (c *Stream) Reset() { _ = c.s.Reset() }
