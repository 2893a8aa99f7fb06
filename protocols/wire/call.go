package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
)

// StreamOpener opens outbound streams: a host.Host is one.
type StreamOpener interface {
	// NewStream opens a stream to p speaking one of pids.
	NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error)
}

// CallOptions are the per-protocol parameters of Call.
type CallOptions struct {
	// Service is the resource-manager service the outbound stream is
	// attached to (e.g. "natter.contact"); empty leaves it unattached.
	Service string
	// AllowLimited lets the stream run over a limited (relayed)
	// connection: a protocol that may run over the relay says so here,
	// deliberately.
	AllowLimited bool
	// NoDial uses an existing connection only; without a connection the
	// call fails at once instead of dialling.
	NoDial bool
	// RequestMax and ResponseMax bound the request written and the
	// response read, in bytes (the frame, without its length prefix).
	RequestMax, ResponseMax int
	// Memory is reserved from the stream's scope for the exchange (0:
	// none); it should cover the response buffered.
	Memory int
	// Timeout bounds the whole exchange, from opening the stream to
	// reading the response, within ctx's own deadline (0: ctx only).
	Timeout time.Duration
}

// Call is the client side of a one-request, one-response stream. It opens
// a stream to p speaking id (on an existing connection only with NoDial,
// over a limited one only with AllowLimited), attaches it to the
// resource-manager service, reserves Memory, gives it ctx's deadline,
// writes req (at most RequestMax bytes), half-closes and reads resp (at
// most ResponseMax bytes), then closes the stream. With resp nil the
// request has no answer: Call waits for the remote to close the stream.
//
// Any error resets the stream. Cancelling ctx resets it at once (not
// every transport honours deadlines) and the error then wraps ctx.Err().
func Call(ctx context.Context, h StreamOpener, p peer.ID, id protocol.ID, o CallOptions, req, resp proto.Message) (err error) {
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	reason := o.Service
	if reason == "" {
		reason = string(id)
	}
	sctx := ctx
	if o.NoDial {
		sctx = network.WithNoDial(sctx, reason)
	}
	if o.AllowLimited {
		sctx = network.WithAllowLimitedConn(sctx, reason)
	}
	st, err := h.NewStream(sctx, p, id)
	if err != nil {
		return fmt.Errorf("open %s stream: %w", id, withCtxErr(ctx, err))
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer func() {
		stop()
		if err != nil {
			_ = st.Reset()
			err = withCtxErr(ctx, err)
		}
	}()
	if o.Service != "" {
		if err := st.Scope().SetService(o.Service); err != nil {
			return fmt.Errorf("attach stream to %s: %w", o.Service, err)
		}
	}
	if o.Memory > 0 {
		if err := st.Scope().ReserveMemory(o.Memory, network.ReservationPriorityAlways); err != nil {
			return fmt.Errorf("reserve memory: %w", err)
		}
		defer st.Scope().ReleaseMemory(o.Memory)
	}
	if dl, ok := ctx.Deadline(); ok {
		// Best effort: some transports have no deadlines; the AfterFunc
		// above resets the stream when ctx ends all the same.
		_ = st.SetDeadline(dl)
	}
	if resp != nil {
		return RoundTrip(st, req, o.RequestMax, resp, o.ResponseMax)
	}
	if err := WriteMsg(st, req, o.RequestMax); err != nil {
		return err
	}
	// A remote that read the request and closed may have cancelled our
	// send side already (QUIC): its close, awaited next, is what counts.
	_ = st.CloseWrite()
	if n, err := st.Read(make([]byte, 1)); n > 0 || !errors.Is(err, io.EOF) {
		if err == nil {
			err = fmt.Errorf("unexpected response: %w", ErrMalformed)
		}
		return fmt.Errorf("await close: %w", err)
	}
	return st.Close()
}

// withCtxErr adds ctx's error to err once ctx has ended, so that callers
// can tell a cancelled or timed-out call with errors.Is.
func withCtxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}
