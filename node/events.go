package node

import (
	"sync"
	"time"

	"github.com/natterim/natter/node/control"
)

// eventBufSize bounds each subscriber's queue. A subscriber that falls this
// far behind is disconnected (its stream ends) rather than slowing the node
// or growing memory; clients reconnect and re-read state.
const eventBufSize = 4096

// eventBus fans node events out to control-API subscribers.
type eventBus struct {
	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
}

type subscription struct {
	ch   chan control.Event
	once sync.Once
}

func newEventBus() *eventBus { return &eventBus{subs: map[*subscription]struct{}{}} }

// subscribe returns a subscription whose channel is closed when the bus
// closes or the subscriber overflows; cancel must be called when done.
func (b *eventBus) subscribe() (*subscription, func()) {
	s := &subscription{ch: make(chan control.Event, eventBufSize)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.ch)
		return s, func() {}
	}
	b.subs[s] = struct{}{}
	return s, func() { b.drop(s) }
}

func (b *eventBus) drop(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		s.once.Do(func() { close(s.ch) })
	}
}

func (b *eventBus) publish(e control.Event) {
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

func (b *eventBus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		s.once.Do(func() { close(s.ch) })
	}
}

// publish sends an event to every control-API subscriber.
func (n *Node) publish(e control.Event) { n.events.publish(e) }
