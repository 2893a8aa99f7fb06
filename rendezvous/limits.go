package rendezvous

import (
	"fmt"
	"syscall"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/x/rate"

	rdvproto "github.com/natterim/natter/protocols/rendezvous"
)

// Streams one peer may have open per protocol (and per service) on the
// server, in each direction. What a natter node uses at most: one ping at a
// time, a few identify exchanges, an AutoNAT request, a DHT query or two,
// and its rendezvous requests: registration plus a lookup per contact, which
// a node that has just started makes for all its contacts at once.
const (
	peerStreamsPing       = 4
	peerStreamsIdentify   = 16
	peerStreamsAutoNAT    = 2
	peerStreamsKad        = 16
	peerStreamsRendezvous = 32
	// peerStreamsOther is for any protocol without its own line here (the
	// name directory, the mailbox, ...).
	peerStreamsOther = 32
)

// kadProtocol is the DHT's protocol ID with natter's prefix.
const kadProtocol = DHTProtocolPrefix + "/kad/1.0.0"

// resourceLimits builds the resource manager's limits from cfg.
//
// Principle: the shared scopes (system, transient, every service and every
// protocol in all) get the totals of limits.*: a smaller shared pool, say
// 64 ping streams for the whole server, is one that a few abusive
// addresses can drain for everyone (with go-libp2p's defaults, one
// address's 40 connections holding two ping streams each would stall every
// node's heartbeat). Abuse is stopped where it comes from: per peer, per
// protocol per peer, per IP (connections) and by the rate limits; the totals
// only keep a distributed attack within memory and file descriptors.
func resourceLimits(cfg Config) rcmgr.ConcreteLimitConfig {
	l := cfg.Limits
	conns := rcmgr.LimitVal(l.Connections)
	streams := rcmgr.LimitVal(l.Streams)
	mem := rcmgr.LimitVal64(l.Memory)
	// TCP connections and listeners (QUIC shares one socket per address).
	fds := rcmgr.LimitVal(l.Connections + 64)
	total := rcmgr.ResourceLimits{
		Conns: conns, ConnsInbound: conns, ConnsOutbound: conns,
		Streams: streams, StreamsInbound: streams, StreamsOutbound: streams,
		Memory: mem, FD: fds,
	}
	shared := rcmgr.ResourceLimits{
		Streams: streams, StreamsInbound: streams, StreamsOutbound: streams,
		Memory: mem,
	}
	perPeer := func(n int) rcmgr.ResourceLimits {
		v := rcmgr.LimitVal(n)
		return rcmgr.ResourceLimits{
			Streams: 2 * v, StreamsInbound: v, StreamsOutbound: v,
			Memory: rcmgr.LimitVal64(l.MemoryPerPeer),
		}
	}
	// A relayed connection is a hop stream from its source and a stop
	// stream to its destination, open for the circuit's life.
	circuits := cfg.Relay.MaxCircuits + 8
	peerConns := rcmgr.LimitVal(l.ConnectionsPerPeer)
	peerStreams := rcmgr.LimitVal(l.StreamsPerPeer)
	partial := rcmgr.PartialLimitConfig{
		System:               total,
		Transient:            total,
		AllowlistedSystem:    total,
		AllowlistedTransient: total,
		ServiceDefault:       shared,
		ProtocolDefault:      shared,
		ServicePeerDefault:   perPeer(peerStreamsOther),
		ProtocolPeerDefault:  perPeer(peerStreamsOther),
		PeerDefault: rcmgr.ResourceLimits{
			Conns: peerConns, ConnsInbound: peerConns, ConnsOutbound: peerConns,
			Streams: 2 * peerStreams, StreamsInbound: peerStreams, StreamsOutbound: peerStreams,
			Memory: rcmgr.LimitVal64(l.MemoryPerPeer), FD: peerConns,
		},
		Conn: rcmgr.ResourceLimits{
			Conns: 1, ConnsInbound: 1, ConnsOutbound: 1, FD: 1,
			Memory: rcmgr.LimitVal64(min(l.MemoryPerPeer, 32<<20)),
		},
		Stream: rcmgr.ResourceLimits{
			Streams: 1, StreamsInbound: 1, StreamsOutbound: 1,
			Memory: rcmgr.LimitVal64(min(l.MemoryPerPeer, 16<<20)),
		},
		Service: map[string]rcmgr.ResourceLimits{},
		ServicePeer: map[string]rcmgr.ResourceLimits{
			ping.ServiceName:     perPeer(peerStreamsPing),
			identify.ServiceName: perPeer(peerStreamsIdentify),
			autonat.ServiceName:  perPeer(peerStreamsAutoNAT),
			relay.ServiceName:    perPeer(2 * circuits),
			rdvproto.ServiceName: perPeer(peerStreamsRendezvous),
		},
		Protocol: map[protocol.ID]rcmgr.ResourceLimits{},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{
			ping.ID:                    perPeer(peerStreamsPing),
			identify.ID:                perPeer(peerStreamsIdentify),
			identify.IDPush:            perPeer(peerStreamsIdentify),
			autonat.AutoNATProto:       perPeer(peerStreamsAutoNAT),
			circuitproto.ProtoIDv2Hop:  perPeer(circuits),
			circuitproto.ProtoIDv2Stop: perPeer(circuits),
			rdvproto.ID:                perPeer(peerStreamsRendezvous),
			kadProtocol:                perPeer(peerStreamsKad),
		},
	}
	for svc := range partial.ServicePeer {
		partial.Service[svc] = shared
	}
	for p := range partial.ProtocolPeer {
		partial.Protocol[p] = shared
	}
	// Anything not set above (there should be nothing) falls back to
	// go-libp2p's defaults scaled to the same memory and descriptors.
	base := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&base)
	return partial.Build(base.Scale(l.Memory, int(fds)))
}

// subnetLimits are the connection limits per IP: per IPv4 address and per
// IPv6 /56, and eight times that per IPv6 /48.
func subnetLimits(cfg Config) (v4, v6 []rcmgr.ConnLimitPerSubnet) {
	n := cfg.Limits.ConnectionsPerIP
	return []rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: n}},
		[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: n}, {PrefixLength: 48, ConnCount: 8 * n}}
}

// newResourceManager sizes libp2p's resource manager for a public server
// (go-libp2p's defaults suit a desktop: a few hundred connections, 8 per
// IP). With stock, it is go-libp2p's default instead (for benchmarks that
// compare against it).
func newResourceManager(cfg Config, stock bool) (network.ResourceManager, error) {
	str, err := rcmgr.NewStatsTraceReporter()
	if err != nil {
		return nil, err
	}
	if stock {
		limits := rcmgr.DefaultLimits
		libp2p.SetDefaultServiceLimits(&limits)
		return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()), rcmgr.WithTraceReporter(str))
	}
	v4, v6 := subnetLimits(cfg)
	return rcmgr.NewResourceManager(
		rcmgr.NewFixedLimiter(resourceLimits(cfg)),
		rcmgr.WithTraceReporter(str),
		rcmgr.WithLimitPerSubnet(v4, v6),
		// No exemption for loopback (go-libp2p's default exempts
		// 127.0.0.0/8 and ::1 from the per-IP limits): a public server
		// treats every address alike, and tests and benchmarks on
		// loopback then see what the internet would.
		rcmgr.WithNetworkPrefixLimit([]rcmgr.NetworkPrefixLimit{}, []rcmgr.NetworkPrefixLimit{}),
		rcmgr.WithConnRateLimiters(connRateLimiter()),
	)
}

// connRateLimiter is the resource manager's rate of new connections per
// address: none. The gater already applies rate_limits.connections_per_ip
// (before the handshake, logged and counted). go-libp2p's default, which
// applies unless replaced, is far stricter and undocumented here: 16 at
// once per IPv4 address or IPv6 /56, then one per 5 s, inbound and
// outbound (AutoNAT dial-backs count), refused as CONNECTION_REFUSED
// (QUIC) or a connection closed before the security handshake (TCP). A
// node that restarts makes two connections: the 9th restart within a
// minute lost one of its transports, and so would 20 nodes behind one
// carrier-grade NAT that connections_per_ip is sized for.
func connRateLimiter() *rate.Limiter {
	return &rate.Limiter{} // zero limits: no limit
}

// fileLimit returns the process's RLIMIT_NOFILE soft limit (Go raises it
// to the hard limit at start-up).
func fileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	return rl.Cur, nil
}

// fileHeadroom is what the server needs in file descriptors beyond
// limits.connections: listeners, the database, the admin and metrics
// sockets, DHT dials.
const fileHeadroom = 1024
