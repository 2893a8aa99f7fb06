package node

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/prometheus/client_golang/prometheus"

	nodechat "github.com/natterim/natter/node/chat"
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
	cfg.Rendezvous = n.p2p.Rendezvous()
	svc, err := offline.New(cfg, n.key, n.store, offlineLinks{n}, mailbox.NewClient(n.host), offlineChat{n.chat}, acceptedOnly{n.store},
		offline.WithLogger(n.log), offline.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("offline delivery: %w", err)
	}
	n.offline = svc
	if cfg.Enabled {
		ts := mailbox.NewTokenService(n.host, svc.TokenReceiver(), mailbox.WithLogger(n.log), mailbox.WithMetrics(n.metrics))
		n.svcs = append(n.svcs, ts)
	}
	return nil
}

// offlineLinks is offline.Links on the node's host and links.
type offlineLinks struct{ n *Node }

func (l offlineLinks) Path(p peer.ID) (core.Path, network.Conn) { return l.n.p2p.Path(p) }

func (l offlineLinks) Changed(p peer.ID) <-chan struct{} { return l.n.p2p.Changed(p) }

func (l offlineLinks) Connected(p peer.ID) bool {
	return l.n.host.Network().Connectedness(p) == network.Connected
}

func (l offlineLinks) Connect(ctx context.Context, ai peer.AddrInfo) error {
	l.n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	return l.n.host.Connect(ctx, ai)
}

// offlineChat is offline.Chat: the chat service, and its wire form of an
// outbox entry (what a box seals).
type offlineChat struct{ *nodechat.Service }

func (offlineChat) ToWire(e store.OutboxEntry) *pb.Message { return nodechat.ToWire(e) }
