package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	rdvproto "github.com/natterim/natter/protocols/rendezvous"
)

// Config is a load run.
type Config struct {
	// Levels are the node counts to measure at, increasing; nodes are
	// added to reach each one.
	Levels []int
	// BaselineLevels are the levels measured again against the stock
	// server (WithStockLibp2pLimits); none: no baseline.
	BaselineLevels []int
	// NodesPerIP nodes share one source address.
	NodesPerIP int
	// Transports the nodes connect over: "tcp", "quic" or both.
	Transports []string
	// Concurrency is how many nodes come up at once.
	Concurrency int
	// Settle is the pause after a ramp, before measuring.
	Settle time.Duration
	// Idle is the window over which idle CPU is measured.
	Idle time.Duration
	// Heartbeat is the nodes' ping interval; RegistrationRefresh how often
	// a node re-registers (natter: registration_ttl/2). Reservations are
	// renewed at 3/4 of the relay's TTL.
	Heartbeat, RegistrationRefresh time.Duration
	// Rate is the open-loop rate of registrations, then of lookups, per
	// second, for RateDuration each; Workers then run a closed loop for as
	// long.
	Rate         int
	RateDuration time.Duration
	Workers      int
	// Pairs of nodes talk through the relay for ChatDuration, Window
	// messages of MsgSize bytes in flight per pair.
	Pairs        int
	ChatDuration time.Duration
	Window       int
	MsgSize      int
	// Log reports progress (nil: none).
	Log *slog.Logger
}

// DefaultConfig is the run `natter-rendezvous bench` makes by default.
func DefaultConfig() Config {
	return Config{
		Levels:              []int{100, 1000},
		BaselineLevels:      []int{100, 1000},
		NodesPerIP:          8,
		Transports:          []string{"tcp", "quic"},
		Concurrency:         64,
		Settle:              5 * time.Second,
		Idle:                30 * time.Second,
		Heartbeat:           10 * time.Second,
		RegistrationRefresh: 30 * time.Minute,
		Rate:                1000,
		RateDuration:        10 * time.Second,
		Workers:             64,
		Pairs:               50,
		ChatDuration:        10 * time.Second,
		Window:              8,
		MsgSize:             100,
	}
}

// Validate checks c.
func (c Config) Validate() error {
	switch {
	case len(c.Levels) == 0 || !slices.IsSorted(c.Levels) || c.Levels[0] < 2:
		return errors.New("levels must be increasing, from 2 nodes")
	case !slices.IsSorted(c.BaselineLevels) || (len(c.BaselineLevels) > 0 && c.BaselineLevels[0] < 2):
		return errors.New("baseline levels must be increasing, from 2 nodes")
	case c.NodesPerIP < 1:
		return errors.New("nodes per IP must be at least 1")
	case len(c.Transports) == 0 || slices.ContainsFunc(c.Transports, func(t string) bool { return t != "tcp" && t != "quic" }):
		return errors.New("transports are tcp and/or quic")
	case c.Concurrency < 1 || c.Workers < 1 || c.Window < 1 || c.MsgSize < 1 || c.Rate < 1 || c.Pairs < 0:
		return errors.New("concurrency, workers, window, message size and rate must be positive")
	case c.Heartbeat <= 0 || c.RegistrationRefresh <= 0 || c.Idle <= 0 || c.RateDuration <= 0 || c.ChatDuration <= 0 || c.Settle < 0:
		return errors.New("durations must be positive")
	}
	return nil
}

// Latency is a latency distribution and a rate, and what it cost the
// server.
type Latency struct {
	Count  int `json:"count"`
	Errors int `json:"errors"`
	// NotFound counts lookups answered "not registered": the target had
	// been dropped by the server (the stock connection manager trims).
	NotFound int     `json:"not_found,omitempty"`
	PerSec   float64 `json:"per_sec"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	// Behind counts open-loop requests not sent because maxInFlight were
	// still outstanding (the server, or the load generator, fell behind).
	Behind int `json:"behind,omitempty"`
	// ServerCPUus is the server's CPU time per operation, in microseconds:
	// what it spent during the phase, less its idle rate (heartbeats,
	// refreshes) over the phase, divided by the operations that succeeded.
	// On a shared machine the steadiest figure.
	ServerCPUus float64 `json:"server_cpu_us"`
	// ServerCores and LoadgenCores are the CPU the server and this process
	// (the nodes) used during the phase, in cores: with 2 cores shared,
	// they tell which side was short of CPU when latency climbs.
	ServerCores  float64 `json:"server_cores"`
	LoadgenCores float64 `json:"loadgen_cores"`
}

// Level is what was measured at one level.
type Level struct {
	Server string `json:"server"` // "natter" or "stock"
	Nodes  int    `json:"nodes"`  // nodes brought up so far
	// What the server holds after the ramp (its own gauges).
	Online        int `json:"online"`
	Reservations  int `json:"reservations"`
	Registrations int `json:"registrations"`
	Connections   int `json:"connections"`
	// Ramp: time to bring the level's new nodes up, failures by stage.
	RampSeconds  float64        `json:"ramp_s"`
	RampFailures map[string]int `json:"ramp_failures,omitempty"`
	// Memory of the server process, per node over what it used with none.
	RSSBytes        int64 `json:"rss_bytes"`
	RSSPerNode      int64 `json:"rss_per_node"`
	HeapBytes       int64 `json:"heap_bytes"`
	HeapPerNode     int64 `json:"heap_per_node"`
	ServerGoroutine int   `json:"server_goroutines"`
	// IdleCPU is the server's CPU while the nodes only heartbeat and
	// refresh, in cores (1.0 = one core busy); IdleCPUPer1k per 1,000 nodes.
	IdleCPU      float64 `json:"idle_cpu"`
	IdleCPUPer1k float64 `json:"idle_cpu_per_1k"`
	// IdleHeartbeats is the heartbeats the server counted per second over
	// the idle window (Online/Heartbeat if the nodes kept time: fewer
	// means the load generator fell behind, and IdleCPU is understated).
	IdleHeartbeats float64 `json:"idle_heartbeats_per_s"`
	// Registry: open loop at Config.Rate, then closed loop.
	Register    Latency `json:"register"`
	RegisterMax Latency `json:"register_max"`
	Lookup      Latency `json:"lookup"`
	LookupMax   Latency `json:"lookup_max"`
	// Chat through the relay.
	Chat      Latency `json:"chat"`
	ChatPairs int     `json:"chat_pairs"`
	ChatCut   int     `json:"chat_cut"` // pairs whose relayed link failed during the phase
	// Background errors during the level (heartbeats, refreshes).
	Background map[string]int `json:"background_errors,omitempty"`
	LoadAvg    string         `json:"loadavg"`
}

// Report is a whole run.
type Report struct {
	Config   Config  `json:"-"`
	Started  string  `json:"started"`
	Levels   []Level `json:"levels"`
	Baseline []Level `json:"baseline"`
	// Limit says what stopped the run early, if anything did.
	Limit string `json:"limit,omitempty"`
}

// counters counts named events.
type counters struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counters) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
}

func (c *counters) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.m
	c.m = nil
	return m
}

// Run measures cfg.Levels against a server from start, then
// cfg.BaselineLevels against a stock one.
func Run(ctx context.Context, cfg Config, start Starter) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	rep := &Report{Config: cfg, Started: time.Now().UTC().Format(time.RFC3339)}
	var err error
	rep.Levels, err = runServer(ctx, cfg, cfg.Levels, false, start)
	if err != nil {
		rep.Limit = err.Error()
	}
	if len(cfg.BaselineLevels) > 0 && ctx.Err() == nil {
		var berr error
		rep.Baseline, berr = runServer(ctx, cfg, cfg.BaselineLevels, true, start)
		if berr != nil && err == nil {
			err = berr
		}
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	return rep, err
}

// run is one server's series of levels.
type run struct {
	cfg    Config
	target *Target
	name   string
	nodes  []*node
	base   sample // the server with no node
	bg     counters

	lifeCtx context.Context
	lifeWG  sync.WaitGroup
}

func runServer(ctx context.Context, cfg Config, levels []int, stock bool, start Starter) (out []Level, err error) {
	t, err := start(ctx, stock)
	if err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, target: t, name: "natter"}
	if stock {
		r.name = "stock"
	}
	lifeCtx, stopLife := context.WithCancel(ctx)
	r.lifeCtx = lifeCtx
	defer func() {
		stopLife()
		r.lifeWG.Wait()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 256)
		for _, n := range r.nodes {
			wg.Add(1)
			sem <- struct{}{}
			go func() { defer wg.Done(); n.h.Close(); <-sem }()
		}
		wg.Wait()
		if serr := t.Stop(); serr != nil && err == nil && ctx.Err() == nil {
			cfg.Log.Debug("server exit", "err", serr)
		}
	}()
	time.Sleep(cfg.Settle)
	if r.base, err = t.sample(ctx); err != nil {
		return nil, err
	}
	for _, n := range levels {
		lv, err := r.level(ctx, n)
		if err != nil {
			return out, fmt.Errorf("%s server at %d nodes: %w", r.name, n, err)
		}
		out = append(out, lv)
		cfg.Log.Info("level measured", "server", r.name, "nodes", n, "online", lv.Online,
			"reservations", lv.Reservations, "registrations", lv.Registrations,
			"rss_per_node", lv.RSSPerNode, "idle_cpu_per_1k", fmt.Sprintf("%.4f", lv.IdleCPUPer1k),
			"register_p99_ms", lv.Register.P99ms, "chat_per_s", int(lv.Chat.PerSec))
	}
	return out, nil
}

func (r *run) level(ctx context.Context, target int) (Level, error) {
	cfg := r.cfg
	lv := Level{Server: r.name, Nodes: target}
	srv := r.target.Info

	// Ramp.
	start := time.Now()
	failures := counters{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Concurrency)
	first := len(r.nodes)
	cfg.Log.Info("ramp", "server", r.name, "from", first, "to", target)
	for i := first; i < target && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			n, err := newNode(i, cfg.NodesPerIP, cfg.Transports)
			if err != nil {
				failures.add("host")
				cfg.Log.Warn("node host", "err", err)
				return
			}
			if stage, err := n.up(ctx, srv); err != nil {
				failures.add(stage)
				cfg.Log.Info("node failed", "stage", stage, "err", err)
			}
			mu.Lock()
			r.nodes = append(r.nodes, n)
			mu.Unlock()
			r.lifeWG.Add(1)
			go func() {
				defer r.lifeWG.Done()
				n.life(r.lifeCtx, srv, cfg.Heartbeat, cfg.RegistrationRefresh, randDur, &r.bg)
			}()
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return lv, err
	}
	lv.RampSeconds = time.Since(start).Seconds()
	lv.RampFailures = failures.take()
	time.Sleep(cfg.Settle)

	// Memory and what the server holds.
	s, err := r.target.sample(ctx)
	if err != nil {
		return lv, err
	}
	lv.LoadAvg = s.loadavg
	lv.Online = int(s.gauges["natter_rendezvous_online_peers"])
	lv.Reservations = int(s.gauges["natter_rendezvous_reservations"])
	lv.Registrations = int(s.gauges["natter_rendezvous_registrations"])
	lv.ServerGoroutine = int(s.gauges["go_goroutines"])
	lv.Connections = r.connections()
	lv.RSSBytes, lv.HeapBytes = s.rss, s.heap
	// Per node the server holds (the stock server drops some).
	held := int64(max(lv.Online, 1))
	lv.RSSPerNode = (s.rss - r.base.rss) / held
	lv.HeapPerNode = (s.heap - r.base.heap) / held

	// Idle CPU.
	s0, err := r.target.sample(ctx)
	if err != nil {
		return lv, err
	}
	if err := sleep(ctx, cfg.Idle); err != nil {
		return lv, err
	}
	s1, err := r.target.sample(ctx)
	if err != nil {
		return lv, err
	}
	lv.IdleCPU = (s1.cpu - s0.cpu).Seconds() / s1.at.Sub(s0.at).Seconds()
	lv.IdleHeartbeats = (s1.gauges["natter_rendezvous_heartbeats_total"] - s0.gauges["natter_rendezvous_heartbeats_total"]) / s1.at.Sub(s0.at).Seconds()
	lv.IdleCPUPer1k = lv.IdleCPU * 1000 / float64(max(lv.Online, 1))

	// Registry.
	live := r.liveNodes()
	if len(live) == 0 {
		return lv, errors.New("no node is up")
	}
	reg := func(ctx context.Context, rnd *rand.Rand) error {
		n := live[rnd.IntN(len(live))]
		_, err := n.register(ctx, srv.ID)
		return err
	}
	look := func(ctx context.Context, rnd *rand.Rand) error {
		n, m := live[rnd.IntN(len(live))], live[rnd.IntN(len(live))]
		return n.lookup(ctx, srv.ID, m.h.ID())
	}
	cfg.Log.Info("registry", "server", r.name, "nodes", target)
	phases := []struct {
		out *Latency
		run func() Latency
	}{
		{&lv.Register, func() Latency { return openLoop(ctx, cfg.Rate, cfg.RateDuration, reg) }},
		{&lv.RegisterMax, func() Latency { return closedLoop(ctx, cfg.Workers, cfg.RateDuration, reg) }},
		{&lv.Lookup, func() Latency { return openLoop(ctx, cfg.Rate, cfg.RateDuration, look) }},
		{&lv.LookupMax, func() Latency { return closedLoop(ctx, cfg.Workers, cfg.RateDuration, look) }},
		{&lv.Chat, func() Latency {
			cfg.Log.Info("chat", "server", r.name, "nodes", target)
			var l Latency
			l, lv.ChatPairs, lv.ChatCut = r.chat(ctx, live)
			return l
		}},
	}
	for _, p := range phases {
		c0, err := r.target.sample(ctx)
		if err != nil {
			return lv, err
		}
		self0, _ := processCPU(os.Getpid())
		*p.out = p.run()
		self1, _ := processCPU(os.Getpid())
		c1, err := r.target.sample(ctx)
		if err != nil {
			return lv, err
		}
		secs := c1.at.Sub(c0.at).Seconds()
		p.out.ServerCores = (c1.cpu - c0.cpu).Seconds() / secs
		p.out.LoadgenCores = (self1 - self0).Seconds() / secs
		if p.out.Count > 0 {
			busy := (c1.cpu - c0.cpu).Seconds() - lv.IdleCPU*c1.at.Sub(c0.at).Seconds()
			p.out.ServerCPUus = max(busy, 0) * 1e6 / float64(p.out.Count)
		}
	}
	lv.Background = r.bg.take()
	return lv, ctx.Err()
}

// connections counts the nodes' connections to the server.
func (r *run) connections() int {
	n := 0
	for _, nd := range r.nodes {
		n += len(nd.h.Network().ConnsToPeer(r.target.Info.ID))
	}
	return n
}

// liveNodes are the nodes connected to the server and holding a relay
// address.
func (r *run) liveNodes() []*node {
	var out []*node
	for _, n := range r.nodes {
		n.mu.Lock()
		ok := n.circuit != nil
		n.mu.Unlock()
		if ok && n.h.Network().Connectedness(r.target.Info.ID) == network.Connected {
			out = append(out, n)
		}
	}
	return out
}

func randDur(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxInFlight bounds the open loop's outstanding requests; a request due
// while it is reached is counted as an error (the server fell behind).
const maxInFlight = 4096

// openLoop makes rate requests a second for d, on schedule whatever the
// latency; each latency counts from when its request was due.
func openLoop(ctx context.Context, rate int, d time.Duration, req func(context.Context, *rand.Rand) error) Latency {
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     int
		notFound int
		behind   int
		inFlight atomic.Int64
		wg       sync.WaitGroup
	)
	start := time.Now()
	total := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	for i := 0; i < total && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		if inFlight.Load() >= maxInFlight {
			mu.Lock()
			behind++
			mu.Unlock()
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			defer inFlight.Add(-1)
			err := req(ctx, rand.New(rand.NewPCG(seed, 1)))
			took := time.Since(due)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, rdvproto.ErrNotFound):
				notFound++
			case err != nil:
				errs++
			default:
				lat = append(lat, took)
			}
		}(uint64(i))
	}
	wg.Wait()
	l := summarize(lat, errs, time.Since(start))
	l.Behind, l.NotFound = behind, notFound
	return l
}

// closedLoop runs workers that each make one request after another for d.
func closedLoop(ctx context.Context, workers int, d time.Duration, req func(context.Context, *rand.Rand) error) Latency {
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     int
		notFound int
		wg       sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 2))
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				err := req(ctx, rnd)
				took := time.Since(t0)
				mu.Lock()
				switch {
				case errors.Is(err, rdvproto.ErrNotFound):
					notFound++
				case err != nil:
					errs++
				default:
					lat = append(lat, took)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	l := summarize(lat, errs, time.Since(start))
	l.NotFound = notFound
	return l
}

func summarize(lat []time.Duration, errs int, took time.Duration) Latency {
	l := Latency{Count: len(lat), Errors: errs, PerSec: float64(len(lat)) / took.Seconds()}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		l.P50ms = ms(lat[len(lat)/2])
		l.P99ms = ms(lat[min(len(lat)-1, len(lat)*99/100)])
	}
	return l
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// chat runs cfg.Pairs pairs through the relay: the first node of a pair
// connects to the second over its relay address and pipelines echo
// messages. It returns the round trips, the pairs that started and the
// pairs whose link failed.
func (r *run) chat(ctx context.Context, live []*node) (Latency, int, int) {
	cfg := r.cfg
	pairs := min(cfg.Pairs, len(live)/2)
	if pairs == 0 {
		return Latency{}, 0, 0
	}
	perm := rand.Perm(len(live))
	var (
		mu      sync.Mutex
		lat     []time.Duration
		errs    int
		started int
		cut     int
		wg      sync.WaitGroup
	)
	begin := make(chan struct{})
	end := time.Now().Add(cfg.ChatDuration + 30*time.Second) // replaced when all are set up
	var endMu sync.Mutex
	for i := range pairs {
		a, b := live[perm[2*i]], live[perm[2*i+1]]
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := relayedStream(ctx, a, b, r.target.Info.ID)
			if err != nil {
				mu.Lock()
				errs++
				mu.Unlock()
				<-begin
				return
			}
			defer st.Reset()
			mu.Lock()
			started++
			mu.Unlock()
			<-begin
			endMu.Lock()
			stop := end
			endMu.Unlock()
			l, failed := echo(st, cfg.Window, cfg.MsgSize, stop)
			mu.Lock()
			lat = append(lat, l...)
			if failed {
				cut++
			}
			mu.Unlock()
		}()
	}
	// Let every pair set up before the clock starts.
	setup := time.Now()
	for {
		mu.Lock()
		done := started + errs
		mu.Unlock()
		if done >= pairs || time.Since(setup) > time.Minute || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	endMu.Lock()
	t0 := time.Now()
	end = t0.Add(cfg.ChatDuration)
	endMu.Unlock()
	close(begin)
	wg.Wait()
	out := summarize(lat, errs, time.Since(t0))
	return out, started, cut
}

// relayedStream opens an echo stream from a to b through the relay.
func relayedStream(ctx context.Context, a, b *node, relay peer.ID) (network.Stream, error) {
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	b.mu.Lock()
	circuit := b.circuit
	b.mu.Unlock()
	if err := a.h.Connect(cctx, peer.AddrInfo{ID: b.h.ID(), Addrs: []ma.Multiaddr{circuit}}); err != nil {
		return nil, fmt.Errorf("connect through the relay: %w", err)
	}
	return a.h.NewStream(network.WithAllowLimitedConn(cctx, "bench"), b.h.ID(), EchoProtocol)
}

// echo keeps window messages in flight on st until stop; it returns the
// round trips and whether the stream failed before stop.
func echo(st network.Stream, window, size int, stop time.Time) ([]time.Duration, bool) {
	sent := make(chan time.Time, window)
	var lat []time.Duration
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, size)
		for t := range sent {
			if _, err := io.ReadFull(st, buf); err != nil {
				readErr = err
				for range sent {
				}
				return
			}
			lat = append(lat, time.Since(t))
		}
	}()
	msg := make([]byte, size)
	failed := false
	_ = st.SetDeadline(stop.Add(10 * time.Second))
	for time.Now().Before(stop) {
		sent <- time.Now()
		if _, err := st.Write(msg); err != nil {
			failed = true
			break
		}
	}
	close(sent)
	<-done
	if readErr != nil {
		failed = true
	}
	return lat, failed
}
