// Package node is a natter home peer: the daemon a user runs behind their
// router.
//
// A Node owns a libp2p host and keeps two kinds of links alive:
//
//	          rendezvous (public VM)
//	         /  relay v2, registry  \
//	reserve +                        + reserve
//	register|   1. look up B          |register
//	        |   2. A --relay--> B     |
//	     node A <======== 3. DCUtR ========> node B
//	   (home NAT)     direct TCP/QUIC      (home NAT)
//
// Rendezvous links (rendezvous.go) connect to every configured server over
// TCP and QUIC at once (so the NAT maps, and identify observes, both
// transports), take a relay reservation, register under our peer ID,
// refresh both before they expire, ping as a heartbeat, and reconnect with
// backoff when the server goes away.
//
// Contact links (links.go) look each contact up (rendezvous, invite hints,
// DHT), connect through the relay, and let DCUtR upgrade the link to a
// direct one; while it stays relayed they retry the upgrade with backoff.
// Established links survive the rendezvous going down.
//
// Before dialling any contact the node waits until the hole-punching service
// is armed, which go-libp2p does only once identify with a rendezvous has
// told us our public address (docs/architecture.md).
//
// The user drives the node through the control API (api.go), served on a
// unix socket in the data dir.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/internal/dirlock"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/offline"
	"github.com/natterim/natter/node/store"
	rdvproto "github.com/natterim/natter/protocols/rendezvous"
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

// WithRegisterer exports the node's metrics to reg (default: a private
// registry).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Node is a running natter peer.
type Node struct {
	cfg       Config
	log       *slog.Logger
	key       crypto.PrivKey
	startedAt time.Time

	lock    *dirlock.Lock
	store   *store.Store
	host    host.Host
	nat     *natWatch
	dht     *dht.IpfsDHT
	rdvc    *rdvproto.Client
	metrics *wire.Metrics
	events  *core.Bus
	watch   *connWatch

	reachability atomic.Int32 // network.Reachability
	hps          atomic.Pointer[holepunch.Service]
	plan         *dialPlan

	rdvs  []*rdvLink
	links *contactLinks
	chat  *chatter
	files *fileMgr
	gater *blockGater
	reqs  *requests
	self  selfPresence
	names *nameDir
	profs *profiles
	svcs  []interface{ Close() }
	ready chan struct{} // closed once hole punching is armed (or we gave up waiting)

	api *apiServer

	offline *offline.Service

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
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
		watch:     newConnWatch(),
		ready:     make(chan struct{}),
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
	n.gater = newBlockGater(o.reg)
	for _, c := range contacts {
		if c.State == store.StateBlocked {
			n.gater.set(c.PeerID, true)
		}
	}
	n.reqs = newRequests()
	if err := n.loadPresence(ctx); err != nil {
		return nil, err
	}
	rdvInfos, _ := cfg.RendezvousInfos() // validated above
	// Before the host starts: its address factory reads n.rdvs.
	for _, ai := range rdvInfos {
		n.rdvs = append(n.rdvs, newRdvLink(ai))
	}
	if n.host, err = n.newHost(rdvInfos, o.reg); err != nil {
		return nil, err
	}
	n.log = n.log.With("self", n.host.ID().ShortString())
	n.rdvc = rdvproto.NewClient(n.host)
	if cfg.DHT {
		if n.dht, err = n.newDHT(rdvInfos); err != nil {
			return nil, err
		}
	}
	if err := n.startEventLoop(); err != nil {
		return nil, err
	}
	n.links = newContactLinks()
	n.chat = newChatter(n)
	n.goRun(n.chat.commitLoop)
	n.startServices()
	n.startProfile()
	n.names = newNameDir()
	if err := n.startOffline(o.reg); err != nil {
		return nil, err
	}
	if n.files, err = newFileMgr(n); err != nil {
		return nil, err
	}
	n.svcs = append(n.svcs, n.files)
	if err := n.files.start(ctx); err != nil {
		return nil, err
	}
	n.goRun(n.idleLoop)

	if n.api, err = n.startAPI(); err != nil {
		return nil, err
	}
	n.goRun(n.waitReady)
	for _, l := range n.rdvs {
		n.goRun(func(ctx context.Context) { n.runRendezvous(ctx, l) })
	}
	n.goRun(n.namesLoop)
	for _, c := range contacts {
		if wantsLink(c.State) {
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

// goRun starts f as a goroutine owned by the node: it gets the node's
// lifetime context and Close waits for it.
func (n *Node) goRun(f func(ctx context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f(n.ctx)
	}()
}

// Close stops everything the node started, in reverse order, and waits for
// its goroutines. It is safe to call more than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		// Tell contacts we are going before anything stops, so that they
		// show us offline at once.
		n.pushOffline()
		n.cancel()
		var errs []error
		if n.offline != nil {
			errs = append(errs, n.offline.Close())
		}
		if n.api != nil {
			errs = append(errs, n.api.close())
		}
		// Tell rendezvous servers we are leaving so that contacts see us
		// offline at once rather than after a heartbeat timeout.
		n.unregisterAll()
		// Abort hole punches in flight so the contact links can end now;
		// the host closes the service again later, which is harmless.
		if hps := n.hps.Load(); hps != nil {
			_ = hps.Close()
		}
		n.wg.Wait()
		for _, s := range n.svcs {
			s.Close()
		}
		if n.chat != nil {
			n.chat.close()
		}
		n.events.Close()
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
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

// waitReady closes n.ready once the DCUtR handler is registered (we know
// our public address), or after a bound so that a node that can never
// punch still dials through the relay.
func (n *Node) waitReady(ctx context.Context) {
	defer close(n.ready)
	if len(n.rdvs) == 0 || !n.cfg.HolePunching {
		return
	}
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.holePunchArmed() {
			n.log.Debug("hole punching armed", "after", time.Since(n.startedAt))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			n.log.Warn("no public address learned yet; contacts will be dialled through the relay only until one is")
			return
		case <-tick.C:
		}
	}
}
