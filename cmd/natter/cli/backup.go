package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/cmd/internal/atomicfile"
	"github.com/natterim/natter/node"
	"github.com/natterim/natter/node/identity"
)

func newExportCmd(g *globals) *cobra.Command {
	var (
		passFile, exportFile string
		force                bool
	)
	cmd := &cobra.Command{
		Use:   "export FILE [--export-passphrase-file FILE] [--force]",
		Short: "Write the identity and its history to an encrypted archive (- for stdout)",
		Long: `export writes the identity key and a consistent snapshot of the database
(contacts and history) to FILE, encrypted with a passphrase, so that
"natter import" can move the identity to another machine. It works while
the daemon runs.

The archive is encrypted with the identity's passphrase (from
--passphrase-file, NATTER_PASSPHRASE or the terminal) unless another one is
given with --export-passphrase-file or NATTER_EXPORT_PASSPHRASE; an identity
stored without a passphrase needs one of those (or the terminal). The key
inside keeps its own passphrase. FILE is written with mode 0600 and never
overwritten without --force; "-" writes to stdout.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, out := g.dataDir, args[0]
			if _, err := identity.PeerID(dir); err != nil {
				return keyErr(dir, err)
			}
			if out != "-" && !force {
				if _, err := os.Lstat(out); err == nil {
					return fmt.Errorf("%s already exists; pass --force to overwrite it", out)
				}
			}
			pass, err := exportPassphrase(dir, passFile, exportFile, g.stderr)
			if err != nil {
				return err
			}
			write := func(w io.Writer) error {
				return identity.Export(cmd.Context(), dir, w, pass, kdfParams)
			}
			if out == "-" {
				if err := write(g.stdout); err != nil {
					return fmt.Errorf("export: %w", err)
				}
			} else if err := atomicfile.Write(out, force, write); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			id, _ := identity.PeerID(dir)
			if out != "-" {
				fmt.Fprintln(g.stdout, id)
			}
			fmt.Fprintf(g.stderr, "exported identity %s with its contacts and history to %s\n"+
				"move it to the other machine and run: natter import %s --data-dir DIR\n"+
				"keep the archive safe: with its passphrase it is your identity\n", id, out, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&passFile, "passphrase-file", "", "read the identity's passphrase from this file (else NATTER_PASSPHRASE)")
	f.StringVar(&exportFile, "export-passphrase-file", "", "encrypt the archive with the passphrase in this file (else NATTER_EXPORT_PASSPHRASE, else the identity's)")
	f.BoolVar(&force, "force", false, "overwrite FILE if it exists")
	return cmd
}

// exportPassphrase picks the archive's passphrase: --export-passphrase-file,
// NATTER_EXPORT_PASSPHRASE, else the identity's own (checked by unlocking
// the key), else for an unencrypted key a new one at the terminal.
func exportPassphrase(dir, passFile, exportFile string, stderr io.Writer) ([]byte, error) {
	if exportFile != "" {
		return readPassphrase(exportFile)
	}
	if p := os.Getenv("NATTER_EXPORT_PASSPHRASE"); p != "" {
		return []byte(p), nil
	}
	_, pass, err := unlockKey(dir, passFile, stderr)
	if err != nil {
		return nil, err
	}
	if pass != nil {
		return pass, nil
	}
	pass, err = choosePassphrase("passphrase for the export archive", stderr)
	if err != nil {
		return nil, err
	}
	if pass == nil {
		return nil, usageError{errors.New("export: the identity has no passphrase, but the archive needs one: give it with --export-passphrase-file FILE or NATTER_EXPORT_PASSPHRASE (or run in a terminal)")}
	}
	return pass, nil
}

func newImportCmd(g *globals) *cobra.Command {
	var passFile string
	cmd := &cobra.Command{
		Use:   "import FILE --data-dir DIR [--passphrase-file FILE]",
		Short: "Set up a data dir from an archive made by natter export (- for stdin)",
		Long: `import unpacks an archive made by "natter export" into --data-dir: the
identity key (which keeps its own passphrase) and the database with the
contacts and history. The archive's passphrase comes from --passphrase-file,
NATTER_PASSPHRASE or the terminal (three tries).

import never overwrites: it refuses a data dir that already holds an
identity or a database, or that a running daemon holds. If anything goes
wrong, it leaves nothing behind. Do not run the same identity on two
machines at once: stop the old daemon for good.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, in := g.dataDir, args[0]
			if id, err := identity.PeerID(dir); err == nil || !errors.Is(err, identity.ErrNotFound) {
				if err == nil {
					return fmt.Errorf("%s already holds an identity (%s); import into a new --data-dir", dir, id)
				}
				return fmt.Errorf("%s already holds an identity file (%v); import into a new --data-dir", dir, err)
			}
			if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
				release, err := lockForImport(dir)
				if err != nil {
					return err
				}
				defer release()
			}
			var r io.Reader = cmd.InOrStdin()
			if in != "-" {
				f, err := os.Open(in)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				r = f
			}
			a, err := identity.OpenArchive(r)
			if err != nil {
				return fmt.Errorf("import %s: %w", in, err)
			}
			if err := unlockArchive(a, in, passFile, g.stderr); err != nil {
				return err
			}
			id, err := a.Extract(dir)
			if err != nil {
				if errors.Is(err, identity.ErrExists) {
					return fmt.Errorf("%s already holds an identity; import into a new --data-dir", dir)
				}
				return fmt.Errorf("import %s: %w", in, err)
			}
			fmt.Fprintln(g.stdout, id)
			note := ""
			if enc, err := identity.Encrypted(dir); err == nil && enc {
				note = " (the key keeps the passphrase it had)"
			}
			fmt.Fprintf(g.stderr, "imported identity %s with its contacts and history into %s%s\n"+
				"next: natter daemon --data-dir %s --rendezvous /ip4/RENDEZVOUS-IP/tcp/4001/p2p/RENDEZVOUS-ID\n", id, dir, note, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "read the archive's passphrase from this file (else NATTER_PASSPHRASE)")
	return cmd
}

// lockForImport takes the daemon's lock on dir for the import, so no
// daemon runs on a half-imported dir; a lock file it had to create is
// removed again.
func lockForImport(dir string) (release func(), err error) {
	lp := node.LockPath(dir)
	_, statErr := os.Lstat(lp)
	l, err := node.LockDataDir(dir)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	return func() {
		_ = l.Release()
		if errors.Is(statErr, os.ErrNotExist) {
			_ = os.Remove(lp)
		}
	}, nil
}

// unlockArchive opens a with the passphrase from file or NATTER_PASSPHRASE
// (one try), else at the terminal (maxTries).
func unlockArchive(a *identity.Archive, name, file string, stderr io.Writer) error {
	_, err := withPassphrase("the archive "+name, file, stderr, a.Unlock)
	return err
}
