package links

import (
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// blockGater is the host's connection gater: it refuses every connection
// to or from a blocked peer, in both directions, before any protocol runs
// (inbound ones right after the security handshake, when the peer's
// identity is known). The blocked set mirrors the contacts in state
// blocked.
type blockGater struct {
	mu      sync.RWMutex // guards blocked
	blocked map[peer.ID]struct{}
	refused prometheus.Counter
	count   atomic.Uint64 // refused, readable without a registry
}

func newBlockGater(reg prometheus.Registerer) *blockGater {
	g := &blockGater{
		blocked: map[peer.ID]struct{}{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "natter",
			Name:      "blocked_connections_total",
			Help:      "Connections to or from blocked peers refused by the connection gater.",
		}),
	}
	if reg != nil {
		_ = reg.Register(g.refused)
	}
	return g
}

func (g *blockGater) set(p peer.ID, blocked bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if blocked {
		g.blocked[p] = struct{}{}
	} else {
		delete(g.blocked, p)
	}
}

func (g *blockGater) isBlocked(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.blocked[p]
	return ok
}

func (g *blockGater) refuse(p peer.ID) bool {
	if g.isBlocked(p) {
		g.refused.Inc()
		g.count.Add(1)
		return true
	}
	return false
}

func (g *blockGater) InterceptPeerDial(p peer.ID) bool { return !g.refuse(p) }

func (g *blockGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.isBlocked(p) }

func (g *blockGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *blockGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.refuse(p)
}

func (g *blockGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
