package mailbox

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
)

// tracker counts a service's stream handlers (and its own goroutines) in
// flight, so that Close can reset the streams being served and wait for
// every handler to return.
type tracker struct {
	wg sync.WaitGroup // handlers and goroutines in flight

	mu      sync.Mutex // guards the following fields
	closed  bool
	streams map[network.Stream]struct{}
}

// add counts a handler in, unless the service is closing (then the
// caller resets the stream and returns).
func (t *tracker) add(st network.Stream) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	if t.streams == nil {
		t.streams = map[network.Stream]struct{}{}
	}
	t.streams[st] = struct{}{}
	t.wg.Add(1)
	return true
}

// done counts a handler out.
func (t *tracker) done(st network.Stream) {
	t.mu.Lock()
	delete(t.streams, st)
	t.mu.Unlock()
	t.wg.Done()
}

// close runs stop once (the first call: it removes the handler and
// cancels), resets the streams being served, and waits for every handler
// and goroutine counted in. Later calls only wait.
func (t *tracker) close(stop func()) {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		stop()
		for st := range t.streams {
			_ = st.Reset()
		}
	}
	t.mu.Unlock()
	t.wg.Wait()
}
