package core

import "github.com/libp2p/go-libp2p/core/peer"

// LinkChange is what happened to the link with a peer.
type LinkChange uint8

// The link changes.
const (
	// LinkUp: the peer became reachable (a first connection, relayed or
	// direct, after none).
	LinkUp LinkChange = iota + 1
	// LinkDown: the last connection to the peer closed.
	LinkDown
	// LinkPathChanged: still connected, over a different path (relayed
	// to direct, or back).
	LinkPathChanged
	// LinkPinged: a heartbeat tick while connected (sent just before the
	// heartbeat's ping); features that retry something over a live link
	// (a friend request, a token) use it as their tick.
	LinkPinged
)

// String names the change for logs.
func (c LinkChange) String() string {
	switch c {
	case LinkUp:
		return "up"
	case LinkDown:
		return "down"
	case LinkPathChanged:
		return "path"
	case LinkPinged:
		return "pinged"
	}
	return "unknown"
}

// LinkEvent is one change of the link with a contact (or any peer the
// links package keeps a link with), as the links package publishes it to
// the features that subscribe.
type LinkEvent struct {
	Peer   peer.ID
	Change LinkChange
	// Path is the path after the change.
	Path Path
}
