package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/natterim/natter/protocols/chat/pb"
)

// DefaultWindow is how many batches a Sender lets await their ack at once.
const DefaultWindow = 8

// Errors of a Sender.
var (
	// ErrAckMismatch: the receiver acknowledged something other than the
	// oldest batch in flight (or acknowledged when nothing was).
	ErrAckMismatch = errors.New("chat: ack does not match the oldest batch in flight")
	// ErrSenderClosed: Send after Reset or Finish.
	ErrSenderClosed = errors.New("chat: sender closed")
)

// Sender is the opener's side of a chat stream with a window of batches in
// flight:
//
//	Send(b1) Send(b2) ... Send(b8) Send(b9): blocks while 8 await their ack
//	         reader: ack == oldest in flight? pop it, hand its ids to Acks
//	                 else (or a reset, or no ack within the ack timeout):
//	                 reset the stream, close Acks, Err says why
//
// One goroutine, the reader, reads the acks; Send may be called from one
// goroutine at a time (the one that owns the stream). Reset or Finish must
// be called to end it; both wait for the reader.
type Sender struct {
	st     *Stream
	window int
	acks   chan []MsgID
	space  chan struct{} // a slot of the window was freed
	stop   chan struct{} // closed by Reset
	done   chan struct{} // closed when the reader returned
	once   sync.Once

	mu        sync.Mutex // guards the following fields
	flight    [][]MsgID  // ids of the batches awaiting their ack, oldest first
	err       error      // why the reader stopped (io.EOF: a clean end)
	finishing bool       // CloseWrite was called
}

// NewSender starts sending on st: it starts the reader of acks. window is
// how many batches may await their ack (DefaultWindow if not positive).
func NewSender(st *Stream, window int) *Sender {
	if window <= 0 {
		window = DefaultWindow
	}
	s := &Sender{
		st:     st,
		window: window,
		acks:   make(chan []MsgID, window),
		space:  make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go s.read()
	return s
}

// Conn is the connection the stream runs on.
func (s *Sender) Conn() network.Conn { return s.st.Conn() }

// Acks delivers the ids of each acknowledged batch, as sent, in the order
// the batches were sent. It is closed when the stream ends; Err says why.
func (s *Sender) Acks() <-chan []MsgID { return s.acks }

// Err is why the stream ended once Acks is closed: nil after a clean
// Finish, else the failure (a reset, an ack timeout, ErrAckMismatch...).
func (s *Sender) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(s.err, io.EOF) && s.finishing {
		return nil
	}
	return s.err
}

// InFlight is how many batches await their ack.
func (s *Sender) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.flight)
}

// Send writes one batch, first waiting while the window is full. It moves
// the stream's ack deadline to the ack timeout from now (see Open).
func (s *Sender) Send(ctx context.Context, msgs []*pb.Message) error {
	ids := make([]MsgID, len(msgs))
	for i, m := range msgs {
		ids[i] = MsgID(m.GetId())
	}
	for {
		s.mu.Lock()
		switch {
		case s.finishing:
			s.mu.Unlock()
			return ErrSenderClosed
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return err
		case len(s.flight) < s.window:
			// In flight before it is written, so that its ack finds it.
			s.flight = append(s.flight, ids)
			s.mu.Unlock()
			if err := s.st.Send(msgs); err != nil {
				s.fail(fmt.Errorf("send batch: %w", err))
				return err
			}
			return nil
		}
		s.mu.Unlock()
		select {
		case <-s.space:
		case <-s.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// read matches acks to the batches in flight until the stream ends.
func (s *Sender) read() {
	defer close(s.done)
	defer close(s.acks)
	for {
		ids, err := s.st.ReadAck()
		if err != nil {
			s.mu.Lock()
			clean := errors.Is(err, io.EOF) && s.finishing && len(s.flight) == 0
			s.mu.Unlock()
			if clean {
				s.setErr(io.EOF)
				return
			}
			s.fail(fmt.Errorf("read ack: %w", err))
			return
		}
		s.mu.Lock()
		if len(s.flight) == 0 || !slices.Equal(s.flight[0], ids) {
			s.mu.Unlock()
			s.fail(ErrAckMismatch)
			return
		}
		s.flight = s.flight[1:]
		if len(s.flight) == 0 && !s.finishing {
			// Nothing awaits an ack: a quiet stream is not a dead one.
			if err := s.st.Idle(); err != nil {
				s.mu.Unlock()
				s.fail(fmt.Errorf("clear ack deadline: %w", err))
				return
			}
		}
		s.mu.Unlock()
		select {
		case s.space <- struct{}{}:
		default:
		}
		select {
		case s.acks <- ids:
		case <-s.stop:
			s.setErr(ErrSenderClosed)
			return
		}
	}
}

// setErr records the first reason the stream ended.
func (s *Sender) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// fail records err and resets the stream, which ends the reader.
func (s *Sender) fail(err error) {
	s.setErr(err)
	s.st.Reset()
}

// Finish ends the stream cleanly: no more batches; the acks of batches
// still in flight arrive on Acks (within the ack timeout), then the
// receiver's end of stream. It returns nil if that is how it went, else
// the failure (the stream is then reset).
func (s *Sender) Finish() error {
	s.mu.Lock()
	s.finishing = true
	s.mu.Unlock()
	if err := s.st.CloseWrite(); err != nil {
		s.fail(fmt.Errorf("close write: %w", err))
		<-s.done
		return err
	}
	<-s.done
	if err := s.Err(); err != nil {
		return err
	}
	return s.st.Close()
}

// Reset aborts the stream and waits for the reader. It is idempotent and
// may follow Finish.
func (s *Sender) Reset() {
	s.once.Do(func() { close(s.stop) })
	s.setErr(ErrSenderClosed)
	s.st.Reset()
	<-s.done
}
