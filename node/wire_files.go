package node

import (
	"context"

	"github.com/natterim/natter/node/files"
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
	return files.New(ctx, cfg, n.host, n.store, n.p2p, n.chat, acceptedOnly{n.store}, n.events,
		files.WithLogger(n.log), files.WithMetrics(n.metrics))
}
