package node

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/offline"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/mailbox"
)

// startOffline wires offline delivery in: the Service (always: the API
// reports on it) and, if mailbox.enabled, the token service that keeps
// the tokens contacts give us.
func (n *Node) startOffline(reg prometheus.Registerer) error {
	cfg := offline.Config{
		Enabled:        n.cfg.Mailbox.Enabled,
		After:          n.cfg.Mailbox.After,
		Poll:           n.cfg.Mailbox.Poll,
		StatusInterval: n.cfg.Mailbox.StatusInterval,
		TokenTTL:       n.cfg.Mailbox.TokenTTL,
		Heartbeat:      n.cfg.Heartbeat,
	}
	for _, l := range n.rdvs {
		cfg.Rendezvous = append(cfg.Rendezvous, l.info)
	}
	svc, err := offline.New(cfg, n.key, n.store, offlineLinks{n}, mailbox.NewClient(n.host), offlineChat{n}, offlinePolicy{n},
		offline.WithLogger(n.log), offline.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("offline delivery: %w", err)
	}
	n.offline = svc
	if cfg.Enabled {
		ts := mailbox.NewTokenService(n.host, svc.TokenReceiver(), mailbox.WithLogger(n.log), mailbox.WithMetrics(n.metrics))
		n.svcs = append(n.svcs, closeIgnoringErr{ts})
	}
	return nil
}

// closeIgnoringErr fits a Close() error into n.svcs.
type closeIgnoringErr struct{ c interface{ Close() error } }

func (c closeIgnoringErr) Close() { _ = c.c.Close() }

// corePath is the typed path of one of the node's path strings.
func corePath(s string) core.Path {
	switch s {
	case control.PathDirect:
		return core.PathDirect
	case control.PathRelayed:
		return core.PathRelayed
	}
	return core.PathNone
}

// offlineLinks is offline.Links on the node's host and links.
type offlineLinks struct{ n *Node }

func (l offlineLinks) Path(p peer.ID) (core.Path, network.Conn) {
	path, c := l.n.pathTo(p)
	return corePath(path), c
}

func (l offlineLinks) Changed(p peer.ID) <-chan struct{} { return l.n.watch.changed(p) }

func (l offlineLinks) Connected(p peer.ID) bool {
	return l.n.host.Network().Connectedness(p) == network.Connected
}

func (l offlineLinks) Connect(ctx context.Context, ai peer.AddrInfo) error {
	l.n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	return l.n.host.Connect(ctx, ai)
}

// offlineChat is offline.Chat on the node's chatter.
type offlineChat struct{ n *Node }

func (c offlineChat) Receive(ctx context.Context, from peer.ID, conn network.Conn, msgs []*pb.Message) error {
	return c.n.chat.Receive(ctx, from, conn, msgs)
}

func (c offlineChat) ApplyChanges(p peer.ID, changes []store.StatusChange) {
	c.n.chat.applyChanges(p, changes)
}

func (c offlineChat) Enqueue(ctx context.Context, msgs []store.NewOutgoing) ([]store.OutboxEntry, error) {
	return c.n.chat.enqueue(ctx, msgs)
}

func (offlineChat) ToWire(e store.OutboxEntry) *pb.Message { return toWire(e) }

// offlinePolicy is offline.Policy: accepted contacts.
type offlinePolicy struct{ n *Node }

func (p offlinePolicy) Allow(ctx context.Context, id peer.ID) bool { return p.n.isAccepted(ctx, id) }
