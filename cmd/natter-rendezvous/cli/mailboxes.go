package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/rendezvous"
)

func newMailboxesCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "mailboxes [--json]",
		Short: "Show the offline mailboxes on the running server (counts and sizes only)",
		Long: `mailboxes asks the server running on the data dir (over its admin socket)
for its offline mailboxes: per recipient the number of sealed boxes waiting,
their bytes, the oldest one and when the owner was last seen; totals; and
the deposits refused since the server started, by reason. The boxes are
sealed to their recipients: neither this command nor the server can see
what they contain, or who wrote them inside.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig(cmd.Flags(), nil)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			rep, err := rendezvous.NewAdminClient(cfg.DataDir).Mailboxes(ctx)
			if err != nil {
				return adminErr(err, cfg.DataDir)
			}
			if asJSON {
				return g.writeJSON(rep)
			}
			printMailboxes(g, rep, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func printMailboxes(g *globals, rep rendezvous.MailboxReport, now time.Time) {
	if !rep.Enabled {
		fmt.Fprintln(g.stdout, "mailboxes are off (mailbox.enabled: false)")
	}
	t := rep.Totals
	fmt.Fprintf(g.stdout, "%d mailboxes, %d boxes waiting, %s (limits: %d boxes / %s per mailbox, %s in all, kept %s)\n",
		t.Mailboxes, t.Boxes, bytesString(t.Bytes), rep.Limits.MaxMessages, bytesString(rep.Limits.MaxBytes),
		bytesString(rep.Limits.MaxTotalBytes), rep.Limits.MaxAge)
	if len(rep.Refused) > 0 {
		keys := make([]string, 0, len(rep.Refused))
		for k := range rep.Refused {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, int(rep.Refused[k]))
		}
		fmt.Fprintf(g.stdout, "refused since start: %s\n", strings.Join(parts, ", "))
	}
	if len(rep.Mailboxes) == 0 {
		return
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OWNER\tBOXES\tBYTES\tOLDEST\tOWNER SEEN")
	for _, m := range rep.Mailboxes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", m.Owner, m.Boxes, bytesString(m.Bytes), ago(m.Oldest, now), ago(m.Seen, now))
	}
	tw.Flush()
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
