package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// Handler is the protocol-specific part of a stream handler. It returns a
// non-nil error for anything that should reset the stream.
type Handler func(s network.Stream) error

// ServeOptions are the per-service parameters of the handler skeleton.
type ServeOptions struct {
	// Service is the resource-manager service name (e.g. "natter.chat").
	Service string
	// Memory is reserved from the stream's scope for the life of the
	// handler; it should cover the largest frame the handler buffers.
	Memory int
	// Timeout is the deadline for the whole exchange.
	Timeout time.Duration
}

// Serve runs h on s inside the skeleton every natter handler shares: it
// attaches the stream to the resource-manager service, reserves memory, sets
// a deadline, runs h, and then closes the stream if h succeeded or resets it
// if h failed. The error is returned for the caller to log at Debug (any
// peer on the internet can cause one) and to count.
func Serve(s network.Stream, o ServeOptions, h Handler) error {
	if err := s.Scope().SetService(o.Service); err != nil {
		s.Reset()
		return fmt.Errorf("attach stream to %s: %w", o.Service, err)
	}
	if o.Memory > 0 {
		if err := s.Scope().ReserveMemory(o.Memory, network.ReservationPriorityAlways); err != nil {
			s.Reset()
			return fmt.Errorf("reserve memory: %w", err)
		}
		defer s.Scope().ReleaseMemory(o.Memory)
	}
	if o.Timeout > 0 {
		if err := s.SetDeadline(time.Now().Add(o.Timeout)); err != nil {
			s.Reset()
			return fmt.Errorf("set deadline: %w", err)
		}
	}
	if err := h(s); err != nil {
		s.Reset()
		return err
	}
	return s.Close()
}

// Reason sorts a stream error into a small fixed set of metric labels.
func Reason(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrTooLarge):
		return "oversize"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrRefused):
		return "refused"
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	case IsTimeout(err), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, network.ErrReset):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	default:
		return "other"
	}
}

// IsTimeout reports whether err is a stream deadline expiring. Muxers
// differ: yamux returns its own net.Error with Timeout() true, QUIC wraps
// os.ErrDeadlineExceeded.
func IsTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Sentinel errors that protocol packages wrap so that Reason can label them.
var (
	// ErrInvalid marks a well-formed message whose fields fail validation.
	ErrInvalid = errors.New("invalid message")
	// ErrRefused marks a request refused by policy (not a contact, not
	// authorised, blocked).
	ErrRefused = errors.New("refused")
	// ErrRateLimited marks a request refused because the peer is over its
	// rate limit.
	ErrRateLimited = errors.New("rate limited")
)

// Metrics counts failed streams per protocol and reason. A nil *Metrics is
// valid and counts nothing, so services can take it as an optional option.
type Metrics struct {
	streamErrors *prometheus.CounterVec
}

// NewMetrics creates natter's protocol counters and registers them with reg
// (nil: not exported). If reg already holds them, as when two services of
// one process each ask, the registered collector is shared.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "natter",
		Name:      "protocol_stream_errors_total",
		Help:      "Streams reset because of an error, by protocol and reason (oversize, malformed, invalid, refused, rate_limited, timeout, reset, eof, other).",
	}, []string{"protocol", "reason"})
	return &Metrics{streamErrors: SharedCounterVec(reg, cv)}
}

// SharedCounterVec registers cv with reg (nil: not exported) and returns
// it, or, if reg already holds a collector of that name (two services of
// one process, a node restarted in a test), the registered one, so that
// both count in one place.
func SharedCounterVec(reg prometheus.Registerer, cv *prometheus.CounterVec) *prometheus.CounterVec {
	if reg == nil {
		return cv
	}
	if err := reg.Register(cv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
	}
	return cv
}

// CounterValue reads cv's counter for labels (0 if there is none yet), for
// tests and status output.
func CounterValue(cv *prometheus.CounterVec, labels ...string) float64 {
	c, err := cv.GetMetricWithLabelValues(labels...)
	if err != nil {
		return 0
	}
	return ReadCounter(c)
}

// ReadCounter reads one counter's value.
func ReadCounter(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil || d.Counter == nil {
		return 0
	}
	return d.Counter.GetValue()
}

// StreamError counts one failed stream of protocol p.
func (m *Metrics) StreamError(p string, err error) {
	if m == nil || err == nil {
		return
	}
	m.streamErrors.WithLabelValues(p, Reason(err)).Inc()
}

// Count returns the number of errors counted for protocol p and reason r
// (for tests and status output).
func (m *Metrics) Count(p, r string) float64 {
	if m == nil {
		return 0
	}
	return CounterValue(m.streamErrors, p, r)
}

// RoundTrip is the client side of a one-request, one-response stream: it
// writes req (at most reqMax bytes), half-closes, reads resp (at most
// respMax bytes) and closes the stream; on any error it resets the stream.
//
// The half-close may fail although the exchange worked: a server that has
// read the request, answered and closed its side makes QUIC cancel our
// send stream, and a CloseWrite that comes after that reports "close
// called for canceled stream". The answer is what counts, so that error is
// ignored; a stream that really broke fails the read.
func RoundTrip(st network.Stream, req proto.Message, reqMax int, resp proto.Message, respMax int) error {
	if err := WriteMsg(st, req, reqMax); err != nil {
		st.Reset()
		return err
	}
	_ = st.CloseWrite()
	if err := ReadMsg(st, resp, respMax); err != nil {
		st.Reset()
		return fmt.Errorf("read response: %w", err)
	}
	_ = st.Close()
	return nil
}
