// Package node is a natter home peer: the daemon a user runs behind their
// router. It is only the wiring of the feature packages:
//
//	node/api ──────────── the control API (HTTP on the control socket)
//	   │ interfaces api declares
//	node/social  node/chat ◀─kinds─ node/files  node/offline
//	   │ interfaces each feature declares (its deps.go)
//	node/links ────────── the libp2p host, rendezvous and contact links
//
// New builds them in order — the store, links (the host), social, chat,
// offline delivery, files, the API — handing each the narrow interfaces it
// declared (the wire_*.go files hold the few adapters), then starts the
// links; Close stops them in reverse. A feature never holds the node or
// another feature, only what node passed it: see docs/architecture.md.
//
// The status view (status.go) is composed here, since it reads several
// features at once.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/internal/dirlock"
	"github.com/natterim/natter/node/api"
	nodechat "github.com/natterim/natter/node/chat"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/files"
	"github.com/natterim/natter/node/links"
	"github.com/natterim/natter/node/offline"
	"github.com/natterim/natter/node/social"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/wire"
)

// Version is reported in status and the libp2p user agent.
const Version = "0.1.0"

// ErrAlreadyRunning means another daemon holds the data dir.
var ErrAlreadyRunning = errors.New("a natter daemon is already running on this data dir")

// Option configures a Node beyond its Config.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Node is a running natter peer.
type Node struct {
	cfg       Config
	log       *slog.Logger
	key       crypto.PrivKey
	startedAt time.Time

	lock    *dirlock.Lock
	store   *store.Store
	p2p     *links.Service // the host, rendezvous and contact links
	host    host.Host      // p2p.Host(), which the protocol services run on
	metrics *wire.Metrics
	events  *core.Bus

	chat    *nodechat.Service
	offline *offline.Service // the sealed mailbox and deposit tokens
	files   *files.Manager
	svcs    []io.Closer // protocol services to close last

	api *api.Server

	social *social.Service // contacts, presence, profiles, names

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

// New starts a node: it locks the data dir, opens the database, starts the
// libp2p host, the rendezvous and contact links, and the control API. The
// caller must Close it.
func New(ctx context.Context, cfg Config, key crypto.PrivKey, opts ...Option) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	if fi, err := os.Stat(cfg.DataDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("data dir %s does not exist; create it with: natter init --data-dir %s", cfg.DataDir, cfg.DataDir)
	}

	lctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:       cfg,
		log:       o.log,
		key:       key,
		startedAt: time.Now(),
		metrics:   wire.NewMetrics(o.reg),
		events:    core.NewBus(),
		ctx:       lctx,
		cancel:    cancel,
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()

	if n.lock, err = LockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if n.store, err = store.Open(ctx, filepath.Join(cfg.DataDir, store.FileName)); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	contacts, err := n.store.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	rdvInfos, _ := cfg.RendezvousInfos() // validated above
	if n.p2p, err = n.newLinks(rdvInfos, contacts, o.reg); err != nil {
		return nil, err
	}
	n.host = n.p2p.Host()
	n.log = n.log.With("self", n.host.ID().ShortString())
	if err := n.startSocial(ctx); err != nil {
		return nil, err
	}
	n.chat = n.newChat()
	if err := n.startOffline(o.reg); err != nil {
		return nil, err
	}
	if n.files, err = n.newFiles(ctx); err != nil {
		return nil, err
	}
	n.registerFileKinds()

	if n.api, err = n.startAPI(); err != nil {
		return nil, err
	}
	n.p2p.Start()
	for _, c := range contacts {
		if social.WantsLink(c.State) {
			n.startContact(c.PeerID)
		}
	}
	n.log.Info("node started", "peer_id", n.host.ID().String(), "listen", n.host.Addrs(), "rendezvous", len(rdvInfos))
	return n, nil
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host exposes the libp2p host (for tests and benchmarks).
func (n *Node) Host() host.Host { return n.host }

// Chat exposes the chat feature (for benchmarks that measure it without
// the control API in between).
func (n *Node) Chat() *nodechat.Service { return n.chat }

// Close stops everything the node started, in reverse order, and waits for
// its goroutines. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		// Tell contacts we are going before anything stops, so that they
		// show us offline at once (social's Close does).
		if n.social != nil {
			errs = append(errs, n.social.Close())
		}
		// Seal what waits for contacts we have no link with into their
		// mailboxes now rather than after mailbox.after, bounded, while
		// the rendezvous connections are still up.
		n.flushMailboxes()
		n.cancel()
		if n.offline != nil {
			errs = append(errs, n.offline.Close())
		}
		// Chat stops with the node's context, as its goroutines always
		// did: deliverers end, Enqueue fails with core.ErrClosed.
		if n.chat != nil {
			_ = n.chat.Close()
		}
		if n.files != nil {
			// Stop the transfer runners with the node's other loops,
			// then the file service.
			errs = append(errs, n.files.Close())
		}
		if n.api != nil {
			errs = append(errs, n.api.Close())
		}
		// Stop the links: it tells rendezvous servers we are leaving, so
		// that contacts see us offline at once rather than after a
		// heartbeat timeout, and waits for the links' goroutines.
		if n.p2p != nil {
			n.p2p.Stop()
		}
		for _, s := range n.svcs {
			errs = append(errs, s.Close())
		}
		n.events.Close()
		if n.p2p != nil {
			errs = append(errs, n.p2p.Close())
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		if n.lock != nil {
			errs = append(errs, n.lock.Release())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// flushMailboxes deposits, on a clean stop, what is queued for contacts we
// have no link with (offline.Flush), within mailbox.flush_on_stop; what
// does not make it waits in the outbox for the next start.
func (n *Node) flushMailboxes() {
	if n.offline == nil || n.cfg.Mailbox.FlushOnStop <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Mailbox.FlushOnStop)
	defer cancel()
	start := time.Now()
	done, err := n.offline.Flush(ctx)
	if err != nil {
		n.log.Info("mailbox flush on stop incomplete; the rest waits in the outbox", "contacts", done, "took", time.Since(start).Round(time.Millisecond), "err", err)
		return
	}
	if done > 0 {
		n.log.Info("mailbox flushed on stop", "contacts", done, "took", time.Since(start).Round(time.Millisecond))
	}
}
