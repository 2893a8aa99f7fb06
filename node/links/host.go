package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
)

// natWatch keeps the UPnP/NAT-PMP manager the host created, so status can
// report whether a gateway was found and what it mapped.
type natWatch struct {
	enabled bool
	mgr     atomic.Pointer[basichost.NATManager]
}

func (n *Node) newHost(rdvs []peer.AddrInfo, reg prometheus.Registerer) (host.Host, error) {
	// Addresses of rendezvous servers, without /p2p, so the dial ranker
	// can recognise dials to them (see dialPlan).
	n.plan = newDialPlan(rdvs)
	cm, err := connmgr.NewConnManager(100, 400)
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(n.key),
		libp2p.ListenAddrs(n.cfg.listenAddrs()...),
		libp2p.UserAgent("natter/" + Version),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(n.gater),
		libp2p.EnableRelay(), // circuit v2 client: dial and accept relayed links
		libp2p.AddrsFactory(n.addrsFactory),
		libp2p.DialRanker(n.plan.rank),
		libp2p.PrometheusRegisterer(reg),
		libp2p.Ping(true),
	}
	if slices.Contains(n.cfg.Transports, "tcp") {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport))
	}
	if slices.Contains(n.cfg.Transports, "quic") {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if n.cfg.HolePunching {
		// The option hands us the service so that links can retry a hole
		// punch while they stay relayed (go-libp2p only punches once, when
		// the relayed connection opens).
		opts = append(opts, libp2p.EnableHolePunching(func(s *holepunch.Service) error {
			n.hps.Store(s)
			return nil
		}))
	}
	n.nat = &natWatch{enabled: n.cfg.NATPortMap}
	if n.cfg.NATPortMap {
		opts = append(opts, libp2p.NATManager(func(nw network.Network) basichost.NATManager {
			m := basichost.NewNATManager(nw)
			n.nat.mgr.Store(&m)
			return m
		}))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host (is a listen port in use? listen=%v): %w", n.cfg.Listen, err)
	}
	if err := n.checkListening(h); err != nil {
		h.Close()
		return nil, err
	}
	for _, ai := range rdvs {
		// Server addresses from config are pinned: never expire them.
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, 1<<62)
		h.ConnManager().Protect(ai.ID, "natter-rendezvous")
	}
	return h, nil
}

// dialPlan is the node's dial ranker. It exists because we want two
// connections to each rendezvous server, one per transport: the NAT then
// has a mapping, and identify an observed address, for TCP and for QUIC,
// and DCUtR can punch either. go-libp2p keeps one dial per peer and cancels
// the remaining attempts as soon as the first connection is up, unless
// another dial request to the same peer is still waiting for *its*
// addresses; a request's addresses are what the ranker returns for it. So
// the rendezvous link issues one Connect per transport at once, after
// queueing the transports here (expect); the ranker hands each request the
// addresses of one transport.
//
// Contacts with relay addresses are dialled on every address at once (no
// 500 ms relay delay): DCUtR makes the link direct right after, faster
// than a direct dial to a NATed address that is bound to time out. Every
// other peer gets libp2p's default ranking.
type dialPlan struct {
	rdv map[string]peer.ID // rendezvous address bytes -> server

	mu      sync.Mutex
	pending map[peer.ID][]string // transports still to hand out, per server
}

func newDialPlan(rdvs []peer.AddrInfo) *dialPlan {
	p := &dialPlan{rdv: map[string]peer.ID{}, pending: map[peer.ID][]string{}}
	for _, ai := range rdvs {
		for _, a := range ai.Addrs {
			p.rdv[string(a.Bytes())] = ai.ID
		}
	}
	return p
}

// expect queues one dial request per transport to server.
func (p *dialPlan) expect(server peer.ID, transports []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[server] = append(p.pending[server][:0], transports...)
}

func (p *dialPlan) rank(addrs []ma.Multiaddr) []network.AddrDelay {
	for _, a := range addrs {
		if server, ok := p.rdv[string(a.Bytes())]; ok {
			return swarm.NoDelayDialRanker(p.take(server, addrs))
		}
	}
	if slices.ContainsFunc(addrs, isCircuit) {
		return swarm.NoDelayDialRanker(addrs)
	}
	return swarm.DefaultDialRanker(addrs)
}

// take returns the addresses of the next queued transport for server, or
// all of them when none is queued (or none matches).
func (p *dialPlan) take(server peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.pending[server]
	if len(q) == 0 {
		return addrs
	}
	t := q[0]
	p.pending[server] = q[1:]
	only := slices.DeleteFunc(slices.Clone(addrs), func(a ma.Multiaddr) bool { return transportName(a) != t })
	if len(only) == 0 {
		return addrs
	}
	return only
}

// addrsFactory adds our relay addresses (one per reservation) to what the
// host advertises, so that identify, the DHT and our registrations carry a
// way to reach us from behind the NAT.
func (n *Node) addrsFactory(addrs []ma.Multiaddr) []ma.Multiaddr {
	for _, l := range n.rdvs {
		addrs = append(addrs, l.circuitAddrs()...)
	}
	return addrs
}

// advertisedAddrs are the addresses we register: the host's addresses
// (listen, mapped, observed, relay), minus loopback.
func (n *Node) advertisedAddrs() []ma.Multiaddr {
	return slices.DeleteFunc(n.host.Addrs(), func(a ma.Multiaddr) bool { return manet.IsIPLoopback(a) })
}

func (n *Node) newDHT(rdvs []peer.AddrInfo) (*dht.IpfsDHT, error) {
	d, err := dht.New(n.host,
		dht.Mode(dht.ModeClient),
		dht.ProtocolPrefix("/natter"), // our own DHT, never the public IPFS one
		dht.BootstrapPeers(rdvs...),
		dht.DisableProviders(),
		dht.DisableValues(),
	)
	if err != nil {
		return nil, fmt.Errorf("start dht: %w", err)
	}
	return d, nil
}

// holePunchArmed reports whether the DCUtR handler is registered, which
// go-libp2p does once the host knows a public address of its own.
func (n *Node) holePunchArmed() bool {
	return slices.Contains(n.host.Mux().Protocols(), holepunch.Protocol)
}

// natStatus reports UPnP/NAT-PMP state.
func (n *Node) natStatus() (found bool, mapped []ma.Multiaddr) {
	if n.nat == nil || !n.nat.enabled {
		return false, nil
	}
	mp := n.nat.mgr.Load()
	if mp == nil {
		return false, nil
	}
	m := *mp
	for _, a := range n.host.Network().ListenAddresses() {
		if ext := m.GetMapping(a); ext != nil {
			mapped = append(mapped, ext)
		}
	}
	return m.HasDiscoveredNAT(), mapped
}

// connWatch lets goroutines wait for the next connectedness change of a
// peer without each subscribing to the event bus.
type connWatch struct {
	mu      sync.Mutex
	waiters map[peer.ID]chan struct{}
}

func newConnWatch() *connWatch { return &connWatch{waiters: map[peer.ID]chan struct{}{}} }

// changed returns a channel closed at the next connection event of p.
func (w *connWatch) changed(p peer.ID) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.waiters[p]
	if !ok {
		ch = make(chan struct{})
		w.waiters[p] = ch
	}
	return ch
}

func (w *connWatch) fire(p peer.ID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.waiters[p]; ok {
		close(ch)
		delete(w.waiters, p)
	}
}

// startEventLoop follows the host's events: connection changes wake the
// links watching that peer; identify results give us our observed address;
// address changes trigger re-registration; reachability changes are kept
// for status.
func (n *Node) startEventLoop() error {
	sub, err := n.host.EventBus().Subscribe([]any{
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtLocalReachabilityChanged),
		new(event.EvtLocalAddressesUpdated),
	}, eventbus.Name("natter-node"))
	if err != nil {
		return fmt.Errorf("subscribe to host events: %w", err)
	}
	// Individual connections opening or closing (a second transport, a
	// relayed link replaced by a direct one) do not change connectedness,
	// so links also need the network's notifications.
	nb := &network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { n.watch.fire(c.RemotePeer()) },
		DisconnectedF: func(_ network.Network, c network.Conn) { n.watch.fire(c.RemotePeer()) },
	}
	n.host.Network().Notify(nb)
	n.goRun(func(ctx context.Context) {
		defer sub.Close()
		defer n.host.Network().StopNotify(nb)
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				switch e := e.(type) {
				case event.EvtPeerConnectednessChanged:
					n.watch.fire(e.Peer)
				case event.EvtPeerIdentificationCompleted:
					n.onIdentified(e)
				case event.EvtLocalAddressesUpdated:
					// Our registrations carry our addresses: refresh them
					// (e.g. once identify tells us our public address).
					for _, l := range n.rdvs {
						l.signalAddrsChanged()
					}
				case event.EvtLocalReachabilityChanged:
					n.reachability.Store(int32(e.Reachability))
					n.log.Info("reachability changed", "reachability", e.Reachability.String())
				}
			}
		}
	})
	return nil
}

func (n *Node) onIdentified(e event.EvtPeerIdentificationCompleted) {
	for _, l := range n.rdvs {
		if l.info.ID == e.Peer && e.ObservedAddr != nil {
			l.setObserved(e.Conn.RemoteMultiaddr(), e.ObservedAddr)
		}
	}
	n.watch.fire(e.Peer)
}

// reachabilityString names the AutoNAT verdict.
func reachabilityString(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// checkListening fails if a listen address with a fixed port could not be
// bound: libp2p starts as long as any address binds, which would hide a
// port in use. IPv6 addresses only warn (hosts without IPv6 are common).
func (n *Node) checkListening(h host.Host) error {
	have := h.Network().ListenAddresses()
	for _, want := range n.cfg.listenAddrs() {
		port, err := listenPort(want)
		if err != nil || port == "0" {
			continue
		}
		if slices.ContainsFunc(have, func(a ma.Multiaddr) bool {
			p, err := listenPort(a)
			return err == nil && p == port && transportName(a) == transportName(want)
		}) {
			continue
		}
		if _, err := want.ValueForProtocol(ma.P_IP6); err == nil {
			n.log.Warn("could not listen on an IPv6 address; continuing without it", "addr", want.String())
			continue
		}
		return fmt.Errorf("listen %s: could not bind it (is the port in use by another program?)", want)
	}
	return nil
}

func listenPort(a ma.Multiaddr) (string, error) {
	if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
		return p, nil
	}
	return a.ValueForProtocol(ma.P_UDP)
}
