package names

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrNotFound is returned by a Registry for a skeleton nobody holds, and
// by the client for a name nobody holds.
var ErrNotFound = errors.New("name not registered")

// Entry is one held name as a server stores it.
type Entry struct {
	// Name is the canonical name; Skeleton its look-alike key (unique).
	Name     string
	Skeleton string
	Peer     peer.ID
	// Seq is the seq of Record, the holder's latest signed REGISTER
	// record, kept as it arrived so that lookups can hand it out.
	Seq    uint64
	Record []byte
	// Registered is when the holder first claimed the name, Renewed
	// when it last renewed it (server clock).
	Registered time.Time
	Renewed    time.Time
}

// Registry is the server's storage of held names. The Service serialises
// every change, so a Registry need not make Get-then-Put atomic; it must
// make each call durable before it returns. The rendezvous implements it
// on its SQLite database (rendezvous/store); MemRegistry keeps it in
// memory.
type Registry interface {
	// Get returns the entry under skeleton, active or not, or
	// ErrNotFound.
	Get(ctx context.Context, skeleton string) (Entry, error)
	// Put inserts e, or replaces the entry under e.Skeleton.
	Put(ctx context.Context, e Entry) error
	// Delete removes the entry under skeleton (no error if there is
	// none).
	Delete(ctx context.Context, skeleton string) error
	// NamesOf lists the names p holds that were renewed at or after
	// activeSince, sorted.
	NamesOf(ctx context.Context, p peer.ID, activeSince time.Time) ([]string, error)
	// DeleteInactive removes the entries last renewed before before and
	// returns how many.
	DeleteInactive(ctx context.Context, before time.Time) (int, error)
}

// MemRegistry is a Registry in memory: for tests, and for a server that
// may forget every name when it restarts. Safe for concurrent use.
type MemRegistry struct {
	mu sync.Mutex
	m  map[string]Entry
}

// NewMemRegistry returns an empty MemRegistry.
func NewMemRegistry() *MemRegistry { return &MemRegistry{m: map[string]Entry{}} }

// Get implements Registry.
func (r *MemRegistry) Get(_ context.Context, skeleton string) (Entry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.m[skeleton]
	if !ok {
		return Entry{}, ErrNotFound
	}
	e.Record = slices.Clone(e.Record)
	return e, nil
}

// Put implements Registry.
func (r *MemRegistry) Put(_ context.Context, e Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.Record = slices.Clone(e.Record)
	r.m[e.Skeleton] = e
	return nil
}

// Delete implements Registry.
func (r *MemRegistry) Delete(_ context.Context, skeleton string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, skeleton)
	return nil
}

// NamesOf implements Registry.
func (r *MemRegistry) NamesOf(_ context.Context, p peer.ID, activeSince time.Time) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.m {
		if e.Peer == p && !e.Renewed.Before(activeSince) {
			out = append(out, e.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// DeleteInactive implements Registry.
func (r *MemRegistry) DeleteInactive(_ context.Context, before time.Time) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k, e := range r.m {
		if e.Renewed.Before(before) {
			delete(r.m, k)
			n++
		}
	}
	return n, nil
}
