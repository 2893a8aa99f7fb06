package node

import (
	nodechat "github.com/natterim/natter/node/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

// newChat starts the chat feature: the store is its outbox, history and
// contacts; the links say how each contact is reached.
func (n *Node) newChat() *nodechat.Service {
	return nodechat.New(n.host, n.store, n.store, n.store, n.p2p, acceptedOnly{n.store}, n.events,
		nodechat.WithLogger(n.log),
		nodechat.WithMetrics(n.metrics),
		nodechat.WithReadReceipts(n.cfg.Chat.ReadReceipts),
	)
}

// registerFileKinds hands chat's file kinds to the file manager.
func (n *Node) registerFileKinds() {
	n.chat.Register(n.files, pb.Kind_FILE_OFFER, pb.Kind_FILE_UPDATE)
}
