package links

import (
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/natterim/natter/node/core"
)

// dialPlan is the host's dial ranker. It exists because we want two
// connections to each rendezvous server, one per transport: the NAT then
// has a mapping, and identify an observed address, for TCP and for QUIC,
// and DCUtR can punch either. go-libp2p keeps one dial per peer and cancels
// the remaining attempts as soon as the first connection is up, unless
// another dial request to the same peer is still waiting for *its*
// addresses; a request's addresses are what the ranker returns for it. So
// the rendezvous link issues one Connect per transport at once, after
// queueing the transports here (expect); the ranker hands each request the
// addresses of one transport. This leans on how go-libp2p's dial worker
// treats concurrent requests, which is not a documented contract: the
// library has no option for "one connection per transport".
// TestDialPlanConnectsEachTransport fails if an upgrade changes it; the
// rendezvous link also checks the result and dials again (see
// connectEachTransport).
//
// Contacts with relay addresses are dialled on every address at once (no
// 500 ms relay delay): DCUtR makes the link direct right after, faster
// than a direct dial to a NATed address that is bound to time out. Every
// other peer gets libp2p's default ranking.
type dialPlan struct {
	rdv map[string]peer.ID // rendezvous address bytes -> server

	mu      sync.Mutex           // guards the following fields
	pending map[peer.ID][]string // transports still to hand out, per server
}

func newDialPlan(rdvs []peer.AddrInfo) *dialPlan {
	p := &dialPlan{rdv: map[string]peer.ID{}, pending: map[peer.ID][]string{}}
	for _, ai := range rdvs {
		for _, a := range ai.Addrs {
			p.rdv[string(a.Bytes())] = ai.ID
		}
	}
	return p
}

// expect queues one dial request per transport to server.
func (p *dialPlan) expect(server peer.ID, transports []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[server] = append(p.pending[server][:0], transports...)
}

func (p *dialPlan) rank(addrs []ma.Multiaddr) []network.AddrDelay {
	for _, a := range addrs {
		if server, ok := p.rdv[string(a.Bytes())]; ok {
			return swarm.NoDelayDialRanker(p.take(server, addrs))
		}
	}
	if slices.ContainsFunc(addrs, core.IsCircuit) {
		return swarm.NoDelayDialRanker(addrs)
	}
	return swarm.DefaultDialRanker(addrs)
}

// take returns the addresses of the next queued transport for server, or
// all of them when none is queued (or none matches).
func (p *dialPlan) take(server peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.pending[server]
	if len(q) == 0 {
		return addrs
	}
	t := q[0]
	p.pending[server] = q[1:]
	only := slices.DeleteFunc(slices.Clone(addrs), func(a ma.Multiaddr) bool { return core.Transport(a) != t })
	if len(only) == 0 {
		return addrs
	}
	return only
}
