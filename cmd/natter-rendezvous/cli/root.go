// Package cli is the natter-rendezvous command line: `run` starts the
// server (the default), `id` prints its identity and addresses, `peers`
// asks a running server for its online list over the admin socket.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/natterim/natter/cmd/internal/cfgload"
	"github.com/natterim/natter/rendezvous"
)

// exit codes
const (
	exitOK    = 0
	exitErr   = 1
	exitUsage = 2
)

const prog = "natter-rendezvous"

// usageError marks errors in how the command was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// Main runs the command line with args (without the program name) until
// SIGINT or SIGTERM and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return MainContext(ctx, args, stdout, stderr)
}

// MainContext is Main with the lifetime given by ctx instead of signals
// (for tests). Every error is one line on stderr, prefixed with the
// program name; the exit code is 1, or 2 for a usage error.
func MainContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(defaultToRun(args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "%s: %s\n", prog, oneLine(err))
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitErr
}

// defaultToRun makes `natter-rendezvous [flags]` mean `natter-rendezvous
// run [flags]`.
func defaultToRun(args []string) []string {
	if len(args) == 0 {
		return []string{"run"}
	}
	a := args[0]
	if strings.HasPrefix(a, "-") && a != "-h" && a != "--help" {
		return append([]string{"run"}, args...)
	}
	return args
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

type globals struct {
	stdout, stderr io.Writer
	dataDir        string
	cfgFile        string
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   prog,
		Short: "natter's public rendezvous server",
		Long: `natter-rendezvous is the public server natter nodes meet on: it relays
(circuit relay v2) for nodes behind NAT, keeps the registry nodes find each
other in, runs AutoNAT and a DHT with other rendezvous servers, and keeps
the list of online peers. Run it on a machine with a public address.

Configuration: built-in defaults < --config FILE (YAML, see
configs/rendezvous.yaml) < NATTER_* environment variables (NATTER_DATA_DIR,
NATTER_RELAY_MAX_RESERVATIONS, ...) < flags.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.dataDir, "data-dir", defaultDataDir(), "data dir (key, lock, admin socket); env NATTER_DATA_DIR")
	pf.StringVar(&g.cfgFile, "config", "", "YAML config file (see configs/rendezvous.yaml)")
	root.AddCommand(newRunCmd(g), newIDCmd(g), newPeersCmd(g), newMailboxesCmd(g), newBackupCmd(g), newRestoreCmd(g), newBenchCmd(g), newBenchServerCmd(g))
	for _, c := range root.Commands() {
		if c.Args != nil {
			args := c.Args
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return usageError{fmt.Errorf("%s: %w (see: %s --help)", cmd.CommandPath(), err, cmd.CommandPath())}
				}
				return nil
			}
		}
	}
	// Unknown subcommands are usage errors too.
	root.Args = func(_ *cobra.Command, a []string) error {
		if len(a) > 0 {
			return usageError{fmt.Errorf("unknown command %q (see: %s --help)", a[0], prog)}
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return root
}

// defaultDataDir is $XDG_DATA_HOME/natter-rendezvous, else
// ~/.local/share/natter-rendezvous. NATTER_DATA_DIR overrides it through
// the config loader.
func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, prog)
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", prog)
	}
	return prog + "-data"
}

// commonFlags map flags every command has to config keys.
var commonFlags = map[string]string{"data-dir": "data_dir"}

// loadConfig builds the config of cmd: defaults < --config < env < flags.
func (g *globals) loadConfig(flags *pflag.FlagSet, flagKeys map[string]string) (rendezvous.Config, error) {
	cfg := rendezvous.DefaultConfig()
	cfg.DataDir = g.dataDir
	keys := map[string]string{}
	for k, v := range commonFlags {
		keys[k] = v
	}
	for k, v := range flagKeys {
		keys[k] = v
	}
	if err := cfgload.Load(g.cfgFile, cfg, &cfg, flags, keys); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// newLogger builds the server's logger; Validate has checked level and
// format.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(strings.ToUpper(level)))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// adminErr turns the admin client's "no server on this data dir" into a
// message that says how to start one.
func adminErr(err error, dataDir string) error {
	if errors.Is(err, rendezvous.ErrNotRunning) {
		return fmt.Errorf("no %s is running on data dir %s (start it with: %s run --data-dir %s)", prog, dataDir, prog, dataDir)
	}
	return err
}

// writeJSON prints v indented, as every --json output of this program.
func (g *globals) writeJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
