package wire

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// PeerLimiter is a token bucket per remote peer: each peer may make burst
// requests at once and then one every 1/perSecond. Peers idle long enough
// to have a full bucket are forgotten, so the map stays as small as the set
// of recently active peers.
type PeerLimiter struct {
	limit rate.Limit
	burst int

	mu     sync.Mutex
	m      map[peer.ID]*rate.Limiter
	lastGC time.Time
}

// NewPeerLimiter allows each peer burst requests, refilled at perSecond.
func NewPeerLimiter(perSecond float64, burst int) *PeerLimiter {
	return &PeerLimiter{limit: rate.Limit(perSecond), burst: burst, m: map[peer.ID]*rate.Limiter{}}
}

// Allow takes one token from p's bucket and reports whether there was one.
func (l *PeerLimiter) Allow(p peer.ID) bool { return l.AllowN(p, 1) }

// AllowN takes n tokens from p's bucket if it holds that many, and reports
// whether it did (a request for more than the burst is never allowed).
func (l *PeerLimiter) AllowN(p peer.ID, n int) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastGC) > time.Minute {
		l.lastGC = now
		for id, b := range l.m {
			if b.TokensAt(now) >= float64(l.burst) {
				delete(l.m, id)
			}
		}
	}
	b, ok := l.m[p]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.m[p] = b
	}
	return b.AllowN(now, n)
}
