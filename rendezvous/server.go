package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/internal/dirlock"
	"github.com/natterim/natter/protocols/names"
	rdvproto "github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/protocols/wire"
	"github.com/natterim/natter/rendezvous/store"
)

// DHTProtocolPrefix keeps natter's DHT apart from the public IPFS one.
const DHTProtocolPrefix = protocol.ID("/natter")

// UnlimitedCircuitDuration is the time limit given to relayed connections:
// effectively none. (In circuit relay v2 a zero duration would mean an
// immediate deadline, and no limit at all would make relayed connections
// look unlimited to the nodes, which must treat them as limited.) 100 years
// still fits the protocol's uint32 seconds.
const UnlimitedCircuitDuration = 100 * 365 * 24 * time.Hour

// reservationTag is the connection-manager tag the relay service puts on a
// peer while it holds a reservation (relay.go in go-libp2p).
const reservationTag = "relay-reservation"

// Option configures a Server.
type Option func(*options)

type options struct {
	log   *slog.Logger
	stock bool
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithStockLibp2pLimits replaces the server's limits with go-libp2p's
// defaults: the default resource manager (scaled to the machine),
// connection manager (160/192), relay.DefaultResources() (128
// reservations, 8 per IP, relayed connections cut after 2 minutes or 128
// KiB) and the registry's DefaultLimits, and no rate limits. It exists to
// measure against (natter-rendezvous bench); never run a server with it.
func WithStockLibp2pLimits() Option { return func(o *options) { o.stock = true } }

// Server is a running rendezvous server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	started time.Time

	lock     *dirlock.Lock
	db       *store.Store
	h        host.Host
	relay    *relay.Relay
	dht      *dht.IpfsDHT
	rdv      *rdvproto.Service
	names    *names.Service
	mbox     *mailboxState
	notifiee network.Notifiee
	metrics  *metrics
	limits   *limiters // nil with WithStockLibp2pLimits

	admin      *http.Server
	adminPath  string
	metricsSrv *http.Server
	metricsLn  net.Listener
	wg         sync.WaitGroup

	mu       sync.Mutex // guards the following fields
	peers    map[peer.ID]*peerState
	admitted map[peer.ID]admitted // reservations.go

	ctx    context.Context // lifetime of background work, cancelled by Close
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

type peerState struct {
	reservationExpires time.Time
	lastHeartbeat      time.Time
}

// New starts a rendezvous server: a libp2p host listening on cfg.Listen
// with the circuit relay v2 service, AutoNAT service, identify, ping (as
// heartbeat), the rendezvous registry, the servers' DHT, the admin API on
// <data_dir>/admin.sock and, if configured, the metrics endpoint. The
// context only bounds start-up; Close stops the server.
func New(ctx context.Context, cfg Config, opts ...Option) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		cfg:       cfg,
		log:       o.log,
		reg:       prometheus.NewRegistry(),
		started:   time.Now(),
		peers:     map[peer.ID]*peerState{},
		admitted:  map[peer.ID]admitted{},
		adminPath: filepath.Join(cfg.DataDir, AdminSocket),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	if err := EnsureDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if s.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	sk, err := LoadOrCreateKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if s.db, err = store.Open(ctx, cfg.DataDir); err != nil {
		return nil, err
	}
	listen, err := s.probeListenAddrs()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	if s.metrics, err = newMetrics(s); err != nil {
		return nil, err
	}
	if !o.stock {
		s.limits = newLimiters(cfg.RateLimits)
		if n, err := fileLimit(); err == nil && n < uint64(cfg.Limits.Connections+fileHeadroom) {
			s.log.Warn("file descriptor limit below limits.connections: connections will fail before the limit is reached; raise LimitNOFILE (systemd) or ulimit -n",
				"nofile", n, "need", cfg.Limits.Connections+fileHeadroom)
		}
	}
	rm, err := newResourceManager(cfg, o.stock)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	rcmgr.MustRegisterWith(s.reg)
	low, high, grace := cfg.Connections.LowWater, cfg.Connections.HighWater, cfg.Connections.GracePeriod
	if o.stock {
		low, high, grace = 160, 192, time.Minute // libp2p.DefaultConnectionManager
	}
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(grace))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	hopts := []libp2p.Option{
		libp2p.Identity(sk),
		libp2p.ListenAddrs(listen...),
		// No SO_REUSEPORT: a second server on the same port must fail,
		// not share the port. The server needs no hole punching.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.ForceReachabilityPublic(),
		libp2p.EnableNATService(),
		libp2p.DisableRelay(), // the relay transport (client side) is not needed here
		libp2p.Ping(false),    // our handler records heartbeats, see handlePing
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.PrometheusRegisterer(s.reg),
		libp2p.UserAgent("natter-rendezvous"),
	}
	if ann := cfg.AnnounceAddrs(); len(ann) > 0 {
		hopts = append(hopts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return ann }))
	}
	if !o.stock {
		a := cfg.RateLimits.AutoNAT
		hopts = append(hopts,
			libp2p.ConnectionGater(gater{s}),
			libp2p.AutoNATServiceRateLimit(a.Global, a.PerPeer, a.Interval))
	}
	if s.h, err = libp2p.New(hopts...); err != nil {
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	if err := s.checkListening(listen); err != nil {
		return nil, err
	}

	pinger := &ping.PingService{Host: s.h}
	s.h.SetStreamHandler(ping.ID, func(st network.Stream) { s.handlePing(pinger, st) })

	res := relay.Resources{
		Limit: &relay.RelayLimit{
			Duration: UnlimitedCircuitDuration,
			Data:     cfg.Relay.CircuitDataLimit,
		},
		ReservationTTL:         cfg.Relay.ReservationTTL,
		MaxReservations:        cfg.Relay.MaxReservations,
		MaxCircuits:            cfg.Relay.MaxCircuits,
		BufferSize:             cfg.Relay.BufferSize,
		MaxReservationsPerPeer: 1,
		MaxReservationsPerIP:   cfg.Relay.MaxReservationsPerIP,
		MaxReservationsPerASN:  cfg.Relay.MaxReservationsPerASN,
	}
	if o.stock {
		res = relay.DefaultResources()
	}
	s.relay, err = relay.New(s.h,
		relay.WithResources(res),
		relay.WithACL(acl{s}),
		relay.WithMetricsTracer(relay.NewMetricsTracer(relay.WithRegisterer(s.reg))))
	if err != nil {
		return nil, fmt.Errorf("start relay service: %w", err)
	}

	limits := rdvproto.DefaultLimits()
	g := cfg.Registry
	limits.MinTTL, limits.MaxTTL, limits.DefaultTTL = g.MinTTL, g.MaxTTL, g.DefaultTTL
	ropts := []rdvproto.Option{
		rdvproto.WithLogger(s.log),
		rdvproto.WithMetrics(wire.NewMetrics(s.reg)),
		rdvproto.WithEventHandler(func(e rdvproto.Event) { s.onRegistryEvent(e); s.mailboxRegistered(e) }),
		rdvproto.WithRefusals(func(req, reason string) { s.metrics.refused.WithLabelValues(req, reason).Inc() }),
	}
	if !o.stock {
		limits.MaxRegistrations = g.MaxRegistrations
		limits.MaxRegistrationsPerSource = g.MaxRegistrationsPerIP
		limits.MaxRegistrationsPerPeer = g.MaxRegistrationsPerPeer
		limits.MaxRecordSize = g.MaxRecordSize
		limits.MaxAddrs = g.MaxAddrs
		limits.MaxDiscoverLimit = g.MaxDiscoverLimit
		limits.RequestTimeout = g.RequestTimeout
		ropts = append(ropts, rdvproto.WithGate(s.registryGate))
	}
	s.rdv, err = rdvproto.New(s.h, append(ropts, rdvproto.WithLimits(limits))...)
	if err != nil {
		return nil, fmt.Errorf("start rendezvous registry: %w", err)
	}
	if err := s.startMailbox(); err != nil {
		return nil, err
	}

	if err := s.startNames(); err != nil {
		return nil, fmt.Errorf("start name directory: %w", err)
	}

	if cfg.DHT.Enabled {
		boot, _ := cfg.BootstrapInfos() // checked by Validate
		dopts := []dht.Option{
			dht.Mode(dht.ModeServer),
			dht.ProtocolPrefix(DHTProtocolPrefix),
			// Peer routing only: no provider or value records from
			// strangers on a public server.
			dht.DisableProviders(),
			dht.DisableValues(),
		}
		if len(boot) > 0 {
			dopts = append(dopts, dht.BootstrapPeers(boot...))
		}
		if s.dht, err = dht.New(s.h, dopts...); err != nil {
			return nil, fmt.Errorf("start dht: %w", err)
		}
	}

	s.notifiee = &network.NotifyBundle{ConnectedF: s.connected, DisconnectedF: s.disconnected}
	s.h.Network().Notify(s.notifiee)
	s.wg.Add(1)
	go s.sweep()

	if err := s.serveAdmin(); err != nil {
		return nil, err
	}
	if cfg.MetricsListen != "" {
		if err := s.serveMetrics(); err != nil {
			return nil, err
		}
	}
	s.log.Info("rendezvous server started", "peer", s.h.ID(), "addrs", s.Addrs(), "data_dir", cfg.DataDir)
	return s, nil
}

// probeListenAddrs checks every listen address before libp2p binds it:
// libp2p starts as long as one address works, but a server that silently
// lost its TCP port is worse than one that refuses to start. An IPv6
// address on a machine without IPv6 is skipped with a warning.
func (s *Server) probeListenAddrs() ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, a := range s.cfg.ListenAddrs() {
		err := probeListen(a)
		switch {
		case err == nil:
			out = append(out, a)
		case errors.Is(err, errUnavailable):
			s.log.Warn("listen address skipped: no IPv6 on this machine", "addr", a, "err", err)
		default:
			return nil, fmt.Errorf("listen %s: %w", a, err)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("listen: none of %v can be used on this machine", s.cfg.Listen)
	}
	return out, nil
}

// checkListening makes sure each requested address got a listener.
func (s *Server) checkListening(want []ma.Multiaddr) error {
	have := s.h.Network().ListenAddresses()
	for _, w := range want {
		found := false
		for _, h := range have {
			if sameListener(w, h) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("listen %s: the address could not be bound", w)
		}
	}
	return nil
}

// sameListener reports whether listener address h serves requested
// address w (same IP, transport and, unless w asked for 0, port).
func sameListener(w, h ma.Multiaddr) bool {
	if len(w) < 2 || len(h) < 2 || transportOf(w) != transportOf(h) {
		return false
	}
	if !w[0].Equal(&h[0]) || w[1].Code() != h[1].Code() {
		return false
	}
	return w[1].Value() == "0" || w[1].Value() == h[1].Value()
}

// sweep forgets the state of peers that left while a heartbeat or a
// reservation request of theirs was being recorded, and the admitted
// reservations that expired.
func (s *Server) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		for p := range s.peers {
			if s.h.Network().Connectedness(p) != network.Connected {
				delete(s.peers, p)
			}
		}
		s.forgetExpiredAdmitted(time.Now())
		s.mu.Unlock()
	}
}

// ID returns the server's peer ID.
func (s *Server) ID() peer.ID { return s.h.ID() }

// Host returns the libp2p host (for tests and embedding).
func (s *Server) Host() host.Host { return s.h }

// Registry returns the Prometheus registry holding the server's metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Addrs returns the addresses nodes can dial, each ending in /p2p/<id>:
// the announce addresses if configured, else the listen addresses with
// 0.0.0.0 and :: expanded to the interface addresses.
func (s *Server) Addrs() []ma.Multiaddr {
	if ann := s.cfg.AnnounceAddrs(); len(ann) > 0 {
		return withP2P(ann, s.h.ID())
	}
	return withP2P(s.h.Addrs(), s.h.ID())
}

// Close stops everything, removes the admin socket and releases the data
// dir. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		s.cancel()
		if s.h != nil && s.notifiee != nil {
			s.h.Network().StopNotify(s.notifiee)
		}
		if s.admin != nil {
			if err := s.admin.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close admin api: %w", err))
			}
		}
		if s.metricsSrv != nil {
			if err := s.metricsSrv.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close metrics endpoint: %w", err))
			}
		}
		if s.rdv != nil {
			if err := s.rdv.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close registry: %w", err))
			}
		}
		if s.names != nil {
			if err := s.names.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close name directory: %w", err))
			}
		}
		if err := s.closeMailbox(); err != nil {
			errs = append(errs, err)
		}
		if s.dht != nil {
			if err := s.dht.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close dht: %w", err))
			}
		}
		if s.relay != nil {
			if err := s.relay.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close relay: %w", err))
			}
		}
		if s.h != nil {
			if err := s.h.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close host: %w", err))
			}
		}
		s.wg.Wait()
		if s.metrics != nil {
			s.metrics.unregister(s.reg)
		}
		if s.admin != nil {
			if err := os.Remove(s.adminPath); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove admin socket: %w", err))
			}
		}
		if s.db != nil {
			if err := s.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close database: %w", err))
			}
		}
		if s.lock != nil {
			if err := s.lock.Release(); err != nil {
				errs = append(errs, fmt.Errorf("release data dir: %w", err))
			}
		}
		if s.h != nil {
			s.log.Info("rendezvous server stopped", "peer", s.h.ID())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
