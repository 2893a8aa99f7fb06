package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/protocols/file"
)

func newFilesCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "files [--json]",
		Short: "List file transfers; accept, reject or cancel one",
		Long: `files lists every file transfer, oldest first: its id, direction (in or
out), contact, name, size, state, progress, rate, path (direct or relayed)
and, for one that waits or failed, why; for a received file, where it was
saved.

States: offered (waiting for the receiver), accepted, transferring, paused
(interrupted or waiting: the reason says why; it resumes by itself), done,
failed, rejected, cancelled.

A transfer id may be shortened to any unique prefix.

With --json the keys id, peer_id, contact, direction, name, size, sha256,
state, bytes_done, rate, path, reason, final_path, source are a stable
contract for scripts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			ts, err := g.client().Files(ctx)
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, ts)
			}
			return printTransfers(g, ts)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable keys, for scripts)")
	for _, a := range []struct{ name, short, done string }{
		{"accept", "Accept a file offered to you (or retry a paused one now)", "accepted"},
		{"reject", "Reject a file offered to you; the sender is told", "rejected"},
		{"cancel", "Cancel a transfer in either direction; the contact is told", "cancelled"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   a.name + " <id>",
			Short: a.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				ctx, cancel := apiCtx(cmd)
				defer cancel()
				t, err := g.client().FileAction(ctx, args[0], a.name)
				if err != nil {
					return g.apiErr(err)
				}
				what := a.done
				if a.name == "accept" && t.State != control.TransferAccepted {
					what = "retrying"
				}
				fmt.Fprintf(g.stdout, "%s %s (%s, %s)\n", what, t.ID, t.Name, file.FormatSize(t.Size))
				return nil
			},
		})
	}
	return cmd
}

func printTransfers(g *globals, ts []control.Transfer) error {
	if len(ts) == 0 {
		fmt.Fprintln(g.stdout, "no file transfers yet; send one with: natter send-file <contact> <path>")
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDIR\tCONTACT\tNAME\tSIZE\tSTATE\tDONE\tRATE\tPATH\tINFO")
	for _, t := range ts {
		who := t.Contact
		if who == "" {
			who = t.PeerID
		}
		info := t.Reason
		if t.FinalPath != "" {
			info = t.FinalPath
		}
		rate := "-"
		if t.State == control.TransferTransferring {
			rate = fmtRate(t.Rate)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d%%\t%s\t%s\t%s\n", t.ID, t.Direction, who, truncRunes(t.Name, 40),
			file.FormatSize(t.Size), t.State, percent(t), rate, orDash(t.Path), orDash(info))
	}
	return tw.Flush()
}
