package links_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/links"
	chatproto "github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/contact"
	"github.com/natterim/natter/protocols/file"
	"github.com/natterim/natter/protocols/mailbox"
	"github.com/natterim/natter/protocols/presence"
	"github.com/natterim/natter/protocols/profile"
)

// natterServices are the services the node runs, with the memory one
// inbound stream's handler reserves (wire.Serve's Memory) and the fewest
// inbound streams one peer must be able to hold open.
var natterServices = []struct {
	name      string
	perStream int
	minIn     int
}{
	// One stream each way per peer; a replaced one may overlap.
	{chatproto.ServiceName, chatproto.MaxFrameSize, 2},
	// Four transfers at once and one more to be answered BUSY; the
	// handler reserves 3 pieces of read-ahead and a hash frame.
	{file.ServiceName, 3<<20 + file.MaxHashesSize, file.DefaultStreamsPerPeer + 1},
	{contact.ServiceName, 2 * contact.MaxFrameSize, 1},
	{presence.ServiceName, 2 * presence.MaxFrameSize, 1},
	{profile.ServiceName, 2 * profile.MaxFrameSize, 1},
	{mailbox.TokenServiceName, 2 * (mailbox.MaxTokenSize + 64), 1},
}

// defaultLimits are the limits libp2p.New gives a host by default.
func defaultLimits() rcmgr.PartialLimitConfig {
	l := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&l)
	return l.AutoScale().ToPartialLimitConfig()
}

// TestResourceLimits: every natter service has its own service and
// per-peer limits, big enough for what its handlers reserve, and
// everything else is go-libp2p's default, as before.
func TestResourceLimits(t *testing.T) {
	got := links.ResourceLimits().ToPartialLimitConfig()
	for _, svc := range natterServices {
		total, ok := got.Service[svc.name]
		require.True(t, ok, "no service limit for %s", svc.name)
		perPeer, ok := got.ServicePeer[svc.name]
		require.True(t, ok, "no per-peer limit for %s", svc.name)

		in := int(perPeer.StreamsInbound)
		require.GreaterOrEqual(t, in, svc.minIn, svc.name)
		require.GreaterOrEqual(t, int(perPeer.StreamsOutbound), 1, svc.name)
		require.GreaterOrEqual(t, int(perPeer.Streams), in+int(perPeer.StreamsOutbound), svc.name)
		require.GreaterOrEqual(t, int64(perPeer.Memory), int64(in*svc.perStream),
			"%s: %d inbound streams must fit in the per-peer memory", svc.name, in)

		require.GreaterOrEqual(t, int(total.StreamsInbound), 256, svc.name)
		require.GreaterOrEqual(t, int(total.StreamsOutbound), 256, svc.name)
		require.GreaterOrEqual(t, int64(total.Memory), int64(in*svc.perStream), svc.name)

		delete(got.Service, svc.name)
		delete(got.ServicePeer, svc.name)
	}
	want := defaultLimits()
	require.Contains(t, got.ServicePeer, identify.ServiceName, "go-libp2p's own services keep their limits")
	require.Contains(t, got.ServicePeer, ping.ServiceName)
	require.Equal(t, want, got, "apart from natter's services, the limits are go-libp2p's defaults")
}

// holdProto is a test protocol whose handler keeps streams open until
// the opener resets them.
const holdProto = protocol.ID("/natter-test/hold/1.0.0")

// holdHost is a plain libp2p host on loopback serving holdProto.
func holdHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrs(loopbackAddrs()...))
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	h.SetStreamHandler(holdProto, func(s network.Stream) {
		_, _ = io.Copy(io.Discard, s)
		s.Reset()
	})
	return h
}

// TestHostServiceLimits: the node's host runs with these limits: each
// natter service's scope has its configured limit, and one peer can hold
// no more outbound streams of a service than its per-peer limit, while
// the service shows them attached.
func TestHostServiceLimits(t *testing.T) {
	s, _ := startService(t, testConfig(), &fakeContacts{}, nil)
	h := s.Host()
	remote := holdHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, h.Connect(ctx, peer.AddrInfo{ID: remote.ID(), Addrs: remote.Addrs()}))

	cfg := links.ResourceLimits().ToPartialLimitConfig()
	rm := h.Network().ResourceManager()
	for _, svc := range natterServices {
		want := cfg.Service[svc.name]
		require.NoError(t, rm.ViewService(svc.name, func(sc network.ServiceScope) error {
			lim, ok := sc.(rcmgr.ResourceScopeLimiter)
			require.True(t, ok, "service scope %T has no limit", sc)
			l := lim.Limit()
			require.Equal(t, int(want.StreamsInbound), l.GetStreamLimit(network.DirInbound), svc.name)
			require.Equal(t, int(want.StreamsOutbound), l.GetStreamLimit(network.DirOutbound), svc.name)
			require.Equal(t, int64(want.Memory), l.GetMemoryLimit(), svc.name)
			return nil
		}))

		max := int(cfg.ServicePeer[svc.name].StreamsOutbound)
		var open []network.Stream
		for range max {
			st, err := h.NewStream(ctx, remote.ID(), holdProto)
			require.NoError(t, err)
			open = append(open, st)
			require.NoError(t, st.Scope().SetService(svc.name), svc.name)
		}
		require.NoError(t, rm.ViewService(svc.name, func(sc network.ServiceScope) error {
			require.Equal(t, max, sc.Stat().NumStreamsOutbound, svc.name)
			return nil
		}))
		st, err := h.NewStream(ctx, remote.ID(), holdProto)
		require.NoError(t, err)
		require.Error(t, st.Scope().SetService(svc.name), "%s: stream %d to one peer", svc.name, max+1)
		st.Reset()
		for _, st := range open {
			st.Reset()
		}
	}
}
