package loadgen

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	rdvproto "github.com/natterim/natter/protocols/rendezvous"
)

// EchoProtocol is the stream echo the chat phase runs over the relay.
const EchoProtocol = protocol.ID("/natter-bench/echo/1.0.0")

// requestTimeout bounds every single request a node makes.
const requestTimeout = 20 * time.Second

// node is one lightweight natter-like client.
type node struct {
	h       host.Host
	rdv     *rdvproto.Client
	circuit ma.Multiaddr // its address through the relay

	mu           sync.Mutex
	reservedTill time.Time
	dialQueue    []string // transports the next dials to the server take
	transports   []string
}

// sourceIP is the loopback address of node i: groups of perIP nodes share
// one, 127.1.0.1 upwards.
func sourceIP(i, perIP int) net.IP {
	g := i / perIP
	return net.IPv4(127, byte(1+g/(250*250)), byte(g/250%250), byte(1+g%250))
}

// newNode builds node i's host: TCP and/or QUIC from its source address,
// Noise, yamux, the relay transport (to accept and dial relayed links),
// no resource or connection manager of its own, no metrics.
func newNode(i, perIP int, transports []string) (*node, error) {
	ip := sourceIP(i, perIP)
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	opts := []libp2p.Option{
		libp2p.Identity(sk),
		libp2p.NoTransports,
		libp2p.Security(noise.ID, noise.New),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.ConnectionManager(connmgr.NullConnMgr{}),
		libp2p.DisableMetrics(),
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ForceReachabilityPrivate(),
		libp2p.Ping(false),
		libp2p.UserAgent("natter-bench"),
	}
	listen := []string{"/p2p-circuit"}
	if slices.Contains(transports, "tcp") {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport,
			tcp.WithDialerForAddr(func(ma.Multiaddr) (tcp.ContextDialer, error) { return d, nil })))
	}
	if slices.Contains(transports, "quic") {
		// A QUIC node dials from the socket it listens on: tell the
		// socket chooser the source address is ip (the kernel would pick
		// 127.0.0.1 for any loopback destination).
		opts = append(opts, libp2p.Transport(quic.NewTransport),
			libp2p.QUICReuse(quicreuse.NewConnManager, quicreuse.OverrideSourceIPSelector(
				func() (quicreuse.SourceIPSelector, error) { return fixedSource{ip}, nil })))
		listen = append(listen, fmt.Sprintf("/ip4/%s/udp/0/quic-v1", ip))
	}
	opts = append(opts, libp2p.ListenAddrStrings(listen...))
	n := &node{}
	// One connection per transport, as a natter node makes: concurrent
	// Connects, each dialling the addresses of the next queued transport.
	opts = append(opts, libp2p.DialRanker(n.rank))
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("node host: %w", err)
	}
	n.h, n.rdv, n.transports = h, rdvproto.NewClient(h), transports
	h.SetStreamHandler(EchoProtocol, func(st network.Stream) {
		defer st.Close()
		_, _ = io.Copy(st, st)
	})
	return n, nil
}

// fixedSource always chooses the same source address.
type fixedSource struct{ ip net.IP }

func (f fixedSource) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	return f.ip, nil
}

// rank dials the addresses of the next transport in n.dialQueue (all of
// them once the queue is empty), without delay.
func (n *node) rank(addrs []ma.Multiaddr) []network.AddrDelay {
	n.mu.Lock()
	var t string
	if len(n.dialQueue) > 0 {
		t, n.dialQueue = n.dialQueue[0], n.dialQueue[1:]
	}
	n.mu.Unlock()
	if t != "" {
		only := slices.DeleteFunc(slices.Clone(addrs), func(a ma.Multiaddr) bool { return transportOf(a) != t })
		if len(only) > 0 {
			addrs = only
		}
	}
	return swarm.NoDelayDialRanker(addrs)
}

func transportOf(a ma.Multiaddr) string {
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return "relay"
	}
	if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
		return "quic"
	}
	return "tcp"
}

// up connects to the server, reserves and registers; stage names what
// failed.
func (n *node) up(ctx context.Context, srv peer.AddrInfo) (stage string, err error) {
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	n.mu.Lock()
	n.dialQueue = slices.Clone(n.transports)
	n.mu.Unlock()
	errs := make(chan error, len(n.transports))
	for range n.transports {
		go func() { errs <- n.h.Connect(cctx, srv) }()
	}
	var firstErr error
	ok := false
	for range n.transports {
		if err := <-errs; err == nil {
			ok = true
		} else if firstErr == nil {
			firstErr = err
		}
	}
	n.mu.Lock()
	n.dialQueue = nil
	n.mu.Unlock()
	if !ok {
		return "connect", firstErr
	}
	if err := n.reserve(ctx, srv); err != nil {
		return "reserve", err
	}
	if _, err := n.register(ctx, srv.ID); err != nil {
		return "register", err
	}
	return "", nil
}

func (n *node) reserve(ctx context.Context, srv peer.AddrInfo) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	r, err := client.Reserve(rctx, n.h, srv)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.reservedTill = r.Expiration
	if n.circuit == nil {
		n.circuit = srv.Addrs[0].Encapsulate(ma.StringCast("/p2p/" + srv.ID.String() + "/p2p-circuit"))
	}
	n.mu.Unlock()
	return nil
}

// register publishes the node's signed record (its own addresses and its
// relay address) under natter/peer/<id>, as a natter node does.
func (n *node) register(ctx context.Context, srv peer.ID) (time.Duration, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	n.mu.Lock()
	addrs := append(slices.Clone(n.h.Addrs()), n.circuit)
	n.mu.Unlock()
	start := time.Now()
	_, err := n.rdv.Register(rctx, srv, rdvproto.PeerNamespace(n.h.ID()), addrs, time.Hour)
	return time.Since(start), err
}

func (n *node) lookup(ctx context.Context, srv, p peer.ID) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := n.rdv.Lookup(rctx, srv, p)
	return err
}

// ping sends one heartbeat. A node the server dropped stays away (no
// dial): the level reports what the server holds.
func (n *node) ping(ctx context.Context, srv peer.ID) error {
	pctx, cancel := context.WithTimeout(network.WithNoDial(ctx, "heartbeat"), requestTimeout)
	defer cancel()
	select {
	case r := <-ping.Ping(pctx, n.h, srv):
		return r.Error
	case <-pctx.Done():
		return pctx.Err()
	}
}

// life runs the node's background until ctx ends: a ping every heartbeat
// and refreshes of the reservation (at 3/4 of its life) and of the
// registration (every regRefresh), each from a random phase so that the
// nodes do not beat in step.
func (n *node) life(ctx context.Context, srv peer.AddrInfo, heartbeat, regRefresh time.Duration, rnd func(time.Duration) time.Duration, errs *counters) {
	hb := time.NewTimer(rnd(heartbeat))
	defer hb.Stop()
	regAt := time.Now().Add(rnd(regRefresh))
	n.mu.Lock()
	rsvpAt := time.Now().Add(rnd(time.Until(n.reservedTill) * 3 / 4))
	n.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
		}
		hb.Reset(heartbeat)
		if n.h.Network().Connectedness(srv.ID) != network.Connected {
			continue // dropped by the server: stays away
		}
		if err := n.ping(ctx, srv.ID); err != nil && ctx.Err() == nil {
			errs.add("heartbeat")
		}
		now := time.Now()
		if now.After(rsvpAt) {
			if err := n.reserve(ctx, srv); err != nil && ctx.Err() == nil {
				errs.add("reservation refresh")
			}
			n.mu.Lock()
			rsvpAt = now.Add(time.Until(n.reservedTill) * 3 / 4)
			n.mu.Unlock()
		}
		if now.After(regAt) {
			if _, err := n.register(ctx, srv.ID); err != nil && ctx.Err() == nil {
				errs.add("registration refresh")
			}
			regAt = now.Add(regRefresh)
		}
	}
}
