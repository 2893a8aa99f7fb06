package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/cmd/internal/cfgload"
	"github.com/natterim/natter/node"
)

// daemonFlags maps daemon flags to config keys; an explicitly set flag
// wins over the config file and the environment.
var daemonFlags = map[string]string{
	"data-dir":           "data_dir",
	"rendezvous":         "rendezvous",
	"listen":             "listen",
	"transports":         "transports",
	"nat-port-map":       "nat_port_map",
	"hole-punching":      "hole_punching",
	"dht":                "dht",
	"log-level":          "log_level",
	"log-format":         "log_format",
	"control-tcp-listen": "control.tcp_listen",
}

func newDaemonCmd(g *globals) *cobra.Command {
	var (
		cfgFile  string
		passFile string
	)
	def := node.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "daemon --rendezvous MADDR [--rendezvous MADDR2 ...]",
		Short: "Run the node in the foreground",
		Long: `daemon runs the node: it connects to the rendezvous servers over TCP and
QUIC, takes a relay reservation, registers itself, keeps a link with every
contact (direct after hole punching, relayed otherwise) and serves the
control API on <data-dir>/control.sock. Stop it with Ctrl-C or SIGTERM.

Configuration: built-in defaults < --config FILE (YAML, see
configs/node.yaml) < NATTER_* environment variables (NATTER_RENDEZVOUS,
NATTER_LOG_LEVEL, ...) < flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := node.DefaultConfig()
			cfg.DataDir = g.dataDir
			if err := cfgload.Load(cfgFile, cfg, &cfg, cmd.Flags(), daemonFlags); err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("config: %w", err)
			}
			if fi, err := os.Stat(cfg.DataDir); err != nil || !fi.IsDir() {
				return fmt.Errorf("data dir %s does not exist; create it with: natter init --data-dir %s --name NAME", cfg.DataDir, cfg.DataDir)
			}
			sk, _, err := unlockKey(cfg.DataDir, passFile, g.stderr)
			if err != nil {
				return err
			}
			log := newLogger(g.stderr, cfg.LogLevel, cfg.LogFormat)
			n, err := node.New(cmd.Context(), cfg, sk, node.WithLogger(log))
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "natter daemon %s running as %s (data dir %s); Ctrl-C to stop\n", node.Version, n.ID(), cfg.DataDir)
			<-cmd.Context().Done()
			log.Info("shutting down")
			return closeWatched(n, log, g.stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML config file (see configs/node.yaml)")
	f.StringVar(&passFile, "passphrase-file", "", "read the key passphrase from this file (else NATTER_PASSPHRASE)")
	f.StringArray("rendezvous", nil, "rendezvous server multiaddr ending in /p2p/<id> (repeat for more)")
	f.StringArray("listen", def.Listen, "listen multiaddr (repeat for more)")
	f.StringSlice("transports", def.Transports, "transports to use: tcp, quic")
	f.Bool("nat-port-map", def.NATPortMap, "ask the router for a port mapping (UPnP/NAT-PMP)")
	f.Bool("hole-punching", def.HolePunching, "upgrade relayed links to direct ones (DCUtR)")
	f.Bool("dht", def.DHT, "find contacts through the rendezvous servers' DHT too")
	f.String("log-level", def.LogLevel, "debug, info, warn or error")
	f.String("log-format", def.LogFormat, "text or json")
	f.String("control-tcp-listen", "", "also serve the control API on this loopback ip:port (token in <data-dir>/control.token)")
	return cmd
}

// newLogger builds the daemon's slog logger; Validate has checked level
// and format.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(strings.ToUpper(level)))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// slowShutdown is how long Close may take before the daemon says so and
// shows what it is waiting for (a clean stop normally takes about a
// second: contacts are told we leave, servers that we unregister).
const slowShutdown = 4 * time.Second

// closeWatched closes n; if that takes longer than slowShutdown it logs a
// warning and writes every goroutine's stack to w, so that a stop that
// hangs can be diagnosed from the log, then goes on waiting.
func closeWatched(n *node.Node, log *slog.Logger, w io.Writer) error {
	done := make(chan error, 1)
	go func() { done <- n.Close() }()
	slow := time.NewTimer(slowShutdown)
	defer slow.Stop()
	select {
	case err := <-done:
		return err
	case <-slow.C:
		log.Warn("shutdown is slow; goroutine stacks follow", "after", slowShutdown)
		_ = pprof.Lookup("goroutine").WriteTo(w, 1)
	}
	return <-done
}
