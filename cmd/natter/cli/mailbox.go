package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/node/control"
)

func newMailboxCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "mailbox [--json]",
		Short: "Show offline delivery: your mailboxes and what waits in your contacts' mailboxes",
		Long: `mailbox shows offline delivery. Messages for a contact that stays offline
are sealed (only the contact can open them) into its mailbox on the
rendezvous; it takes them when it comes back. For each rendezvous: when
your own mailbox there was last emptied and how many messages came from it.
For each contact: until when it lets you deposit (its deposit token, renewed
whenever you are both online), how many of your messages wait in its
mailbox, and the last problem depositing there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			mb, err := g.client().Mailbox(ctx)
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, mb)
			}
			printMailbox(g.stdout, mb, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printMailbox(w io.Writer, mb control.Mailbox, now time.Time) {
	if !mb.Enabled {
		fmt.Fprintln(w, "offline delivery is off (mailbox.enabled: false)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RENDEZVOUS\tLAST EMPTIED\tRECEIVED\tREFUSED\tERROR")
	for _, s := range mb.Servers {
		last := "never"
		if !s.LastDrain.IsZero() {
			last = now.Sub(s.LastDrain).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", shortID(s.PeerID), last, s.Received, s.Rejected, orDash(s.LastError))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTACT\tMAY DEPOSIT UNTIL\tSTORED\tERROR")
	for _, c := range mb.Contacts {
		until := "no token yet"
		if !c.TokenExpires.IsZero() {
			until = c.TokenExpires.Local().Format("2006-01-02 15:04")
			if c.TokenExpires.Before(now) {
				until += " (expired)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", label(c.Name, c.PeerID), until, c.Stored, orDash(c.LastError))
	}
	tw.Flush()
}
