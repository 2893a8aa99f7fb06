package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/rendezvous"
)

func newPeersCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "peers [--json]",
		Short: "List the peers online on the running server",
		Long: `peers asks the server running on the data dir (over its admin socket) for
the peers connected to it: the directory names each holds, its presence
(online, stale, connected), address, relay reservation, last heartbeat,
connection age and open relayed connections.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd.Flags(), nil)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			peers, err := rendezvous.NewAdminClient(cfg.DataDir).Peers(ctx)
			if err != nil {
				return adminErr(err, cfg.DataDir)
			}
			if asJSON {
				if peers == nil {
					peers = []rendezvous.OnlinePeer{}
				}
				return g.writeJSON(peers)
			}
			printPeers(g, peers, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func printPeers(g *globals, peers []rendezvous.OnlinePeer, now time.Time) {
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tNAMES\tPRESENCE\tADDR\tRESERVATION\tLAST HEARTBEAT\tCONNECTED\tCIRCUITS")
	for _, p := range peers {
		addr := "-"
		// The address the peer connects from (its NAT's public side), as
		// the classic online list shows it; else what it registered.
		switch {
		case len(p.RemoteAddrs) > 0:
			addr = p.RemoteAddrs[0].String()
			if len(p.RemoteAddrs) > 1 {
				addr += " (+" + strconv.Itoa(len(p.RemoteAddrs)-1) + ")"
			}
		case len(p.Addrs) > 0:
			addr = p.Addrs[0].String() + " (registered)"
		}
		rsv := "no"
		if p.Reservation {
			rsv = "until " + p.ReservationExpires.Local().Format("15:04")
		}
		nms := "-"
		if len(p.Names) > 0 {
			nms = strings.Join(p.Names, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", p.PeerID, nms, p.Presence, addr, rsv, ago(p.LastHeartbeat, now), ago(p.ConnectedSince, now), p.Circuits)
	}
	tw.Flush()
}

// ago renders t as "5s ago", "3m ago", "2h10m ago", or "never".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m ago"
	case d < 48*time.Hour:
		h := int(d / time.Hour)
		m := int((d % time.Hour) / time.Minute)
		if m == 0 {
			return strconv.Itoa(h) + "h ago"
		}
		return fmt.Sprintf("%dh%dm ago", h, m)
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d ago"
}
