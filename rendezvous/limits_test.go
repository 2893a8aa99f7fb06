package rendezvous_test

import (
	"testing"

	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
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
