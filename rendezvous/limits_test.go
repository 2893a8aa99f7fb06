package rendezvous_test

import (
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"

	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/stretchr/testify/require"

	rdvproto "github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/rendezvous"
)

func TestResourceLimitsFollowConfig(t *testing.T) {
	cfg := rendezvous.DefaultConfig()
	cfg.DataDir = "/d"
	cfg.Limits.Connections = 5000
	cfg.Connections.LowWater, cfg.Connections.HighWater = 3000, 4000
	cfg.Limits.Streams = 9000
	cfg.Limits.StreamsPerPeer = 100
	cfg.Relay.MaxCircuits = 20
	require.NoError(t, cfg.Validate())
	l := rendezvous.ResourceLimits(cfg).ToPartialLimitConfig()

	require.Equal(t, rcmgr.LimitVal(5000), l.System.ConnsInbound)
	require.Equal(t, rcmgr.LimitVal(9000), l.System.StreamsInbound)
	require.Equal(t, rcmgr.LimitVal64(cfg.Limits.Memory), l.System.Memory)
	// Shared scopes get the totals: none is a small pool that a few
	// addresses could drain.
	require.Equal(t, l.System.ConnsInbound, l.Transient.ConnsInbound)
	require.Equal(t, l.System.StreamsInbound, l.Transient.StreamsInbound)
	require.Equal(t, rcmgr.LimitVal(9000), l.Protocol[ping.ID].StreamsInbound)
	require.Equal(t, rcmgr.LimitVal(9000), l.Service[rdvproto.ServiceName].StreamsInbound)
	require.Equal(t, rcmgr.LimitVal(9000), l.ProtocolDefault.StreamsInbound)
	// Per peer.
	require.Equal(t, rcmgr.LimitVal(100), l.PeerDefault.StreamsInbound)
	require.Equal(t, rcmgr.LimitVal(cfg.Limits.ConnectionsPerPeer), l.PeerDefault.ConnsInbound)
	require.Equal(t, rcmgr.LimitVal(4), l.ProtocolPeer[ping.ID].StreamsInbound)
	require.Equal(t, rcmgr.LimitVal(32), l.ProtocolPeer[rdvproto.ID].StreamsInbound)
	require.Equal(t, rcmgr.LimitVal(28), l.ProtocolPeer[circuitproto.ProtoIDv2Hop].StreamsInbound)
	require.Equal(t, rcmgr.LimitVal(28), l.ProtocolPeer[circuitproto.ProtoIDv2Stop].StreamsOutbound)
	require.Equal(t, rcmgr.LimitVal(32), l.ProtocolPeerDefault.StreamsInbound, "new protocols get a per-peer limit too")
}

// TestConnectionRateFollowsConfig: new connections from one address are
// limited by rate_limits.connections_per_ip (in the gater) and
// limits.connections_per_ip, not by go-libp2p's own connection rate
// limiter, which would refuse the 17th within 5 s (a node restarting a
// few times, or nodes sharing an address, lost connections to it).
func TestConnectionRateFollowsConfig(t *testing.T) {
	cfg := rendezvous.DefaultConfig()
	cfg.DataDir = "/d"
	require.NoError(t, cfg.Validate())
	// One connection after the other, each closed at once: only the
	// rate counts, not how many are open.
	open := func(rm network.ResourceManager) (n int) {
		for i := range cfg.Limits.ConnectionsPerIP {
			s, err := rm.OpenConnection(network.DirInbound, true, ma.StringCast(fmt.Sprintf("/ip4/203.0.113.7/tcp/%d", 1000+i)))
			if err != nil {
				return n
			}
			s.Done()
			n++
		}
		return n
	}
	ours, err := rendezvous.NewResourceManager(cfg, false)
	require.NoError(t, err)
	defer ours.Close()
	require.Equal(t, cfg.Limits.ConnectionsPerIP, open(ours), "connections_per_ip in a row from one address")

	stock, err := rendezvous.NewResourceManager(cfg, true)
	require.NoError(t, err)
	defer stock.Close()
	require.Equal(t, 16, open(stock), "go-libp2p's default connection rate: if this changes, check connRateLimiter's comment")
}
