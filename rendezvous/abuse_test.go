package rendezvous_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	circuitpb "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	rdvproto "github.com/natterim/natter/protocols/rendezvous"
	"github.com/natterim/natter/rendezvous"
)

// The tests in this file flood a real server on loopback the way an
// attacker on the internet would, from their own addresses (127.0.0.x:
// Linux routes all of 127/8 to lo, and the server applies its per-IP
// limits to loopback like to any address), and check, while the flood
// goes on, that a legitimate pair of nodes from another address still
// connects, reserves, registers, looks up and talks through the relay.

const echoProto = protocol.ID("/natter-test/echo/1.0.0")

// abuseConfig is a server with small limits, so floods reach them fast.
func abuseConfig(t *testing.T) rendezvous.Config {
	cfg := testConfig(t)
	cfg.Listen = []string{"/ip4/0.0.0.0/tcp/0"}
	cfg.DHT.Enabled = false
	cfg.Limits.ConnectionsPerIP = 24
	cfg.Relay.MaxReservationsPerIP = 4
	cfg.Registry.MaxRegistrationsPerIP = 8
	cfg.Registry.RequestTimeout = 2 * time.Second
	cfg.RateLimits.ConnectionsPerIP = rendezvous.Rate{Burst: 30, Interval: time.Second}
	cfg.RateLimits.RegistryPerPeer = rendezvous.Rate{Burst: 10, Interval: time.Second}
	cfg.RateLimits.RegistryPerIP = rendezvous.Rate{Burst: 40, Interval: time.Second}
	cfg.RateLimits.ReservationsPerPeer = rendezvous.Rate{Burst: 3, Interval: time.Minute}
	cfg.RateLimits.PingsPerPeer = rendezvous.Rate{Burst: 5, Interval: time.Second}
	return cfg
}

// tcpAddr is the server's TCP address on loopback.
func tcpAddr(t *testing.T, s *rendezvous.Server) (ma.Multiaddr, string) {
	t.Helper()
	for _, a := range s.Host().Network().ListenAddresses() {
		if port, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			return ma.StringCast("/ip4/127.0.0.1/tcp/" + port), "127.0.0.1:" + port
		}
	}
	t.Fatal("server has no TCP listener")
	return nil, ""
}

// clientFrom is a node (TCP, relay transport for relayed links) whose
// connections come from ip.
func clientFrom(t *testing.T, ip string) host.Host {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	h, err := libp2p.New(
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport, tcp.WithDialerForAddr(func(ma.Multiaddr) (tcp.ContextDialer, error) { return d, nil })),
		libp2p.ListenAddrStrings("/p2p-circuit"),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	)
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

// legit runs what a pair of natter nodes from ip does with the server:
// connect, reserve (b), register (both), look up (a finds b) and talk
// through the relay (a echo round trip to b over the relayed link).
func legit(t *testing.T, s *rendezvous.Server, ip string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr, _ := tcpAddr(t, s)
	srv := peer.AddrInfo{ID: s.ID(), Addrs: []ma.Multiaddr{addr}}
	a, b := clientFrom(t, ip), clientFrom(t, ip)
	defer a.Close()
	defer b.Close()
	b.SetStreamHandler(echoProto, func(st network.Stream) {
		defer st.Close()
		_, _ = io.Copy(st, io.LimitReader(st, 1<<10))
	})
	for _, h := range []host.Host{a, b} {
		if err := h.Connect(ctx, srv); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	}
	if _, err := client.Reserve(ctx, b, srv); err != nil {
		return fmt.Errorf("reserve: %w", err)
	}
	circuit := addr.Encapsulate(ma.StringCast("/p2p/" + s.ID().String() + "/p2p-circuit"))
	for _, h := range []host.Host{a, b} {
		if _, err := rdvproto.NewClient(h).Register(ctx, s.ID(), rdvproto.PeerNamespace(h.ID()), []ma.Multiaddr{circuit}, time.Hour); err != nil {
			return fmt.Errorf("register: %w", err)
		}
	}
	ai, err := rdvproto.NewClient(a).Lookup(ctx, s.ID(), b.ID())
	if err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	if err := a.Connect(ctx, ai); err != nil {
		return fmt.Errorf("connect through the relay: %w", err)
	}
	st, err := a.NewStream(network.WithAllowLimitedConn(ctx, "echo"), b.ID(), echoProto)
	if err != nil {
		return fmt.Errorf("open relayed stream: %w", err)
	}
	defer st.Reset()
	if _, err := st.Write([]byte("hello through the relay")); err != nil {
		return fmt.Errorf("write relayed: %w", err)
	}
	_ = st.CloseWrite()
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "hello through the relay" {
		return fmt.Errorf("read relayed: %q, %v", got, err)
	}
	return nil
}

// during starts flood, waits until it calls ready (it has reached its
// limits), runs legit while the flood goes on, then cancels the flood's
// context and waits for it. flood must call ready once and return soon
// after ctx ends.
func during(t *testing.T, s *rendezvous.Server, flood func(ctx context.Context, ready func())) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer once.Do(func() { close(started) })
		flood(ctx, func() { once.Do(func() { close(started) }) })
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		return errors.New("the flood never got going")
	}
	err := legit(t, s, "127.0.0.1")
	cancel()
	wg.Wait()
	return err
}

// counter reads a counter of the server's registry; labels must match
// exactly.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if m.Counter != nil {
				sum += m.Counter.GetValue()
			} else if m.Gauge != nil {
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func refused(t *testing.T, s *rendezvous.Server, request, reason string) float64 {
	return counter(t, s.Registry(), "natter_rendezvous_refused_total", map[string]string{"request": request, "reason": reason})
}

func TestConnectionStormFromOneAddress(t *testing.T) {
	s := startServer(t, abuseConfig(t))
	_, hostport := tcpAddr(t, s)

	// 120 raw TCP connections at once that never start the handshake,
	// then, while they hang there, 30 libp2p nodes from the same address.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
	for range 120 {
		if c, err := d.Dial("tcp", hostport); err == nil {
			conns = append(conns, c)
		}
	}
	attempts := len(conns)
	err := during(t, s, func(ctx context.Context, ready func()) {
		addr, _ := tcpAddr(t, s)
		for range 30 {
			attempts++
			h := clientFrom(t, "127.0.0.2")
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_ = h.Connect(cctx, peer.AddrInfo{ID: s.ID(), Addrs: []ma.Multiaddr{addr}})
			cancel()
		}
		ready()
		<-ctx.Done()
	})
	require.NoError(t, err, "a node from another address must still get through")
	// The gater admitted the burst (30) and one a second; the rest was
	// refused before any handshake.
	admitted := 30 + int(time.Since(start).Seconds()) + 1
	require.GreaterOrEqual(t, refused(t, s, "connection", "rate_limited"), float64(attempts-admitted))
	from2 := 0
	for _, c := range s.Host().Network().Conns() {
		if strings.HasPrefix(c.RemoteMultiaddr().String(), "/ip4/127.0.0.2/") {
			from2++
		}
	}
	require.LessOrEqual(t, from2, 24, "connections from one address stay under limits.connections_per_ip")
}

func TestRegistrationFlood(t *testing.T) {
	s := startServer(t, abuseConfig(t))
	addr, _ := tcpAddr(t, s)
	srv := peer.AddrInfo{ID: s.ID(), Addrs: []ma.Multiaddr{addr}}
	var ok, limited, capped int
	var mu sync.Mutex
	start := time.Now()
	err := during(t, s, func(ctx context.Context, ready func()) {
		// 12 peers from one address (more than registry.max_registrations_per_ip),
		// each re-registering as fast as it can.
		var hosts []host.Host
		for range 12 {
			h := clientFrom(t, "127.0.0.3")
			if err := h.Connect(ctx, srv); err == nil {
				hosts = append(hosts, h)
			}
		}
		var wg sync.WaitGroup
		for _, h := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := rdvproto.NewClient(h)
				for i := 0; i < 2000 && ctx.Err() == nil; i++ {
					if i == 20 {
						ready()
					}
					rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					_, err := c.Register(rctx, s.ID(), rdvproto.PeerNamespace(h.ID()), nil, time.Hour)
					cancel()
					var se *rdvproto.StatusError
					mu.Lock()
					switch {
					case err == nil:
						ok++
					case errors.As(err, &se) && strings.Contains(se.Text, "rate limited"):
						limited++
					case errors.As(err, &se) && strings.Contains(se.Text, "too many registrations from this address"):
						capped++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		<-ctx.Done()
	})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, limited, "registrations over the rate are refused")
	require.Positive(t, capped, "registrations over the per-IP cap are refused")
	// The per-IP bucket (burst 40, one a second) admits every request
	// that succeeded or was refused by the cap.
	require.LessOrEqual(t, ok+capped, 40+int(time.Since(start).Seconds())+1)
	// The server counted every refusal the flood saw, and at most one
	// more per flooding peer (a request cut short by the end of the flood).
	for _, c := range []struct {
		reason string
		seen   int
	}{{rdvproto.RefusedRateLimited, limited}, {rdvproto.RefusedSourceCap, capped}} {
		n := refused(t, s, "register", c.reason)
		require.GreaterOrEqual(t, n, float64(c.seen), c.reason)
		require.LessOrEqual(t, n, float64(c.seen+12), c.reason)
	}
	n := 0
	for _, r := range s.Online() {
		if !r.Registered.IsZero() && strings.HasPrefix(r.RemoteAddrs[0].String(), "/ip4/127.0.0.3/") {
			n++
		}
	}
	require.LessOrEqual(t, n, 8)
}

func TestOversizedFrames(t *testing.T) {
	s := startServer(t, abuseConfig(t))
	addr, _ := tcpAddr(t, s)
	srv := peer.AddrInfo{ID: s.ID(), Addrs: []ma.Multiaddr{addr}}
	// A registry frame whose varint length claims 16 MiB, then a little
	// data: the server resets before reading it.
	huge := binary.AppendUvarint(nil, 16<<20)
	huge = append(huge, make([]byte, 1024)...)
	// A hop message of 64 KiB (the relay reads at most 4 KiB): refused
	// as malformed.
	big := binary.AppendUvarint(nil, 64<<10)
	big = append(big, make([]byte, 64<<10)...)
	var registryResets, hopMalformed, other int
	var mu sync.Mutex
	err := during(t, s, func(ctx context.Context, ready func()) {
		h := clientFrom(t, "127.0.0.4")
		if h.Connect(ctx, srv) != nil {
			return
		}
		for i := 0; i < 1000 && ctx.Err() == nil; i++ {
			if i == 3 {
				ready()
			}
			st, err := h.NewStream(ctx, s.ID(), rdvproto.ID)
			if err == nil {
				_ = st.SetDeadline(time.Now().Add(3 * time.Second))
				_, _ = st.Write(huge)
				_, err = io.ReadAll(st)
				st.Reset()
				mu.Lock()
				if errors.Is(err, network.ErrReset) {
					registryResets++
				} else {
					other++
				}
				mu.Unlock()
			}
			st, err = h.NewStream(ctx, s.ID(), circuitproto.ProtoIDv2Hop)
			if err == nil {
				_ = st.SetDeadline(time.Now().Add(3 * time.Second))
				_, _ = st.Write(big)
				var msg circuitpb.HopMessage
				err = pbio.NewDelimitedReader(st, 4096).ReadMsg(&msg)
				st.Reset()
				mu.Lock()
				if err == nil && msg.GetStatus() == circuitpb.Status_MALFORMED_MESSAGE {
					hopMalformed++
				} else {
					other++
				}
				mu.Unlock()
			}
		}
		<-ctx.Done()
	})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, registryResets)
	require.Positive(t, hopMalformed)
	require.Zero(t, other, "every oversized frame is refused")
	require.Equal(t, float64(registryResets), counter(t, s.Registry(), "natter_protocol_stream_errors_total",
		map[string]string{"protocol": string(rdvproto.ID), "reason": "oversize"}))
}

func TestSlowloris(t *testing.T) {
	cfg := abuseConfig(t)
	s := startServer(t, cfg)
	addr, _ := tcpAddr(t, s)
	srv := peer.AddrInfo{ID: s.ID(), Addrs: []ma.Multiaddr{addr}}
	type result struct{ ended, inTime int }
	var silent, trickle result
	maxHeld := 0    // most registry streams the server held for one peer
	maxHeldRaw := 0 // most streams in all the server held for one peer
	var mu sync.Mutex
	err := during(t, s, func(ctx context.Context, ready func()) {
		var wg sync.WaitGroup
		var peers []peer.ID
		var hosts []host.Host
		for i := range 4 {
			h := clientFrom(t, "127.0.0.5")
			if h.Connect(ctx, srv) != nil {
				continue
			}
			peers = append(peers, h.ID())
			hosts = append(hosts, h)
			// Each peer opens 40 registry streams (over its limit of
			// 32 per peer) that never write, and 4 that write the
			// start of a request one byte a second.
			for j := range 44 {
				st, err := h.NewStream(ctx, s.ID(), rdvproto.ID)
				if err != nil {
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer st.Reset()
					start := time.Now()
					var err error
					if j < 40 {
						_, err = st.Read(make([]byte, 1)) // until the server gives up
					} else {
						for k := 0; err == nil && k < 30; k++ {
							if _, err = st.Write([]byte{byte(10 + i)}); err == nil {
								time.Sleep(time.Second)
							}
						}
					}
					inTime := err != nil && time.Since(start) < cfg.Registry.RequestTimeout+3*time.Second
					mu.Lock()
					defer mu.Unlock()
					r := &silent
					if j >= 40 {
						r = &trickle
					}
					r.ended++
					if inTime {
						r.inTime++
					}
				}()
			}
		}
		// Then 150 streams per peer that never even name a protocol (the
		// server waits for the multistream header), over
		// limits.streams_per_peer (128).
		for _, h := range hosts {
			for range 150 {
				if st, err := h.Network().NewStream(ctx, s.ID()); err == nil {
					defer st.Reset()
				}
			}
		}
		ready()
		// While they hang, count what the server holds for each peer.
		for range 10 {
			for _, p := range peers {
				n, all := 0, 0
				for _, c := range s.Host().Network().ConnsToPeer(p) {
					for _, st := range c.GetStreams() {
						all++
						if st.Protocol() == rdvproto.ID {
							n++
						}
					}
				}
				mu.Lock()
				maxHeld = max(maxHeld, n)
				maxHeldRaw = max(maxHeldRaw, all)
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
		wg.Wait()
		<-ctx.Done()
	})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 4*40, silent.ended)
	require.Equal(t, silent.ended, silent.inTime, "silent streams are reset by registry.request_timeout")
	require.Equal(t, 4*4, trickle.ended)
	require.Equal(t, trickle.ended, trickle.inTime, "streams trickling a byte a second are reset by registry.request_timeout")
	require.Positive(t, maxHeld)
	require.LessOrEqual(t, maxHeld, 32, "no peer holds more registry streams than its limit")
	require.LessOrEqual(t, maxHeldRaw, 128, "no peer holds more streams than limits.streams_per_peer")
}

func TestReservationFlood(t *testing.T) {
	s := startServer(t, abuseConfig(t))
	addr, _ := tcpAddr(t, s)
	srv := peer.AddrInfo{ID: s.ID(), Addrs: []ma.Multiaddr{addr}}
	var granted, denied int
	var mu sync.Mutex
	err := during(t, s, func(ctx context.Context, ready func()) {
		// 10 peers from one address, each asking 6 times.
		for range 10 {
			h := clientFrom(t, "127.0.0.6")
			if h.Connect(ctx, srv) != nil {
				continue
			}
			for range 6 {
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := client.Reserve(rctx, h, srv)
				cancel()
				mu.Lock()
				if err == nil {
					granted++
				} else {
					denied++
				}
				mu.Unlock()
			}
		}
		ready()
		<-ctx.Done()
	})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, denied)
	// relay.max_reservations_per_ip (4) peers, each renewing within
	// rate_limits.reservations_per_peer (3 at once).
	require.LessOrEqual(t, granted, 4*3)
	require.Positive(t, refused(t, s, "reservation", "rate_limited"))
	holders := 0
	for _, p := range s.Online() {
		if p.Reservation && strings.HasPrefix(p.RemoteAddrs[0].String(), "/ip4/127.0.0.6/") {
			holders++
		}
	}
	require.LessOrEqual(t, holders, 4)
}

func TestPingFlood(t *testing.T) {
	s := startServer(t, abuseConfig(t))
	addr, _ := tcpAddr(t, s)
	srv := peer.AddrInfo{ID: s.ID(), Addrs: []ma.Multiaddr{addr}}
	h := clientFrom(t, "127.0.0.7")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.Connect(ctx, srv))
	// go-libp2p's ping client pings back to back on one stream.
	pings := 0
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	for r := range ping.Ping(pctx, h, s.ID()) {
		if r.Error != nil {
			break
		}
		pings++
	}
	pcancel()
	require.Less(t, pings, 20, "the ping stream is closed once over rate_limits.pings_per_peer")
	require.Positive(t, refused(t, s, "ping", "rate_limited"))
	require.NoError(t, legit(t, s, "127.0.0.1"))
}
