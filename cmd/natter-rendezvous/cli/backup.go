package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/natterim/natter/cmd/internal/atomicfile"
	"github.com/natterim/natter/rendezvous"
)

func newBackupCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "backup FILE [--force]",
		Short: "Write the server's key and a snapshot of its database to FILE (- for stdout)",
		Long: `backup writes a tar archive with the server's key (identity.key: its peer
ID, which every node's config names) and a consistent snapshot of its
database (rendezvous.db, made with SQLite's VACUUM INTO). A running server
makes it through its admin socket and keeps serving; with none running,
backup reads the data dir itself, holding its lock. The registry of who is
online is not in it: nodes register again after a restore.

FILE is written with mode 0600 (the key is in clear) and never overwritten
without --force; "-" writes to stdout. Restore with "natter-rendezvous
restore FILE".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig(cmd.Flags(), nil)
			if err != nil {
				return err
			}
			out := args[0]
			if out != "-" && !force {
				if _, err := os.Lstat(out); err == nil {
					return fmt.Errorf("%s already exists; pass --force to overwrite it", out)
				}
			}
			how := "from the running server"
			write := func(w io.Writer) error {
				err := rendezvous.NewAdminClient(cfg.DataDir).Backup(cmd.Context(), w)
				if !errors.Is(err, rendezvous.ErrNotRunning) {
					return err
				}
				how = "from the data dir (no server running)"
				return rendezvous.BackupOffline(cmd.Context(), cfg.DataDir, w)
			}
			if out == "-" {
				err = write(g.stdout)
			} else {
				err = atomicfile.Write(out, force, write)
			}
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if out != "-" {
				fmt.Fprintf(g.stdout, "backup of %s written to %s %s\n", cfg.DataDir, out, how)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite FILE if it exists")
	return cmd
}

func newRestoreCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE [--force]",
		Short: "Set up the data dir from a backup (- for stdin); the server must be stopped",
		Long: `restore unpacks a backup made by "natter-rendezvous backup" into the data
dir: the server's key and its database. The server must not be running (the
data dir's lock is held throughout). A data dir that already has a key or a
database is refused unless --force is given; then both are replaced (and a
stale SQLite WAL removed). Nothing is replaced until the whole archive has
been read and the key checked.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig(cmd.Flags(), nil)
			if err != nil {
				return err
			}
			var in io.Reader = os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("restore: %w", err)
				}
				defer f.Close()
				in = f
			}
			sk, err := rendezvous.Restore(cfg.DataDir, in, force)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			id, err := peer.IDFromPrivateKey(sk)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			fmt.Fprintf(g.stdout, "restored %s into %s; start the server as usual\n", id, cfg.DataDir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing key and database")
	return cmd
}
