package social

import (
	"context"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/contact"
	"github.com/natterim/natter/protocols/names"
	"github.com/natterim/natter/protocols/presence"
	"github.com/natterim/natter/protocols/profile"
)

// hostNetwork is Network over a libp2p host: the protocols' clients.
type hostNetwork struct {
	h   host.Host
	key crypto.PrivKey
}

// NewNetwork is the Network of host h, signing directory records with key
// (h's identity).
func NewNetwork(h host.Host, key crypto.PrivKey) Network { return hostNetwork{h: h, key: key} }

func (n hostNetwork) ID() peer.ID { return n.h.ID() }

func (n hostNetwork) SendContact(ctx context.Context, p peer.ID, req contact.Request) (contact.Response, error) {
	return contact.Send(ctx, n.h, p, req)
}

func (n hostNetwork) PushPresence(ctx context.Context, p peer.ID, pr presence.Presence) error {
	return presence.Push(ctx, n.h, p, pr)
}

func (n hostNetwork) FetchProfile(ctx context.Context, p peer.ID) (profile.Profile, error) {
	return profile.Fetch(ctx, n.h, p)
}

func (n hostNetwork) Disconnect(p peer.ID) { _ = n.h.Network().ClosePeer(p) }

func (n hostNetwork) RegisterName(ctx context.Context, server peer.ID, name string, seq uint64) (time.Time, error) {
	return names.Register(ctx, n.h, server, n.key, name, seq)
}

func (n hostNetwork) ReleaseName(ctx context.Context, server peer.ID, name string, seq uint64) error {
	return names.Release(ctx, n.h, server, n.key, name, seq)
}

func (n hostNetwork) LookupName(ctx context.Context, server peer.ID, name string) (names.Record, error) {
	rec, _, err := names.Lookup(ctx, n.h, server, name)
	return rec, err
}

// Serve registers the handlers of the friend-request, presence and
// profile protocols on h; Close removes them. Call it once, after New.
func (s *Service) Serve(h host.Host) {
	svcs := []io.Closer{
		contact.New(h, requestHandler{s},
			contact.WithRateLimit(1/s.cfg.RequestInterval.Seconds(), s.cfg.RequestBurst),
			contact.WithLogger(s.log), contact.WithMetrics(s.metrics)),
		presence.New(h, presenceReceiver{s}, presence.WithLogger(s.log), presence.WithMetrics(s.metrics)),
		profile.New(h, profileOwner{s}, profile.WithLogger(s.log), profile.WithMetrics(s.metrics)),
	}
	s.mu.Lock()
	s.svcs = append(s.svcs, svcs...)
	s.mu.Unlock()
}
