package links

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// connWatch lets goroutines wait for the next connectedness change of a
// peer without each subscribing to the event bus.
type connWatch struct {
	mu      sync.Mutex // guards the following fields
	waiters map[peer.ID]chan struct{}
}

func newConnWatch() *connWatch { return &connWatch{waiters: map[peer.ID]chan struct{}{}} }

// changed returns a channel closed at the next connection event of p.
func (w *connWatch) changed(p peer.ID) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.waiters[p]
	if !ok {
		ch = make(chan struct{})
		w.waiters[p] = ch
	}
	return ch
}

func (w *connWatch) fire(p peer.ID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.waiters[p]; ok {
		close(ch)
		delete(w.waiters, p)
	}
}
