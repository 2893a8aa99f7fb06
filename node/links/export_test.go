package links

import (
	"time"

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

// TransportRedialer is transportRedialer.
type TransportRedialer struct{ r *transportRedialer }

// NewTransportRedialer is newTransportRedialer.
func NewTransportRedialer(want []string, first time.Duration) TransportRedialer {
	return TransportRedialer{newTransportRedialer(want, first)}
}

// Step is transportRedialer.step.
func (r TransportRedialer) Step(now time.Time, have func() []string, redial func() error) (time.Time, bool, error) {
	return r.r.step(now, have, redial)
}

const TransportRedialAttempts = transportRedialAttempts

var (
	ConnectEachTransport = connectEachTransport
	LinkChangeOf         = linkChange
	WaitProtocol         = waitProtocol
	ReservationError     = reservationError
	ResourceLimits       = resourceLimits
)
