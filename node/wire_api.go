package node

import (
	"path/filepath"

	"github.com/natterim/natter/node/api"
	"github.com/natterim/natter/node/control"
)

// startAPI serves the control API on the control socket (and the loopback
// TCP port, if configured). The node itself still implements every
// interface node/api declares; as features move to their own packages,
// their values are passed here instead.
func (n *Node) startAPI() (*api.Server, error) {
	return api.New(api.Config{
		Socket:    n.socketPath(),
		TCPListen: n.cfg.Control.TCPListen,
		TokenFile: filepath.Join(n.cfg.DataDir, api.TokenName),
	}, api.Services{
		Node:     n,
		Contacts: n.social,
		Presence: n.social,
		Chat:     n.chat,
		Files:    n.files,
		Profiles: n.social,
		Names:    n.social,
		Mailbox:  n.offline,
		Events:   n.events,
	}, api.WithLogger(n.log))
}

func (n *Node) socketPath() string {
	if n.cfg.Control.Socket != "" {
		return n.cfg.Control.Socket
	}
	return control.SocketPath(n.cfg.DataDir)
}
