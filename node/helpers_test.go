package node

import (
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// pathTo is the links' Path as the API string, which the tests compare.
func (n *Node) pathTo(p peer.ID) (string, network.Conn) {
	path, c := n.p2p.Path(p)
	return path.String(), c
}
