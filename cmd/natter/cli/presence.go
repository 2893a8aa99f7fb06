package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/node/control"
)

func newPresenceCmd(g *globals) *cobra.Command {
	var (
		message string
		clear   bool
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "presence [online|away|busy|invisible] [--message TEXT | --clear-message]",
		Short: "Show or set your presence and status message",
		Long: `presence sets what your accepted contacts see: online, away, busy, or
invisible (you appear offline but can still chat). --message sets the status
message shown with it. Without arguments it prints your presence.

While you are online and idle for presence.idle_away (no sending, typing or
reading through the daemon), contacts see you away until you are active
again.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			req := control.PresenceRequest{}
			if len(args) == 1 {
				req.State = args[0]
			}
			switch {
			case clear && cmd.Flags().Changed("message"):
				return usageError{fmt.Errorf("presence: --message and --clear-message together")}
			case clear:
				empty := ""
				req.Message = &empty
			case cmd.Flags().Changed("message"):
				req.Message = &message
			}
			var (
				st  control.Status
				err error
			)
			if req.State == "" && req.Message == nil {
				st, err = g.client().Status(ctx)
			} else {
				st, err = g.client().SetPresence(ctx, req)
			}
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, st)
			}
			out := st.Presence
			if st.AutoAway {
				out += " (shown as away: idle)"
			}
			if st.StatusMessage != "" {
				out += "\t" + st.StatusMessage
			}
			fmt.Fprintln(g.stdout, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&message, "message", "", "status message shown to contacts")
	cmd.Flags().BoolVar(&clear, "clear-message", false, "remove the status message")
	jsonFlag(cmd, &asJSON)
	return cmd
}
