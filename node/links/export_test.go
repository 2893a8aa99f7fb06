package links

import (
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Internals the black-box tests (package links_test) reach.

// DialPlan is the host's dial ranker.
type DialPlan struct{ p *dialPlan }

// NewDialPlan is newDialPlan.
func NewDialPlan(rdvs []peer.AddrInfo) DialPlan { return DialPlan{newDialPlan(rdvs)} }

// Expect is dialPlan.expect.
func (d DialPlan) Expect(server peer.ID, ts []string) { d.p.expect(server, ts) }

// Rank is dialPlan.rank.
func (d DialPlan) Rank(addrs []ma.Multiaddr) []network.AddrDelay { return d.p.rank(addrs) }

var (
	ConnectEachTransport = connectEachTransport
	LinkChangeOf         = linkChange
	WaitProtocol         = waitProtocol
	ReservationError     = reservationError
	ResourceLimits       = resourceLimits
)
