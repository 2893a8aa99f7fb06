package cli

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/natterim/natter/rendezvous"
)

var idFlags = map[string]string{
	"listen":   "listen",
	"announce": "announce",
}

func newIDCmd(g *globals) *cobra.Command {
	def := rendezvous.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "id",
		Short: "Print the server's peer ID and dialable addresses",
		Long: `id prints the server's peer ID on the first line, then one full multiaddr
per line (ending in /p2p/<id>) for nodes to use as --rendezvous. It creates
the data dir and key if they do not exist yet, and does not start the
network: 0.0.0.0 and :: are expanded to this machine's interface addresses,
and a listen port of 0 stays 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd.Flags(), idFlags)
			if err != nil {
				return err
			}
			if err := rendezvous.EnsureDataDir(cfg.DataDir); err != nil {
				return err
			}
			sk, err := rendezvous.LoadOrCreateKey(cfg.DataDir)
			if err != nil {
				return err
			}
			id, err := peer.IDFromPrivateKey(sk)
			if err != nil {
				return fmt.Errorf("derive peer id: %w", err)
			}
			addrs, err := rendezvous.DialableAddrs(cfg, id)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, id)
			for _, a := range addrs {
				fmt.Fprintln(g.stdout, a)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArray("listen", def.Listen, "listen multiaddr (repeat for more)")
	f.StringArray("announce", nil, "public multiaddr to advertise instead of the listen addresses (repeat for more)")
	return cmd
}
