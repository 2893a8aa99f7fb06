package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	nodechat "github.com/natterim/natter/node/chat"
	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

// newChat starts the chat feature on what the node has today: the store
// is its outbox, history and contacts; links, the accepted-contact policy
// and the event bus are adapted below.
func (n *Node) newChat() *nodechat.Service {
	return nodechat.New(n.host, n.store, n.store, n.store, chatLinks{n}, chatPolicy{n}, n.events,
		nodechat.WithLogger(n.log),
		nodechat.WithMetrics(n.metrics),
		nodechat.WithReadReceipts(n.cfg.Chat.ReadReceipts),
	)
}

// registerFileKinds hands chat's file kinds to the file manager.
func (n *Node) registerFileKinds() {
	n.chat.Register(fileKinds{n.files}, pb.Kind_FILE_OFFER, pb.Kind_FILE_UPDATE)
}

// chatLinks is nodechat.Links over the node's connections.
type chatLinks struct{ n *Node }

func (l chatLinks) Path(p peer.ID) (core.Path, network.Conn) {
	path, c := l.n.pathTo(p)
	switch path {
	case control.PathDirect:
		return core.PathDirect, c
	case control.PathRelayed:
		return core.PathRelayed, c
	}
	return core.PathNone, nil
}

func (l chatLinks) Changed(p peer.ID) <-chan struct{} { return l.n.watch.changed(p) }

// chatPolicy is nodechat.Policy: only accepted contacts chat.
type chatPolicy struct{ n *Node }

func (c chatPolicy) Allow(ctx context.Context, p peer.ID) bool { return c.n.isAccepted(ctx, p) }

// fileKinds is nodechat.KindHandler for the file kinds, over the file
// manager.
type fileKinds struct{ m *fileMgr }

func (k fileKinds) Incoming(ctx context.Context, from peer.ID, fromName string, m *pb.Message) (store.Incoming, bool) {
	switch m.GetKind() {
	case pb.Kind_FILE_OFFER:
		o := k.m.incomingOffer(ctx, from, m)
		return store.Incoming{Kind: store.KindFile, Offer: o, Text: o.Transfer.Note}, true
	case pb.Kind_FILE_UPDATE:
		u := k.m.incomingUpdate(fromName, m.GetFileUpdate())
		if u == nil {
			return store.Incoming{}, false // a state this version does not know
		}
		return store.Incoming{Kind: store.KindFileUpdate, Update: u}, true
	}
	return store.Incoming{}, false
}

func (k fileKinds) Received(ts []store.Transfer) { k.m.received(ts) }

func (k fileKinds) Ref(id chat.MsgID) *control.FileRef { return k.m.ref(id) }
