package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/rendezvous/loadgen"
)

func newBenchCmd(g *globals) *cobra.Command {
	def := loadgen.DefaultConfig()
	var (
		levels, baseline, transports string
		serverPprof                  string
		asJSON                       bool
	)
	c := def
	cmd := &cobra.Command{
		Use:   "bench [--nodes 100,1000] [--baseline 100,1000] [--json]",
		Short: "Measure how many nodes a server carries (load generator)",
		Long: `bench starts a rendezvous server as its own process on loopback (with the
defaults, or --config FILE), brings up many lightweight libp2p nodes in this
process (TCP and QUIC, a few per 127.x.y.z address) that connect, reserve a
relay slot and register like natter nodes, then measures at each level of
--nodes: what the server holds, its memory per node (RSS and Go heap),
its CPU while the nodes only heartbeat, registrations and lookups (p50/p99
at --rate per second, then as many as --workers can make) and echo messages
relayed between --pairs pairs. It then does the same against a server with
go-libp2p's default limits (--baseline levels) and prints both, with the
ratios. It raises RLIMIT_NOFILE (as root, the hard limit too).

Every level takes about --idle + 4 x --rate-duration + --chat-duration,
plus the ramp. 10,000 nodes need about 5 GiB of memory for the nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if c.Levels, err = parseLevels(levels); err != nil {
				return usageError{fmt.Errorf("--nodes: %w", err)}
			}
			if c.BaselineLevels, err = parseLevels(baseline); err != nil {
				return usageError{fmt.Errorf("--baseline: %w", err)}
			}
			c.Transports = strings.Split(transports, ",")
			if err := c.Validate(); err != nil {
				return usageError{err}
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			top := max(c.Levels[len(c.Levels)-1], 0)
			if len(c.BaselineLevels) > 0 {
				top = max(top, c.BaselineLevels[len(c.BaselineLevels)-1])
			}
			// The nodes' TCP connections and QUIC sockets, the server's
			// connections, and room.
			if n, err := loadgen.RaiseFileLimit(uint64(4*top + 4096)); err != nil || n < uint64(3*top) {
				fmt.Fprintf(g.stderr, "%s: warning: file descriptor limit %d may be too low for %d nodes (%v)\n", prog, n, top, err)
			}
			c.Log = newLogger(g.stderr, "info", "text")
			argv := []string{exe, "bench-server"}
			if g.cfgFile != "" {
				argv = append(argv, "--config", g.cfgFile)
			}
			if serverPprof != "" {
				argv = append(argv, "--pprof", serverPprof)
			}
			rep, err := loadgen.Run(cmd.Context(), c, loadgen.ProcessStarter(argv, g.stderr))
			if rep != nil {
				if asJSON {
					_ = g.writeJSON(rep)
				} else {
					rep.WriteTable(g.stdout)
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&levels, "nodes", joinInts(def.Levels), "node counts to measure at, increasing (comma-separated)")
	f.StringVar(&baseline, "baseline", joinInts(def.BaselineLevels), "node counts to measure the stock go-libp2p server at (empty: none)")
	f.StringVar(&transports, "transports", strings.Join(def.Transports, ","), "what the nodes connect over: tcp, quic or tcp,quic")
	f.IntVar(&c.NodesPerIP, "nodes-per-ip", def.NodesPerIP, "nodes sharing one 127.x.y.z source address")
	f.IntVar(&c.Concurrency, "concurrency", def.Concurrency, "nodes brought up at once")
	f.DurationVar(&c.Settle, "settle", def.Settle, "pause after each ramp")
	f.DurationVar(&c.Idle, "idle", def.Idle, "window over which idle CPU is measured")
	f.DurationVar(&c.Heartbeat, "heartbeat", def.Heartbeat, "the nodes' ping interval")
	f.IntVar(&c.Rate, "rate", def.Rate, "registrations (then lookups) per second in the open-loop phase")
	f.DurationVar(&c.RateDuration, "rate-duration", def.RateDuration, "length of each registry phase")
	f.IntVar(&c.Workers, "workers", def.Workers, "concurrent requests in the closed-loop phase")
	f.IntVar(&c.Pairs, "pairs", def.Pairs, "pairs of nodes talking through the relay")
	f.DurationVar(&c.ChatDuration, "chat-duration", def.ChatDuration, "length of the relayed chat phase")
	f.IntVar(&c.Window, "window", def.Window, "messages in flight per relayed pair")
	f.IntVar(&c.MsgSize, "msg-size", def.MsgSize, "bytes per relayed message")
	f.BoolVar(&asJSON, "json", false, "print JSON instead of tables")
	f.StringVar(&serverPprof, "server-pprof", "", "serve the server's net/http/pprof on this ip:port (to profile it under load)")
	return cmd
}

// newBenchServerCmd is the server process bench starts (hidden).
func newBenchServerCmd(g *globals) *cobra.Command {
	var (
		stock     bool
		pprofAddr string
	)
	cmd := &cobra.Command{
		Use:    "bench-server",
		Short:  "The server under test of bench (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd.Flags(), nil)
			if err != nil {
				return err
			}
			cfg = loadgen.ServerConfig(cfg, cfg.DataDir)
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("config: %w", err)
			}
			log := newLogger(g.stderr, cfg.LogLevel, cfg.LogFormat).With("server", "bench")
			return loadgen.Serve(cmd.Context(), cfg, stock, pprofAddr, log, os.Stdin, g.stdout)
		},
	}
	cmd.Flags().BoolVar(&stock, "stock", false, "go-libp2p's default limits (the baseline)")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve net/http/pprof on this ip:port")
	return cmd
}

func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 2 {
			return nil, fmt.Errorf("%q is not a node count (2 or more)", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
