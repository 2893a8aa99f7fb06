package links

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peerstore"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/natterim/natter/node/core"
	"github.com/prometheus/client_golang/prometheus"
)

// natWatch keeps the UPnP/NAT-PMP manager the host created, so status can
// report whether a gateway was found and what it mapped.
type natWatch struct {
	enabled bool
	mgr     atomic.Pointer[basichost.NATManager]
}

func (s *Service) newHost(key crypto.PrivKey, reg prometheus.Registerer) (host.Host, error) {
	// Addresses of rendezvous servers, without /p2p, so the dial ranker
	// can recognise dials to them (see dialPlan).
	s.plan = newDialPlan(s.cfg.Rendezvous)
	cm, err := connmgr.NewConnManager(100, 400)
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	// go-libp2p's default limits plus our services' own (limits.go).
	rm, err := newResourceManager()
	if err != nil {
		_ = cm.Close()
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(s.cfg.Listen...),
		libp2p.UserAgent(s.cfg.UserAgent),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(s.gater),
		// Circuit v2 client: dial and accept relayed links. We take our
		// relay reservations ourselves (rendezvous.go) rather than with
		// EnableAutoRelayWithStaticRelays: autorelay reserves only while
		// AutoNAT says we are private and on as few relays as it needs,
		// gives no per-server status or error, and cannot tell us when a
		// slot changes so that we re-register at once; we want a slot on
		// every configured server from the first second, renewed on our
		// schedule, and its state shown in status.
		libp2p.EnableRelay(),
		libp2p.AddrsFactory(s.addrsFactory),
		libp2p.DialRanker(s.plan.rank),
		libp2p.PrometheusRegisterer(reg),
		libp2p.Ping(true),
	}
	if slices.Contains(s.cfg.Transports, "tcp") {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport))
	}
	if slices.Contains(s.cfg.Transports, "quic") {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if s.cfg.HolePunching {
		// The option hands us the service so that links can retry a hole
		// punch while they stay relayed (go-libp2p only punches once, when
		// the relayed connection opens).
		opts = append(opts, libp2p.EnableHolePunching(func(hs *holepunch.Service) error {
			s.hps.Store(hs)
			return nil
		}))
	}
	s.nat = &natWatch{enabled: s.cfg.NATPortMap}
	if s.cfg.NATPortMap {
		opts = append(opts, libp2p.NATManager(func(nw network.Network) basichost.NATManager {
			m := basichost.NewNATManager(nw)
			s.nat.mgr.Store(&m)
			return m
		}))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		_ = rm.Close() // the host closes it, once there is one
		return nil, fmt.Errorf("start libp2p host (is a listen port in use? listen=%v): %w", s.cfg.Listen, err)
	}
	if err := s.checkListening(h); err != nil {
		_ = h.Close()
		return nil, err
	}
	for _, ai := range s.cfg.Rendezvous {
		// Server addresses from config are pinned: never expire them.
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		h.ConnManager().Protect(ai.ID, "natter-rendezvous")
	}
	return h, nil
}

// addrsFactory adds our relay addresses (one per reservation) to what the
// host advertises, so that identify, the DHT and our registrations carry a
// way to reach us from behind the NAT.
func (s *Service) addrsFactory(addrs []ma.Multiaddr) []ma.Multiaddr {
	for _, l := range s.rdvs {
		addrs = append(addrs, l.circuitAddrs()...)
	}
	return addrs
}

// advertisedAddrs are the addresses we register: the host's addresses
// (listen, mapped, observed, relay), minus loopback.
func (s *Service) advertisedAddrs() []ma.Multiaddr {
	return slices.DeleteFunc(s.host.Addrs(), func(a ma.Multiaddr) bool { return manet.IsIPLoopback(a) })
}

func (s *Service) newDHT() (*dht.IpfsDHT, error) {
	d, err := dht.New(s.host,
		dht.Mode(dht.ModeClient),
		dht.ProtocolPrefix("/natter"), // our own DHT, never the public IPFS one
		dht.BootstrapPeers(s.cfg.Rendezvous...),
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
func (s *Service) holePunchArmed() bool {
	return slices.Contains(s.host.Mux().Protocols(), holepunch.Protocol)
}

// NATStatus reports UPnP/NAT-PMP state: whether a gateway was found and
// the external addresses it mapped for our listen addresses.
func (s *Service) NATStatus() (found bool, mapped []ma.Multiaddr) {
	if s.nat == nil || !s.nat.enabled {
		return false, nil
	}
	mp := s.nat.mgr.Load()
	if mp == nil {
		return false, nil
	}
	m := *mp
	for _, a := range s.host.Network().ListenAddresses() {
		if ext := m.GetMapping(a); ext != nil {
			mapped = append(mapped, ext)
		}
	}
	return m.HasDiscoveredNAT(), mapped
}

// startEventLoop follows the host's events: connection changes wake the
// links watching that peer; identify results give us our observed address;
// address changes trigger re-registration; reachability changes are kept
// for status.
func (s *Service) startEventLoop() error {
	sub, err := s.host.EventBus().Subscribe([]any{
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
		ConnectedF:    func(_ network.Network, c network.Conn) { s.watch.Fire(c.RemotePeer()) },
		DisconnectedF: func(_ network.Network, c network.Conn) { s.watch.Fire(c.RemotePeer()) },
	}
	s.host.Network().Notify(nb)
	s.goRun(func(ctx context.Context) {
		defer sub.Close()
		defer s.host.Network().StopNotify(nb)
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
					s.watch.Fire(e.Peer)
				case event.EvtPeerIdentificationCompleted:
					s.onIdentified(e)
				case event.EvtLocalAddressesUpdated:
					// Our registrations carry our addresses: refresh them
					// (e.g. once identify tells us our public address).
					for _, l := range s.rdvs {
						l.signalAddrsChanged()
					}
				case event.EvtLocalReachabilityChanged:
					s.reachability.Store(int32(e.Reachability))
					s.log.Info("reachability changed", "reachability", e.Reachability.String())
				}
			}
		}
	})
	return nil
}

func (s *Service) onIdentified(e event.EvtPeerIdentificationCompleted) {
	for _, l := range s.rdvs {
		if l.info.ID == e.Peer && e.ObservedAddr != nil {
			l.setObserved(e.Conn.RemoteMultiaddr(), e.ObservedAddr)
		}
	}
	s.watch.Fire(e.Peer)
}

// checkListening fails if a listen address with a fixed port could not be
// bound: libp2p starts as long as any address binds, which would hide a
// port in use. IPv6 addresses only warn (hosts without IPv6 are common).
func (s *Service) checkListening(h host.Host) error {
	have := h.Network().ListenAddresses()
	for _, want := range s.cfg.Listen {
		port, err := listenPort(want)
		if err != nil || port == "0" {
			continue
		}
		if slices.ContainsFunc(have, func(a ma.Multiaddr) bool {
			p, err := listenPort(a)
			return err == nil && p == port && core.Transport(a) == core.Transport(want)
		}) {
			continue
		}
		if _, err := want.ValueForProtocol(ma.P_IP6); err == nil {
			s.log.Warn("could not listen on an IPv6 address; continuing without it", "addr", want.String())
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
