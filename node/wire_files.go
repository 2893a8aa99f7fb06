package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/files"
	"github.com/natterim/natter/node/store"
)

// newFiles starts file transfer (node/files) with what it needs of the
// rest of the node.
func (n *Node) newFiles(ctx context.Context) (*files.Manager, error) {
	cfg := files.Config{
		DataDir:       n.cfg.DataDir,
		DownloadDir:   n.cfg.Files.DownloadDir,
		AutoAcceptMax: n.cfg.Files.AutoAcceptMax,
		RelayMax:      n.cfg.Files.RelayMax,
		StallTimeout:  n.cfg.Files.StallTimeout,
	}
	return files.New(ctx, cfg, n.host, n.store, n.p2p, filesChat{n}, filesPolicy{n}, n.events,
		files.WithLogger(n.log), files.WithMetrics(n.metrics))
}

// filesChat implements files.Chat.
type filesChat struct{ n *Node }

func (c filesChat) Wake(p peer.ID) {
	if ob := c.n.chat.existingBox(p); ob != nil {
		ob.wake()
	}
}

func (c filesChat) ContactName(ctx context.Context, p peer.ID) string {
	return c.n.chat.contactName(ctx, p)
}

func (c filesChat) ToAPI(m store.Message, name string) control.Message {
	return c.n.chat.toAPI(m, name)
}

// filesPolicy implements files.Policy.
type filesPolicy struct{ n *Node }

func (f filesPolicy) Allow(ctx context.Context, p peer.ID) bool { return f.n.isAccepted(ctx, p) }
