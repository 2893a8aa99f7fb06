package links

import (
	ma "github.com/multiformats/go-multiaddr"

	"github.com/natterim/natter/node/core"
)

// Transport names the transport of an address: "relay" for a circuit,
// else "quic", "tcp" or "other".
func Transport(a ma.Multiaddr) string {
	switch {
	case core.IsCircuit(a):
		return "relay"
	case hasProtocol(a, ma.P_QUIC_V1):
		return "quic"
	case hasProtocol(a, ma.P_TCP):
		return "tcp"
	}
	return "other"
}

func hasProtocol(a ma.Multiaddr, code int) bool {
	_, err := a.ValueForProtocol(code)
	return err == nil
}
