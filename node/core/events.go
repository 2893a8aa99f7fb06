package core

import (
	"sync"
	"time"

	"github.com/natterim/natter/node/control"
)

// eventBufSize bounds each subscriber's queue. A subscriber that falls this
// far behind is disconnected (its stream ends) rather than slowing the node
// or growing memory; clients reconnect and re-read state.
const eventBufSize = 4096

// Publisher is what a feature needs to tell the user something happened.
type Publisher interface {
	Publish(control.Event)
}

// Bus fans events out to control-API subscribers. It is safe for
// concurrent use.
type Bus struct {
	mu     sync.Mutex // guards the following fields
	subs   map[*Subscription]struct{}
	closed bool
}

// Subscription is one subscriber's queue.
type Subscription struct {
	ch   chan control.Event
	once sync.Once
}

// C is the subscriber's channel; it is closed when the bus closes or the
// subscriber fell too far behind.
func (s *Subscription) C() <-chan control.Event { return s.ch }

// NewBus returns an open bus.
func NewBus() *Bus { return &Bus{subs: map[*Subscription]struct{}{}} }

// Subscribe returns a subscription; cancel must be called when done.
func (b *Bus) Subscribe() (*Subscription, func()) {
	s := &Subscription{ch: make(chan control.Event, eventBufSize)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.ch)
		return s, func() {}
	}
	b.subs[s] = struct{}{}
	return s, func() { b.drop(s) }
}

func (b *Bus) drop(s *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		s.once.Do(func() { close(s.ch) })
	}
}

// Publish sends e to every subscriber, stamping its time if unset.
func (b *Bus) Publish(e control.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.ch <- e:
		default: // too slow: cut it off
			delete(b.subs, s)
			s.once.Do(func() { close(s.ch) })
		}
	}
}

// Close ends every subscription; later ones end at once.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		s.once.Do(func() { close(s.ch) })
	}
}
