package wire

import (
	"math"
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

// Bucket is one key's bucket as saved across a restart: Tokens left at
// At.
type Bucket struct {
	Tokens float64
	At     time.Time
}

// Snapshot returns the buckets that are not full now (a full bucket is
// the same as none), so that a service can keep them across a restart.
func (l *Limiter[K]) Snapshot() map[K]Bucket {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[K]Bucket{}
	for k, b := range l.m {
		if t := b.TokensAt(now); t < float64(l.burst) {
			out[k] = Bucket{Tokens: t, At: now}
		}
	}
	return out
}

// Restore sets k's bucket to b (a Snapshot from before a restart),
// refilled since b.At; the tokens are rounded down to a whole one.
func (l *Limiter[K]) Restore(k K, b Bucket) {
	take := int(math.Ceil(float64(l.burst) - b.Tokens))
	if take <= 0 {
		return
	}
	take = min(take, l.burst)
	lim := rate.NewLimiter(l.limit, l.burst)
	// A new bucket is full; taking what was missing at b.At leaves it as
	// it was then, and it refills from there.
	lim.ReserveN(b.At, take)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[k] = lim
}
