package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/node/control"
)

func newNamesCmd(g *globals) *cobra.Command {
	var listJSON bool
	cmd := &cobra.Command{
		Use:   "names",
		Short: "Claim, release and look up names in the rendezvous directory",
		Long: `names manages your names in the directory the rendezvous servers keep, so
friends can find you with "natter contacts add <name>" instead of a peer ID.

A name is 3 to 32 characters: letters a-z (upper case is folded to lower
case), digits, and single '-', '_' or '.' separators, not at either end.
Names that look alike ("bob.smith", "bobsmith", "b0b-smith") count as one:
the first key to claim it holds it. Your node registers your names on every
rendezvous it is connected to and renews them daily and on every
reconnection; a server releases a name nobody renewed for its inactivity
period (30 days by default).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return listNames(cmd, g, false) },
	}
	register := &cobra.Command{
		Use:   "register <name>",
		Short: "Claim a name on every connected rendezvous server (or renew it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			on, err := g.client().RegisterName(ctx, args[0])
			if err != nil {
				return g.apiErr(err)
			}
			ok := 0
			for _, s := range on.Servers {
				if s.State == control.NameRegistered {
					ok++
				}
			}
			fmt.Fprintf(g.stdout, "registered %s on %d of %d rendezvous servers; friends can now run: natter contacts add %s\n", on.Name, ok, len(on.Servers), on.Name)
			for _, s := range on.Servers {
				if s.State != control.NameRegistered {
					fmt.Fprintf(g.stdout, "  %s: %s %s\n", s.Server, s.State, s.Error)
				}
			}
			return nil
		},
	}
	release := &cobra.Command{
		Use:   "release <name>",
		Short: "Give one of your names up",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			on, err := g.client().ReleaseName(ctx, args[0])
			if err != nil {
				return g.apiErr(err)
			}
			fmt.Fprintf(g.stdout, "released %s\n", on.Name)
			for _, s := range on.Servers {
				if s.State != control.NameReleased {
					fmt.Fprintf(g.stdout, "  %s: %s %s\n", s.Server, s.State, s.Error)
				}
			}
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List your names and their state on each rendezvous server",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return listNames(cmd, g, listJSON) },
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")
	var lookupJSON bool
	lookup := &cobra.Command{
		Use:   "lookup <name> [--json]",
		Short: "Print the peer ID that holds a name (verified; servers must agree)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			res, err := g.client().LookupName(ctx, args[0])
			if err != nil {
				return g.apiErr(err)
			}
			if lookupJSON {
				return printJSON(g.stdout, res)
			}
			fmt.Fprintln(g.stdout, res.PeerID)
			return nil
		},
	}
	lookup.Flags().BoolVar(&lookupJSON, "json", false, "print JSON: name, peer_id, signed, servers, not_found")
	cmd.AddCommand(register, release, list, lookup)
	return cmd
}

func listNames(cmd *cobra.Command, g *globals, asJSON bool) error {
	ctx, cancel := apiCtx(cmd)
	defer cancel()
	own, err := g.client().Names(ctx)
	if err != nil {
		return g.apiErr(err)
	}
	if asJSON {
		return printJSON(g.stdout, own)
	}
	if len(own) == 0 {
		fmt.Fprintln(g.stdout, "no names yet; claim one with: natter names register <name>")
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tRENDEZVOUS\tSTATE\tRENEWED\tRELEASED IF NOT RENEWED BY\tERROR")
	for _, o := range own {
		if len(o.Servers) == 0 {
			fmt.Fprintf(tw, "%s\t-\tno rendezvous configured\t-\t-\t-\n", o.Name)
		}
		for _, s := range o.Servers {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.Name, s.Server, s.State, fmtTime(s.Renewed), fmtTime(s.ReleaseAt), orDash(oneLineText(s.Error)))
		}
	}
	return tw.Flush()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func oneLineText(s string) string { return strings.Join(strings.Fields(s), " ") }
