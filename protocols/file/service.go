package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/natterim/natter/protocols/file/pb"
	"github.com/natterim/natter/protocols/wire"
)

// Provider is the sending node's side of the service: the files it
// offered.
type Provider interface {
	// Source returns what to send for transfer id, asked for by peer from
	// over conn (kind is KindHashes or KindData). It returns an error made
	// with Refuse to answer with another status; any other error answers
	// FAILED with a generic reason and is logged at Debug.
	Source(ctx context.Context, from peer.ID, id TransferID, conn network.Conn, kind pb.Kind) (*Source, error)
}

// Source is one offered file, as the service sends it.
type Source struct {
	// Size and ChunkSize are the offer's.
	Size      int64
	ChunkSize int
	// Sums is the chunk hash list (KindHashes).
	Sums []byte
	// File is the file's content (KindData); the service closes it.
	File io.ReaderAt
	// Close releases File; may be nil.
	Close func() error
	// Check is called every few MiB while sending and at the end; an
	// error (the file changed on disk) aborts the stream. May be nil.
	Check func() error
	// Progress is called with the offset up to which data was written to
	// the stream. May be nil.
	Progress func(offset int64)
	// Done is called once when the stream ends: err is nil if every byte
	// asked for was written. May be nil.
	Done func(err error)
}

// Option configures a Service.
type Option func(*config)

type config struct {
	log      *slog.Logger
	metrics  *wire.Metrics
	relayMax int64
	stall    time.Duration
	perPeer  int
}

// Defaults of the options.
const (
	// DefaultRelayMax is the largest file sent over a relayed connection.
	DefaultRelayMax = 8 << 20
	// DefaultStallTimeout ends a stream that moved no data for this long.
	DefaultStallTimeout = 30 * time.Second
	// DefaultRequestTimeout bounds reading the request.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultStreamsPerPeer is how many transfers one peer may pull at
	// once.
	DefaultStreamsPerPeer = 4
	// pieceSize is the unit of reads and writes on both sides.
	pieceSize = 1 << 20
	// checkEvery is how often (in bytes) the sender calls Source.Check.
	checkEvery = 64 << 20
	// readAhead is how many pieces the sender reads ahead of the stream.
	readAhead = 3
)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithMetrics counts failed streams (default: none).
func WithMetrics(m *wire.Metrics) Option { return func(c *config) { c.metrics = m } }

// WithRelayMax sets the largest file sent over a relayed (limited)
// connection (default DefaultRelayMax; 0 sends nothing over relays).
func WithRelayMax(n int64) Option { return func(c *config) { c.relayMax = n } }

// WithStallTimeout sets how long a stream may move no data (default
// DefaultStallTimeout).
func WithStallTimeout(d time.Duration) Option { return func(c *config) { c.stall = d } }

// WithStreamsPerPeer sets how many transfers one peer may pull at once
// (default DefaultStreamsPerPeer); more are answered BUSY.
func WithStreamsPerPeer(n int) Option { return func(c *config) { c.perPeer = n } }

// Service serves the files this node offered.
type Service struct {
	h   host.Host
	p   Provider
	cfg config
	t   *wire.Tracker // the handlers in flight; its context aborts them on Close

	closeOnce sync.Once

	mu     sync.Mutex // guards active
	active map[peer.ID]int
}

// New registers the file handler on h.
func New(h host.Host, p Provider, opts ...Option) *Service {
	cfg := config{
		log:      slog.New(slog.DiscardHandler),
		relayMax: DefaultRelayMax,
		stall:    DefaultStallTimeout,
		perPeer:  DefaultStreamsPerPeer,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	s := &Service{h: h, p: p, cfg: cfg, t: wire.NewTracker(), active: map[peer.ID]int{}}
	h.SetStreamHandler(ID, s.t.Handler(s.handle))
	return s
}

// Close removes the handler, aborts the streams being served and waits
// for every handler in flight, including those still reading a request. It
// is safe to call more than once.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.h.RemoveStreamHandler(ID)
		s.t.Close()
	})
	return nil
}

// acquire counts a transfer of p in, unless p has perPeer already or the
// service is closed.
func (s *Service) acquire(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t.Context().Err() != nil || s.active[p] >= s.cfg.perPeer {
		return false
	}
	s.active[p]++
	return true
}

func (s *Service) release(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[p]--; s.active[p] <= 0 {
		delete(s.active, p)
	}
}

// handle serves one stream. On Close the tracker resets it, so that
// blocked reads and writes return, and cancels the provider's context.
func (s *Service) handle(st network.Stream) {
	from := st.Conn().RemotePeer()
	err := wire.Serve(st, wire.ServeOptions{Service: ServiceName, Memory: readAhead*pieceSize + MaxHashesSize}, func(st network.Stream) error {
		return s.serve(st, from)
	})
	if err != nil {
		s.cfg.metrics.StreamError("file", err)
		s.cfg.log.Debug("file stream ended", "peer", from.ShortString(), "err", err)
	}
}

func (s *Service) serve(st network.Stream, from peer.ID) error {
	if err := st.SetReadDeadline(time.Now().Add(DefaultRequestTimeout)); err != nil {
		return err
	}
	var req pb.Request
	if err := wire.ReadMsg(st, &req, MaxRequestSize); err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if err := validateRequest(&req); err != nil {
		return err
	}
	_ = st.SetReadDeadline(time.Time{})
	if !s.acquire(from) {
		return s.answer(st, &pb.Response{Status: pb.Status_BUSY, Reason: fmt.Sprintf("at most %d transfers at once", s.cfg.perPeer)})
	}
	defer s.release(from)

	id := TransferID(req.GetTransfer())
	src, err := s.p.Source(s.t.Context(), from, id, st.Conn(), req.GetKind())
	if err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			return s.answer(st, &pb.Response{Status: re.Status, Reason: clip(re.Reason), RelayMax: uint64(max(re.RelayMax, 0))})
		}
		s.cfg.log.Debug("cannot serve a file", "peer", from.ShortString(), "transfer", id, "err", err)
		return s.answer(st, &pb.Response{Status: pb.Status_FAILED, Reason: "the sender cannot read the file"})
	}
	if src.Close != nil {
		defer src.Close()
	}
	if limited(st.Conn()) && src.Size > s.cfg.relayMax {
		if src.Done != nil {
			src.Done(&RefusedError{Status: pb.Status_RELAY_LIMIT, RelayMax: s.cfg.relayMax})
		}
		return s.answer(st, &pb.Response{Status: pb.Status_RELAY_LIMIT, RelayMax: uint64(max(s.cfg.relayMax, 0)),
			Reason: "ask again over a direct link"})
	}
	switch req.GetKind() {
	case pb.Kind_HASHES:
		err = s.sendHashes(st, src)
	default:
		err = s.sendData(st, src, int64(req.GetFromChunk()))
	}
	if src.Done != nil {
		src.Done(err)
	}
	return err
}

// answer writes a final response and ends the exchange cleanly.
func (s *Service) answer(st network.Stream, r *pb.Response) error {
	if err := st.SetWriteDeadline(time.Now().Add(DefaultRequestTimeout)); err != nil {
		return err
	}
	return wire.WriteMsg(st, r, MaxResponseSize)
}

func (s *Service) sendHashes(st network.Stream, src *Source) error {
	n := ChunkCount(src.Size, src.ChunkSize)
	if len(src.Sums) != n*SumLen {
		return fmt.Errorf("provider gave %d bytes of sums for %d chunks", len(src.Sums), n)
	}
	if err := s.answer(st, &pb.Response{Status: pb.Status_OK, Length: uint64(n)}); err != nil {
		return err
	}
	for off := 0; off < len(src.Sums); off += SumsPerFrame * SumLen {
		end := min(off+SumsPerFrame*SumLen, len(src.Sums))
		if err := st.SetWriteDeadline(time.Now().Add(s.cfg.stall)); err != nil {
			return err
		}
		if err := wire.WriteMsg(st, &pb.Hashes{Sums: src.Sums[off:end]}, MaxHashesSize); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) sendData(st network.Stream, src *Source, fromChunk int64) error {
	if src.File == nil {
		return errors.New("provider gave no file")
	}
	start := fromChunk * int64(src.ChunkSize)
	if fromChunk > 0 && start >= src.Size {
		return fmt.Errorf("start chunk %d is past the end: %w", fromChunk, wire.ErrInvalid)
	}
	length := src.Size - start
	if err := s.answer(st, &pb.Response{Status: pb.Status_OK, Length: uint64(length)}); err != nil {
		return err
	}
	// A reader goroutine keeps readAhead pieces ready, so that reading
	// the file and writing the stream overlap.
	type piece struct {
		buf []byte
		n   int
		err error
	}
	free := make(chan []byte, readAhead)
	for range readAhead {
		free <- make([]byte, pieceSize)
	}
	full := make(chan piece, readAhead)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(full)
		for off := start; off < src.Size; {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n := int(min(int64(len(buf)), src.Size-off))
			_, err := src.File.ReadAt(buf[:n], off)
			if errors.Is(err, io.EOF) {
				err = errors.New("the file is shorter than offered")
			}
			select {
			case full <- piece{buf, n, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
			off += int64(n)
		}
	}()
	defer wg.Wait()
	defer close(stop)

	var (
		off       = start
		lastDL    time.Time
		nextCheck = start + checkEvery
	)
	for p := range full {
		if p.err != nil {
			return fmt.Errorf("read file: %w", p.err)
		}
		// Moving the deadline costs a timer reset: do it a few times per
		// stall period, not for every piece.
		if now := time.Now(); now.Sub(lastDL) > s.cfg.stall/8 {
			if err := st.SetWriteDeadline(now.Add(s.cfg.stall)); err != nil {
				return err
			}
			lastDL = now
		}
		if _, err := st.Write(p.buf[:p.n]); err != nil {
			return fmt.Errorf("write data: %w", err)
		}
		off += int64(p.n)
		free <- p.buf
		if src.Progress != nil {
			src.Progress(off)
		}
		if src.Check != nil && (off >= nextCheck || off == src.Size) {
			if err := src.Check(); err != nil {
				return err
			}
			nextCheck = off + checkEvery
		}
	}
	return nil
}

// limited reports whether c is a relayed (limited) connection.
func limited(c network.Conn) bool {
	if c.Stat().Limited {
		return true
	}
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// clip makes a reason fit a response: one line, at most MaxReasonBytes.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > MaxReasonBytes {
		s = strings.ToValidUTF8(s[:MaxReasonBytes], "")
	}
	return s
}
