// Package cli is the natter command line: `natter init` and `natter daemon`
// run locally; every other command is a client of the daemon's control API
// on the unix socket in the data dir.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/node/control"
)

// exit codes
const (
	exitOK    = 0
	exitErr   = 1
	exitUsage = 2
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

// Main runs the natter command line with args (without the program name)
// and returns the exit code. It never panics on bad input: every error is
// one line on stderr.
func Main(args []string, stdout, stderr io.Writer) int {
	return Run(args, os.Stdin, stdout, stderr)
}

// Run is Main with an explicit standard input.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdout, stderr)
	root.SetIn(stdin)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "natter: %s\n", oneLine(err))
	if _, ok := errors.AsType[usageError](err); ok {
		return exitUsage
	}
	return exitErr
}

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

type globals struct {
	dataDir string
	stdout  io.Writer
	stderr  io.Writer
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "natter",
		Short: "natter: a peer-to-peer messenger that works behind home NATs",
		Long: `natter is a peer-to-peer instant messenger. Run "natter daemon" on your
computer; it finds your contacts through a rendezvous server, punches a hole
through both NATs and talks to them directly, end-to-end encrypted, falling
back to the rendezvous relay when no direct link is possible.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&g.dataDir, "data-dir", defaultDataDir(),
		"node data dir (identity, database, control socket); env NATTER_DATA_DIR")
	root.AddCommand(
		newInitCmd(g),
		newDaemonCmd(g),
		newIDCmd(g),
		newContactsCmd(g),
		newStatusCmd(g),
		newPingCmd(g),
		newSendCmd(g),
		newNudgeCmd(g),
		newHistoryCmd(g),
		newSearchCmd(g),
		newReadCmd(g),
		newPresenceCmd(g),
		newNamesCmd(g),
		newProfileCmd(g),
		newPasswdCmd(g),
		newExportCmd(g),
		newImportCmd(g),
		newChatCmd(g),
		newMailboxCmd(g),
		newSendFileCmd(g), newFilesCmd(g),
	)
	// Unknown subcommands and wrong argument counts are usage errors.
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		args := c.Args
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return usageError{fmt.Errorf("%s: %w (see: %s --help)", cmd.CommandPath(), err, cmd.CommandPath())}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// defaultDataDir is $NATTER_DATA_DIR, else $XDG_DATA_HOME/natter, else
// ~/.local/share/natter.
func defaultDataDir() string {
	if d := os.Getenv("NATTER_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "natter")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "natter")
	}
	return "natter-data"
}

// client returns a control API client for the daemon on g.dataDir.
func (g *globals) client() *control.Client {
	return control.NewClient(control.SocketPath(g.dataDir))
}

// apiErr turns control API errors into one actionable line.
func (g *globals) apiErr(err error) error {
	if errors.Is(err, control.ErrNoDaemon) {
		if _, serr := os.Stat(g.dataDir); serr != nil {
			return fmt.Errorf("data dir %s does not exist (create it with: natter init --data-dir %s --name NAME)", g.dataDir, g.dataDir)
		}
		return fmt.Errorf("no natter daemon is running on data dir %s (start it with: natter daemon --data-dir %s --rendezvous MADDR)", g.dataDir, g.dataDir)
	}
	return err
}
