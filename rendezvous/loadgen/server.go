package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/natterim/natter/rendezvous"
)

// ServerConfig turns cfg (the defaults, or the operator's file) into the
// configuration of the server under test: loopback TCP and QUIC on free
// ports, metrics on, warnings only in the log, data in dataDir. The
// registry's rate limits per peer and per address are raised (1,000 at
// once, then one a millisecond; 10,000 at once, then ten) so that even 100
// nodes can make 1,000 registrations a second: the bench measures the
// server's throughput, the limits are tested apart. Every other limit is
// left as it is.
func ServerConfig(cfg rendezvous.Config, dataDir string) rendezvous.Config {
	cfg.DataDir = dataDir
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.Announce = nil
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.LogLevel = "warn"
	cfg.DHT.Bootstrap = nil
	cfg.RateLimits.RegistryPerPeer = rendezvous.Rate{Burst: 1000, Interval: time.Millisecond}
	cfg.RateLimits.RegistryPerIP = rendezvous.Rate{Burst: 10000, Interval: 100 * time.Microsecond}
	return cfg
}

// hello is the line Serve prints once the server is up.
type hello struct {
	PeerID  peer.ID  `json:"peer_id"`
	Addrs   []string `json:"addrs"`
	Metrics string   `json:"metrics"`
}

// Serve runs the server under test until ctx ends or stdin closes (the
// parent went away). Its first line on out tells the parent where it is.
// pprofAddr, if set, serves net/http/pprof there (to profile the server
// under load).
func Serve(ctx context.Context, cfg rendezvous.Config, stock bool, pprofAddr string, log *slog.Logger, stdin io.Reader, out io.Writer) error {
	if pprofAddr != "" {
		ln, err := net.Listen("tcp", pprofAddr)
		if err != nil {
			return fmt.Errorf("pprof: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		ps := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = ps.Serve(ln) }()
		defer ps.Close()
		log.Warn("pprof", "addr", ln.Addr().String())
	}
	opts := []rendezvous.Option{rendezvous.WithLogger(log)}
	if stock {
		opts = append(opts, rendezvous.WithStockLibp2pLimits())
	}
	srv, err := rendezvous.New(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	h := hello{PeerID: srv.ID(), Metrics: srv.MetricsAddr()}
	for _, a := range srv.Host().Network().ListenAddresses() {
		h.Addrs = append(h.Addrs, a.String())
	}
	if err := json.NewEncoder(out).Encode(h); err != nil {
		return fmt.Errorf("announce: %w", err)
	}
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(gone)
	}()
	select {
	case <-ctx.Done():
	case <-gone:
	}
	return srv.Close()
}

// Target is a running server under test.
type Target struct {
	Info       peer.AddrInfo
	PID        int    // the process to measure
	MetricsURL string // its Prometheus endpoint
	stop       func() error
}

// Stop ends the server and waits for it.
func (t *Target) Stop() error {
	if t.stop == nil {
		return nil
	}
	return t.stop()
}

// Starter starts a fresh server under test (stock: with go-libp2p's
// default limits).
type Starter func(ctx context.Context, stock bool) (*Target, error)

// ProcessStarter starts argv (a command that runs Serve) with "--data-dir
// DIR" in a fresh temporary directory, and "--stock" for the baseline. The
// server's log goes to stderr.
func ProcessStarter(argv []string, stderr io.Writer) Starter {
	return func(ctx context.Context, stock bool) (*Target, error) {
		dir, err := os.MkdirTemp("", "natter-bench-")
		if err != nil {
			return nil, err
		}
		args := append(append([]string{}, argv[1:]...), "--data-dir", filepath.Join(dir, "d"))
		if stock {
			args = append(args, "--stock")
		}
		cmd := exec.Command(argv[0], args...)
		cmd.Stderr = stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("start server: %w", err)
		}
		stop := func() error {
			stdin.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				err = <-done
			}
			os.RemoveAll(dir)
			return err
		}
		lines := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 64<<10)
			if sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
			_, _ = io.Copy(io.Discard, stdout)
		}()
		var line string
		select {
		case line = <-lines:
		case <-time.After(time.Minute):
		case <-ctx.Done():
		}
		var h hello
		if err := json.Unmarshal([]byte(line), &h); err != nil || h.PeerID == "" {
			_ = stop()
			return nil, fmt.Errorf("server did not start (first line %q)", line)
		}
		t := &Target{PID: cmd.Process.Pid, MetricsURL: "http://" + h.Metrics + "/metrics", stop: stop}
		t.Info.ID = h.PeerID
		for _, s := range h.Addrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				_ = stop()
				return nil, fmt.Errorf("server address %q: %w", s, err)
			}
			t.Info.Addrs = append(t.Info.Addrs, a)
		}
		return t, nil
	}
}

// sample is what is read off the server at one moment.
type sample struct {
	at      time.Time
	cpu     time.Duration // user + system CPU of the process so far
	rss     int64         // resident set size, bytes
	heap    int64         // Go heap in use, bytes
	gauges  map[string]float64
	loadavg string
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times (100 on every
// Linux architecture Go supports).
const clockTick = 100

func (t *Target) sample(ctx context.Context) (sample, error) {
	s := sample{at: time.Now()}
	var err error
	if s.cpu, err = processCPU(t.PID); err != nil {
		return s, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", t.PID))
	if err != nil {
		return s, fmt.Errorf("read server status: %w", err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			s.rss = kb << 10
		}
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		s.loadavg = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	s.gauges, err = scrape(ctx, t.MetricsURL)
	if err != nil {
		return s, err
	}
	s.heap = int64(s.gauges["go_memstats_heap_inuse_bytes"])
	return s, nil
}

// processCPU is the user + system CPU time process pid has used.
func processCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read process stat: %w", err)
	}
	// Fields after the ")" closing the command name: state is field 3,
	// utime 14 and stime 15 (1-based over the whole line).
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// scrape reads every unlabelled sample of a Prometheus text endpoint.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape server metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' || strings.ContainsRune(l, '{') {
			continue
		}
		name, val, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.Fields(val)[0], 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// RaiseFileLimit lifts RLIMIT_NOFILE to want (both limits; root may raise
// the hard one), or the soft limit to the hard one if that fails. The
// server process inherits it. It returns the soft limit in force.
func RaiseFileLimit(want uint64) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur >= want {
		return rl.Cur, nil
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: max(want, rl.Max)}); err == nil {
		return want, nil
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}

// InProcess starts the server in this process, in a fresh temporary data
// dir, from the defaults. Memory and CPU are then those of the whole
// process, nodes included: use it to test the load generator, measure with
// ProcessStarter.
func InProcess(ctx context.Context, stock bool) (*Target, error) {
	dir, err := os.MkdirTemp("", "natter-bench-")
	if err != nil {
		return nil, err
	}
	cfg := ServerConfig(rendezvous.DefaultConfig(), filepath.Join(dir, "d"))
	var opts []rendezvous.Option
	if stock {
		opts = append(opts, rendezvous.WithStockLibp2pLimits())
	}
	srv, err := rendezvous.New(ctx, cfg, opts...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	t := &Target{
		PID:        os.Getpid(),
		MetricsURL: "http://" + srv.MetricsAddr() + "/metrics",
		stop: func() error {
			err := srv.Close()
			os.RemoveAll(dir)
			return err
		},
	}
	t.Info.ID = srv.ID()
	t.Info.Addrs = srv.Host().Network().ListenAddresses()
	return t, nil
}
