package cli

import "github.com/spf13/cobra"

// jsonFlag gives a command --json: print the daemon's answer as JSON (the
// control API's types, whose keys are a stable contract) instead of text.
func jsonFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "json", false, "print JSON (stable keys, for scripts)")
}
