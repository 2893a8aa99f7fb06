package core

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerWatch lets goroutines wait for the next change of something about a
// peer (its connections, its path) without each subscribing to an event
// bus: Changed hands out a channel that the next Fire for that peer
// closes. The zero value is ready to use; it is safe for concurrent use.
type PeerWatch struct {
	mu      sync.Mutex // guards waiters
	waiters map[peer.ID]chan struct{}
}

// Changed returns a channel closed at the next Fire(p).
func (w *PeerWatch) Changed(p peer.ID) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiters == nil {
		w.waiters = map[peer.ID]chan struct{}{}
	}
	ch, ok := w.waiters[p]
	if !ok {
		ch = make(chan struct{})
		w.waiters[p] = ch
	}
	return ch
}

// Fire wakes everyone waiting on p's Changed channel.
func (w *PeerWatch) Fire(p peer.ID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.waiters[p]; ok {
		close(ch)
		delete(w.waiters, p)
	}
}
