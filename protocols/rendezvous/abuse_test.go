package rendezvous_test

import (
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/protocols/rendezvous/pb"
	"github.com/natterim/natter/protocols/wire"
)

// refusals records WithRefusals calls.
type refusals struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *refusals) add(req, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[req+"/"+reason]++
}

func (r *refusals) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[key]
}

// sourceEnv is a service on a mocknet host with clients whose addresses
// are chosen: each client i connects from srcs[i].
func sourceEnv(t *testing.T, srcs []string, opts ...rendezvous.Option) (host.Host, *rendezvous.Service, []host.Host) {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	add := func(a string) host.Host {
		sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
		require.NoError(t, err)
		h, err := mn.AddPeer(sk, addr(t, a))
		require.NoError(t, err)
		return h
	}
	server := add("/ip4/192.0.2.1/tcp/4001")
	var clients []host.Host
	for _, s := range srcs {
		clients = append(clients, add(s))
	}
	require.NoError(t, mn.LinkAll())
	require.NoError(t, mn.ConnectAllButSelf())
	svc, err := rendezvous.New(server, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = svc.Close() })
	return server, svc, clients
}

func TestRegistrationsPerSourceCap(t *testing.T) {
	limits := rendezvous.DefaultLimits()
	limits.MaxRegistrationsPerSource = 2
	var ref refusals
	server, svc, c := sourceEnv(t, []string{
		"/ip4/203.0.113.5/tcp/1000",  // three nodes behind one CGNAT address
		"/ip4/203.0.113.5/tcp/1001",  //
		"/ip4/203.0.113.5/tcp/1002",  //
		"/ip4/203.0.113.6/tcp/1000",  // a neighbour
		"/ip6/2001:db8:0:1::1/tcp/1", // one IPv6 home (a /56) ...
		"/ip6/2001:db8:0:2::1/tcp/1", // ... with another /64 of it
		"/ip6/2001:db8:0:3::1/tcp/1", // ... and a third
	}, rendezvous.WithLimits(limits), rendezvous.WithRefusals(ref.add))
	register := func(h host.Host) error {
		_, err := rendezvous.NewClient(h).Register(ctx(t), server.ID(), rendezvous.PeerNamespace(h.ID()), nil, time.Hour)
		return err
	}
	require.NoError(t, register(c[0]))
	require.NoError(t, register(c[1]))
	err := register(c[2])
	require.Equal(t, pb.Message_E_UNAVAILABLE, statusOf(t, err))
	require.ErrorContains(t, err, "too many registrations from this address")
	require.Equal(t, 1, ref.get("register/"+rendezvous.RefusedSourceCap))
	// Refreshing does not count twice.
	require.NoError(t, register(c[0]))
	// Another address is not affected.
	require.NoError(t, register(c[3]))
	// IPv6 is grouped by /56.
	require.NoError(t, register(c[4]))
	require.NoError(t, register(c[5]))
	require.Equal(t, pb.Message_E_UNAVAILABLE, statusOf(t, register(c[6])))
	// A slot frees when a registration goes.
	require.NoError(t, rendezvous.NewClient(c[0]).Unregister(ctx(t), server.ID(), rendezvous.PeerNamespace(c[0].ID())))
	require.NoError(t, register(c[2]))
	svc.RemovePeer(c[1].ID())
	require.NoError(t, register(c[0]))
	require.Len(t, svc.Registrations(), 5)
}

func TestGate(t *testing.T) {
	var ref refusals
	var mu sync.Mutex
	var seen []rendezvous.Request
	blocked := map[pb.Message_MessageType]bool{pb.Message_DISCOVER: true, pb.Message_UNREGISTER: true}
	gate := func(r rendezvous.Request) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r)
		if blocked[r.Type] {
			return fmt.Errorf("too fast: %w", wire.ErrRateLimited)
		}
		return nil
	}
	server, svc, c := sourceEnv(t, []string{"/ip4/203.0.113.5/tcp/1000"},
		rendezvous.WithGate(gate), rendezvous.WithRefusals(ref.add))
	cl := rendezvous.NewClient(c[0])
	_, err := cl.Register(ctx(t), server.ID(), rendezvous.PeerNamespace(c[0].ID()), nil, time.Hour)
	require.NoError(t, err)

	_, err = cl.Lookup(ctx(t), server.ID(), c[0].ID())
	require.Equal(t, pb.Message_E_UNAVAILABLE, statusOf(t, err))
	require.ErrorContains(t, err, "rate limited")
	require.Equal(t, 1, ref.get("discover/"+rendezvous.RefusedRateLimited))

	// UNREGISTER has no response: the stream is reset and nothing changes.
	require.Error(t, cl.Unregister(ctx(t), server.ID(), rendezvous.PeerNamespace(c[0].ID())))
	require.Len(t, svc.Registrations(), 1)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 3)
	require.Equal(t, pb.Message_REGISTER, seen[0].Type)
	require.Equal(t, c[0].ID(), seen[0].Peer)
	require.Equal(t, "203.0.113.5/32", seen[0].Source.String())
}
