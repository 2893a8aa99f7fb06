package links

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/natterim/natter/node/core"
	rdvproto "github.com/natterim/natter/protocols/rendezvous"
)

// Config is what the links need of the node's configuration (node maps
// its Config to it).
type Config struct {
	// Listen are the addresses to listen on, already limited to
	// Transports.
	Listen []ma.Multiaddr
	// Transports enabled: "tcp", "quic" or both.
	Transports []string
	// UserAgent is what identify tells peers.
	UserAgent string
	// NATPortMap asks the home router for a port mapping (UPnP/NAT-PMP).
	NATPortMap bool
	// HolePunching enables DCUtR and the contact links' punch retries.
	HolePunching bool
	// DHT enables peer routing over the rendezvous servers' DHT.
	DHT bool
	// Rendezvous are the servers to keep a link with.
	Rendezvous []peer.AddrInfo
	// Blocked are the peers the gater refuses from the start.
	Blocked []peer.ID
	// RegistrationTTL is how long a registration lasts.
	RegistrationTTL time.Duration
	// Heartbeat is the interval of the pings on every link; a link that
	// misses HeartbeatMisses in a row is dead.
	Heartbeat       time.Duration
	HeartbeatMisses int
	// DirectRetry is the first delay before retrying a hole punch while a
	// contact's link stays relayed; it doubles up to DirectRetryMax.
	DirectRetry    time.Duration
	DirectRetryMax time.Duration
	// ReadyTimeout bounds the wait for hole punching to be armed before
	// contacts are dialled anyway (default 10 s).
	ReadyTimeout time.Duration
	// TransportRedial is the first delay before a rendezvous session that
	// lacks one of its transports dials the server again (default 10 s;
	// it doubles, see transportRedialer).
	TransportRedial time.Duration
}

// Option configures a Service beyond its Config.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer exports the host's and the gater's metrics to r (default:
// a private registry).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Service is the node's libp2p host with its rendezvous and contact links.
type Service struct {
	cfg      Config
	log      *slog.Logger
	contacts Contacts
	pub      core.Publisher
	created  time.Time

	host  host.Host
	rdvc  *rdvproto.Client
	dht   *dht.IpfsDHT
	nat   *natWatch
	gater *blockGater
	plan  *dialPlan
	watch core.PeerWatch // connection changes, per peer
	rdvs  []*rdvLink
	ready chan struct{} // closed once hole punching is armed (or we gave up waiting)

	stopping     atomic.Bool  // Stop has begun: register no more
	reachability atomic.Int32 // network.Reachability
	hps          atomic.Pointer[holepunch.Service]

	// Hooks, set before Start and read-only after.
	onLink []func(core.LinkEvent)
	onRdv  []func(server peer.ID, up bool)

	mu      sync.Mutex // guards the following fields
	links   map[peer.ID]*contactLink
	started bool

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	stopOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
}

// New builds the libp2p host (listening, not yet linked to anyone) with
// key as its identity. The links start with Start; the caller must Close
// the service.
func New(key crypto.PrivKey, cfg Config, contacts Contacts, pub core.Publisher, opts ...Option) (_ *Service, err error) {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	if cfg.TransportRedial <= 0 {
		cfg.TransportRedial = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg:      cfg,
		log:      o.log,
		contacts: contacts,
		pub:      pub,
		created:  time.Now(),
		ready:    make(chan struct{}),
		links:    map[peer.ID]*contactLink{},
		ctx:      ctx,
		cancel:   cancel,
	}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	s.gater = newBlockGater(o.reg)
	for _, p := range cfg.Blocked {
		s.gater.set(p, true)
	}
	// Before the host starts: its address factory reads s.rdvs.
	for _, ai := range cfg.Rendezvous {
		s.rdvs = append(s.rdvs, newRdvLink(ai))
	}
	if s.host, err = s.newHost(key, o.reg); err != nil {
		return nil, err
	}
	s.log = s.log.With("self", s.host.ID().ShortString())
	s.rdvc = rdvproto.NewClient(s.host)
	if cfg.DHT {
		if s.dht, err = s.newDHT(); err != nil {
			return nil, err
		}
	}
	if err := s.startEventLoop(); err != nil {
		return nil, err
	}
	return s, nil
}

// OnLink registers fn to be told of every contact link change (see
// core.LinkEvent). Register before Start; fn runs on the link's goroutine,
// in order, and must return quickly.
func (s *Service) OnLink(fn func(core.LinkEvent)) { s.onLink = append(s.onLink, fn) }

// OnRendezvous registers fn to be told when a rendezvous server is
// connected (up) or lost. Register before Start; fn must return quickly.
func (s *Service) OnRendezvous(fn func(server peer.ID, up bool)) { s.onRdv = append(s.onRdv, fn) }

// Start starts the rendezvous links and the wait for Ready. Contact links
// started before it wait for Ready.
func (s *Service) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.ctx.Err() != nil {
		return
	}
	s.started = true
	s.goRun(s.waitReady)
	for _, l := range s.rdvs {
		s.goRun(func(ctx context.Context) { s.runRendezvous(ctx, l) })
	}
}

// Host is the libp2p host the features register their protocols on.
func (s *Service) Host() host.Host { return s.host }

// Ready is closed once contacts may be dialled: hole punching is armed,
// or Config.ReadyTimeout passed without it.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Path is the best path to p now, read off the open connections, and the
// connection it goes over (nil for PathNone).
func (s *Service) Path(p peer.ID) (core.Path, network.Conn) {
	var open []network.Conn
	for _, c := range s.host.Network().ConnsToPeer(p) {
		if !c.IsClosed() {
			open = append(open, c)
		}
	}
	return core.BestPath(open)
}

// Changed returns a channel closed at the next connection change of p (a
// connection opened or closed, connectedness changed, identify finished).
func (s *Service) Changed(p peer.ID) <-chan struct{} { return s.watch.Changed(p) }

// SetBlocked makes the connection gater refuse (or again accept) every
// connection to or from p. It does not close open ones.
func (s *Service) SetBlocked(p peer.ID, blocked bool) { s.gater.set(p, blocked) }

// RefusedConnections counts the connections to or from blocked peers the
// gater refused (also exported as natter_blocked_connections_total).
func (s *Service) RefusedConnections() uint64 { return s.gater.count.Load() }

// IsRendezvous reports whether p is one of the configured rendezvous
// servers.
func (s *Service) IsRendezvous(p peer.ID) bool {
	return slices.ContainsFunc(s.rdvs, func(l *rdvLink) bool { return l.info.ID == p })
}

// Rendezvous are the configured rendezvous servers, in config order.
func (s *Service) Rendezvous() []peer.AddrInfo {
	out := make([]peer.AddrInfo, 0, len(s.rdvs))
	for _, l := range s.rdvs {
		out = append(out, l.info)
	}
	return out
}

// ConnectedRendezvous are the rendezvous links up now, with the time each
// connection opened.
func (s *Service) ConnectedRendezvous() map[peer.ID]time.Time {
	out := map[peer.ID]time.Time{}
	for _, l := range s.rdvs {
		l.mu.Lock()
		if l.connected {
			out[l.info.ID] = l.connectedAt
		}
		l.mu.Unlock()
	}
	return out
}

// Reachability is AutoNAT's latest verdict on us.
func (s *Service) Reachability() network.Reachability {
	return network.Reachability(s.reachability.Load())
}

// goRun starts f as a goroutine owned by the service: it gets the
// service's lifetime context and Stop waits for it.
func (s *Service) goRun(f func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.ctx)
	}()
}

func (s *Service) emit(e core.LinkEvent) {
	for _, fn := range s.onLink {
		fn(e)
	}
}

func (s *Service) emitRendezvous(server peer.ID, up bool) {
	for _, fn := range s.onRdv {
		fn(server, up)
	}
}

// Stop ends every link and waits for the service's goroutines; the host
// stays open (the features' protocol services still close on it). It
// first withdraws our registrations so that contacts see us leave at once,
// and aborts hole punches in flight. It is safe to call more than once.
func (s *Service) Stop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		started := s.started
		s.started = true // no Start after Stop
		s.mu.Unlock()
		s.stopping.Store(true)
		if started {
			s.unregisterAll()
		}
		s.cancel()
		// Abort hole punches in flight so the contact links can end now;
		// the host closes the service again later, which is harmless.
		if hps := s.hps.Load(); hps != nil {
			_ = hps.Close()
		}
		s.wg.Wait()
	})
}

// Close stops the links (Stop), then closes the DHT and the host. It is
// safe to call more than once.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.Stop()
		var errs []error
		if s.dht != nil {
			if err := s.dht.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close dht: %w", err))
			}
		}
		if s.host != nil {
			if err := s.host.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close host: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
