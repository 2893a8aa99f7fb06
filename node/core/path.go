package core

import (
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// Path is how we reach a peer right now.
type Path uint8

// The paths, best last.
const (
	// PathNone: no connection.
	PathNone Path = iota
	// PathRelayed: only relayed (circuit v2, limited) connections.
	PathRelayed
	// PathDirect: at least one direct connection.
	PathDirect
)

// String is the control API's name of the path.
func (p Path) String() string {
	switch p {
	case PathDirect:
		return "direct"
	case PathRelayed:
		return "relayed"
	default:
		return "none"
	}
}

// IsCircuit reports whether a is a relayed (circuit v2) address.
func IsCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// PathOf is the one place that decides whether a connection is relayed: a
// circuit address, or a connection go-libp2p marks limited.
func PathOf(c network.Conn) Path {
	if IsCircuit(c.RemoteMultiaddr()) || c.Stat().Limited {
		return PathRelayed
	}
	return PathDirect
}

// BestPath is the best path among conns (PathNone when there are none).
func BestPath(conns []network.Conn) (Path, network.Conn) {
	best, bestConn := PathNone, network.Conn(nil)
	for _, c := range conns {
		if p := PathOf(c); p > best {
			best, bestConn = p, c
		}
	}
	return best, bestConn
}

// Transport names the transport of an address: "relay" for a circuit,
// else "quic", "tcp" or "other".
func Transport(a ma.Multiaddr) string {
	has := func(code int) bool { _, err := a.ValueForProtocol(code); return err == nil }
	switch {
	case IsCircuit(a):
		return "relay"
	case has(ma.P_QUIC_V1):
		return "quic"
	case has(ma.P_TCP):
		return "tcp"
	}
	return "other"
}
