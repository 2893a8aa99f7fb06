package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/rendezvous"
)

// runFlags maps run's flags to config keys; an explicitly set flag wins
// over the config file and the environment.
var runFlags = map[string]string{
	"listen":         "listen",
	"announce":       "announce",
	"metrics-listen": "metrics_listen",
	"dht":            "dht.enabled",
	"bootstrap":      "dht.bootstrap",
	"log-level":      "log_level",
	"log-format":     "log_format",
}

func newRunCmd(g *globals) *cobra.Command {
	def := rendezvous.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "run [--listen MADDR ...] [--announce MADDR ...] [--metrics-listen IP:PORT]",
		Short: "Run the server in the foreground (the default command)",
		Long: `run starts the server and keeps it running until SIGINT or SIGTERM. It
creates the data dir and the server key on first start. The first line it
prints is the peer ID and the addresses nodes should use (--rendezvous).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd.Flags(), runFlags)
			if err != nil {
				return err
			}
			log := newLogger(g.stderr, cfg.LogLevel, cfg.LogFormat)
			srv, err := rendezvous.New(cmd.Context(), cfg, rendezvous.WithLogger(log))
			if err != nil {
				return err
			}
			// One write, so that a reader never sees the banner without
			// the addresses.
			var banner strings.Builder
			fmt.Fprintf(&banner, "%s running as %s (data dir %s); Ctrl-C to stop\n", prog, srv.ID(), cfg.DataDir)
			for _, a := range srv.Addrs() {
				fmt.Fprintf(&banner, "  %s\n", a)
			}
			if m := srv.MetricsAddr(); m != "" {
				fmt.Fprintf(&banner, "metrics on http://%s/metrics\n", m)
			}
			_, _ = io.WriteString(g.stdout, banner.String())
			<-cmd.Context().Done()
			log.Info("shutting down")
			return srv.Close()
		},
	}
	f := cmd.Flags()
	f.StringArray("listen", def.Listen, "listen multiaddr (repeat for more)")
	f.StringArray("announce", nil, "public multiaddr to advertise instead of the listen addresses (repeat for more)")
	f.String("metrics-listen", "", "serve Prometheus /metrics and /healthz on this ip:port (off if empty)")
	f.Bool("dht", def.DHT.Enabled, "run the DHT with other rendezvous servers")
	f.StringArray("bootstrap", nil, "another rendezvous server for the DHT, multiaddr ending in /p2p/<id> (repeat for more)")
	f.String("log-level", def.LogLevel, "debug, info, warn or error")
	f.String("log-format", def.LogFormat, "text or json")
	return cmd
}
