package links_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/identity"
	"github.com/natterim/natter/node/links"
	"github.com/natterim/natter/node/store"
)

// fakeContacts is a contact list in memory.
type fakeContacts struct {
	mu sync.Mutex
	m  map[peer.ID]store.Contact
}

func (f *fakeContacts) ContactByPeer(_ context.Context, p peer.ID) (store.Contact, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.m[p]
	if !ok {
		return store.Contact{}, store.ErrNotFound
	}
	return c, nil
}

func (f *fakeContacts) add(c store.Contact) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[peer.ID]store.Contact{}
	}
	f.m[c.PeerID] = c
}

// recorder collects what a service publishes and tells its hooks.
type recorder struct {
	events chan control.Event
	links  chan core.LinkEvent
	rdvs   chan peer.ID // servers that came up
}

func newRecorder() *recorder {
	return &recorder{events: make(chan control.Event, 1000), links: make(chan core.LinkEvent, 1000), rdvs: make(chan peer.ID, 100)}
}

// Publish never blocks (the tests read what they need).
func (r *recorder) Publish(e control.Event) {
	select {
	case r.events <- e:
	default:
	}
}

func (r *recorder) link(e core.LinkEvent) {
	select {
	case r.links <- e:
	default:
	}
}

func (r *recorder) rendezvous(server peer.ID, up bool) {
	if !up {
		return
	}
	select {
	case r.rdvs <- server:
	default:
	}
}

// syncBuffer is a log sink safe for the service's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func loopbackAddrs() []ma.Multiaddr {
	return []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}
}

// testConfig is a service on loopback with fast heartbeats and no hole
// punching, port mapping or DHT.
func testConfig() links.Config {
	return links.Config{
		Listen:          loopbackAddrs(),
		Transports:      []string{"tcp", "quic"},
		UserAgent:       "natter-test",
		RegistrationTTL: 2 * time.Minute,
		Heartbeat:       200 * time.Millisecond,
		HeartbeatMisses: 2,
		DirectRetry:     time.Second,
		DirectRetryMax:  2 * time.Second,
	}
}

// startService starts a service with its hooks wired to a recorder; it
// is closed when the test ends.
func startService(t *testing.T, cfg links.Config, contacts links.Contacts, log *slog.Logger) (*links.Service, *recorder) {
	t.Helper()
	sk, err := identity.Generate()
	require.NoError(t, err)
	rec := newRecorder()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := links.New(sk, cfg, contacts, rec, links.WithLogger(log))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	s.OnLink(rec.link)
	s.OnRendezvous(rec.rendezvous)
	s.Start()
	return s, rec
}

// nextLink waits for the next link event.
func nextLink(t *testing.T, rec *recorder) core.LinkEvent {
	t.Helper()
	select {
	case e := <-rec.links:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no link event")
		return core.LinkEvent{}
	}
}

// nextEvent waits for the next published event of type typ.
func nextEvent(t *testing.T, rec *recorder, typ string) control.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-rec.events:
			if e.Type == typ {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event", typ)
			return control.Event{}
		}
	}
}
