package core

import (
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff with full jitter in [d/2, d). Not
// safe for concurrent use: each loop owns its own.
type Backoff struct {
	min, max, cur time.Duration
}

// NewBackoff starts at min and doubles up to max.
func NewBackoff(min, max time.Duration) *Backoff { return &Backoff{min: min, max: max, cur: min} }

// Next is the next wait.
func (b *Backoff) Next() time.Duration {
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	return d/2 + rand.N(d/2+1)
}

// Reset starts again from min.
func (b *Backoff) Reset() { b.cur = b.min }
