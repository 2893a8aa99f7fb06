package wire

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// Tracker owns what a Service runs: its stream handlers in flight and its
// background loops. Close cancels the lifetime context, resets the streams
// being served (a handler blocked on a read returns at once) and waits for
// every handler and loop to return; handlers that arrive later are reset
// without running. A Service removes its stream handler, then closes its
// Tracker, as go-libp2p's hole-punching service does with its refCount.
type Tracker struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards the following fields
	closed  bool
	streams map[network.Stream]struct{}
}

// NewTracker returns a Tracker with a fresh lifetime context.
func NewTracker() *Tracker {
	ctx, cancel := context.WithCancel(context.Background())
	return &Tracker{ctx: ctx, cancel: cancel, streams: map[network.Stream]struct{}{}}
}

// Context is the lifetime context: cancelled by Close. Handlers derive the
// contexts of their work from it.
func (t *Tracker) Context() context.Context { return t.ctx }

// Handler wraps h so that Close waits for it: give the result to
// SetStreamHandler.
func (t *Tracker) Handler(h network.StreamHandler) network.StreamHandler {
	return func(st network.Stream) {
		if !t.add(st) {
			_ = st.Reset()
			return
		}
		defer t.done(st)
		h(st)
	}
}

// Go runs f on a goroutine that Close cancels (through ctx) and waits for.
// After Close it does nothing and returns false.
func (t *Tracker) Go(f func(ctx context.Context)) bool {
	if !t.add(nil) {
		return false
	}
	go func() {
		defer t.done(nil)
		f(t.ctx)
	}()
	return true
}

func (t *Tracker) add(st network.Stream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if st != nil {
		t.streams[st] = struct{}{}
	}
	t.wg.Add(1)
	return true
}

func (t *Tracker) done(st network.Stream) {
	if st != nil {
		t.mu.Lock()
		delete(t.streams, st)
		t.mu.Unlock()
	}
	t.wg.Done()
}

// InFlight returns the number of stream handlers running.
func (t *Tracker) InFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.streams)
}

// Close cancels the lifetime context, resets the streams in flight and
// waits for every handler and loop. It is idempotent and safe to call
// concurrently; every call returns once all of them have returned.
func (t *Tracker) Close() {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		t.cancel()
		for st := range t.streams {
			_ = st.Reset()
		}
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// Watchdog resets a stream whose exchange takes longer than its timeout:
// besides the stream deadline, which not every transport honours. For a
// stream that carries several requests, Restart it before each one.
type Watchdog struct {
	timeout time.Duration
	timer   *time.Timer
	fired   atomic.Bool
}

// NewWatchdog starts a watchdog on st.
func NewWatchdog(st network.Stream, timeout time.Duration) *Watchdog {
	w := &Watchdog{timeout: timeout}
	w.timer = time.AfterFunc(timeout, func() {
		w.fired.Store(true)
		_ = st.Reset()
	})
	return w
}

// Restart gives the stream timeout again from now.
func (w *Watchdog) Restart() { w.timer.Reset(w.timeout) }

// Stop stops the watchdog and returns err, marked as a deadline error
// (os.ErrDeadlineExceeded, so Reason says "timeout") if the watchdog reset
// the stream.
func (w *Watchdog) Stop(err error) error {
	w.timer.Stop()
	if err != nil && w.fired.Load() {
		return fmt.Errorf("request took over %v: %w (%w)", w.timeout, os.ErrDeadlineExceeded, err)
	}
	return err
}
