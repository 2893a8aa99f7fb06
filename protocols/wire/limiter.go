package wire

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Limiter is a token bucket per key (a remote peer, a source address):
// each key may make burst requests at once and then one every 1/perSecond.
// Keys idle long enough to have a full bucket are forgotten, so the map
// stays as small as the set of recently active keys.
type Limiter[K comparable] struct {
	limit rate.Limit
	burst int

	mu     sync.Mutex
	m      map[K]*rate.Limiter
	lastGC time.Time
}

// PeerLimiter is a Limiter per remote peer, as every protocol service
// uses.
type PeerLimiter = Limiter[peer.ID]

// NewLimiter allows each key burst requests, refilled at perSecond.
func NewLimiter[K comparable](perSecond float64, burst int) *Limiter[K] {
	return &Limiter[K]{limit: rate.Limit(perSecond), burst: burst, m: map[K]*rate.Limiter{}}
}

// NewPeerLimiter allows each peer burst requests, refilled at perSecond.
func NewPeerLimiter(perSecond float64, burst int) *PeerLimiter {
	return NewLimiter[peer.ID](perSecond, burst)
}

// Allow takes one token from k's bucket and reports whether there was one.
func (l *Limiter[K]) Allow(k K) bool { return l.AllowN(k, 1) }

// AllowN takes n tokens from k's bucket if it holds that many, and reports
// whether it did (a request for more than the burst is never allowed).
func (l *Limiter[K]) AllowN(k K, n int) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastGC) > time.Minute {
		l.lastGC = now
		for key, b := range l.m {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.m, key)
			}
		}
	}
	b, ok := l.m[k]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.m[k] = b
	}
	return b.AllowN(now, n)
}
