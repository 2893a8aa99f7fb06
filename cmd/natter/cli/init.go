package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/node/identity"
	"github.com/natterim/natter/node/invite"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/wire"
)

func newInitCmd(g *globals) *cobra.Command {
	var (
		name     string
		noPass   bool
		passFile string
	)
	cmd := &cobra.Command{
		Use:   "init --name NAME [--no-passphrase | --passphrase-file FILE]",
		Short: "Create the node's identity (Ed25519 key) and data dir",
		Long: `init creates the data dir, a new Ed25519 identity and the database.
The key is encrypted with a passphrase read from --passphrase-file, the
NATTER_PASSPHRASE environment variable or the terminal (asked twice);
--no-passphrase stores it unencrypted (mode 0600) and says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name = strings.TrimSpace(name)
			if name == "" {
				return usageError{errors.New("init: --name is required (the name your contacts see)")}
			}
			// The name travels in invites, friend requests and the
			// profile: it must pass the same check as theirs.
			if err := wire.ValidateText("--name", name, invite.MaxNameLen); err != nil {
				return usageError{fmt.Errorf("init: %s", strings.TrimSuffix(err.Error(), ": "+wire.ErrInvalid.Error()))}
			}
			var pass []byte
			if !noPass {
				p, err := readPassphrase(passFile)
				if err != nil {
					return err
				}
				if p == nil {
					if p, err = choosePassphrase("passphrase for the new identity", g.stderr); err != nil {
						return err
					}
				}
				if p == nil {
					return usageError{errors.New("init: choose a passphrase for the key (--passphrase-file FILE, NATTER_PASSPHRASE, or run in a terminal) or pass --no-passphrase")}
				}
				pass = p
			}
			return runInit(cmd.Context(), g, name, pass)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "your display name")
	cmd.Flags().BoolVar(&noPass, "no-passphrase", false, "store the key unencrypted")
	cmd.Flags().StringVar(&passFile, "passphrase-file", "", "read the key passphrase from this file (first line)")
	return cmd
}

// readPassphrase reads the passphrase from file, else NATTER_PASSPHRASE;
// nil if neither is given.
func readPassphrase(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("passphrase file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimRight(line, "\r")
		if line == "" {
			return nil, fmt.Errorf("passphrase file %s is empty", file)
		}
		return []byte(line), nil
	}
	if p, ok := os.LookupEnv("NATTER_PASSPHRASE"); ok && p != "" {
		return []byte(p), nil
	}
	return nil, nil
}

func runInit(ctx context.Context, g *globals, name string, pass []byte) error {
	dir := g.dataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	sk, err := identity.Generate()
	if err != nil {
		return err
	}
	if err := identity.Create(dir, sk, pass, identity.Options{KDF: kdfParams}); err != nil {
		if errors.Is(err, identity.ErrExists) {
			return fmt.Errorf("%s already holds an identity; use another --data-dir (init never overwrites a key)", dir)
		}
		return err
	}
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	defer st.Close()
	if err := st.SetSetting(ctx, store.SettingName, name); err != nil {
		return err
	}
	id, err := identity.PeerID(dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(g.stdout, id)
	if pass == nil {
		warnUnencrypted(g.stderr, dir)
	}
	fmt.Fprintf(g.stderr, "created identity for %q in %s\nnext: natter daemon --data-dir %s --rendezvous /ip4/RENDEZVOUS-IP/tcp/4001/p2p/RENDEZVOUS-ID\n", name, dir, dir)
	return nil
}
