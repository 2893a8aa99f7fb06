package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/natterim/natter/node/identity"
)

// maxTries is how many passphrases the unlock prompt accepts.
const maxTries = 3

// terminal reads a line without echo. The real one is the controlling
// terminal on stdin; tests put a fake in openTerminal.
type terminal interface {
	ReadPassword(prompt string) ([]byte, error)
}

type ttyTerminal struct {
	fd  int
	out io.Writer
}

func (t ttyTerminal) ReadPassword(prompt string) ([]byte, error) {
	fmt.Fprint(t.out, prompt)
	b, err := term.ReadPassword(t.fd)
	fmt.Fprintln(t.out)
	return b, err
}

// openTerminal returns the terminal to prompt on, or false when stdin is
// not one (a service, a pipe): then only --passphrase-file and
// NATTER_PASSPHRASE can give the passphrase.
var openTerminal = func(stderr io.Writer) (terminal, bool) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, false
	}
	return ttyTerminal{fd: fd, out: stderr}, true
}

// kdfParams are the argon2id parameters new key files get (tests make
// them cheap).
var kdfParams = identity.DefaultKDFParams()

// unlockKey loads the identity of dir: with the passphrase from file or
// NATTER_PASSPHRASE if given (one try), else at the terminal (maxTries).
func unlockKey(dir, file string, stderr io.Writer) (crypto.PrivKey, []byte, error) {
	enc, err := identity.Encrypted(dir)
	if err != nil {
		return nil, nil, keyErr(dir, err)
	}
	if !enc {
		sk, err := identity.Load(dir, nil)
		return sk, nil, keyErr(dir, err)
	}
	var sk crypto.PrivKey
	pass, err := withPassphrase("the identity in "+dir, file, stderr, func(p []byte) error {
		var err error
		sk, err = identity.Load(dir, p)
		return keyErr(dir, err)
	})
	return sk, pass, err
}

// withPassphrase calls open with the passphrase from file or
// NATTER_PASSPHRASE if given (one try), else with what the user types at
// the terminal, up to maxTries times while open says
// identity.ErrWrongPassphrase. what names the thing being unlocked. It
// returns the passphrase that worked.
func withPassphrase(what, file string, stderr io.Writer, open func([]byte) error) ([]byte, error) {
	pass, err := readPassphrase(file)
	if err != nil {
		return nil, err
	}
	if pass != nil {
		err := open(pass)
		if errors.Is(err, identity.ErrWrongPassphrase) {
			src := "NATTER_PASSPHRASE"
			if file != "" {
				src = file
			}
			return nil, fmt.Errorf("wrong passphrase (from %s) for %s", src, what)
		}
		return pass, err
	}
	tty, ok := openTerminal(stderr)
	if !ok {
		return nil, fmt.Errorf("%s is encrypted: give its passphrase with --passphrase-file FILE or NATTER_PASSPHRASE (or run in a terminal to be asked)", what)
	}
	for try := 1; ; try++ {
		pass, err := tty.ReadPassword("passphrase for " + what + ": ")
		if err != nil {
			return nil, fmt.Errorf("read passphrase: %w", err)
		}
		err = open(pass)
		if !errors.Is(err, identity.ErrWrongPassphrase) {
			return pass, err
		}
		if try == maxTries {
			return nil, fmt.Errorf("wrong passphrase (%d tries)", maxTries)
		}
		fmt.Fprintln(stderr, "wrong passphrase, try again")
	}
}

func keyErr(dir string, err error) error {
	if errors.Is(err, identity.ErrNotFound) {
		return fmt.Errorf("no identity in %s; create one with: natter init --data-dir %s --name NAME", dir, dir)
	}
	if err != nil {
		return fmt.Errorf("load identity: %w", err)
	}
	return nil
}

// choosePassphrase asks for a new passphrase twice at the terminal; nil
// means there is no terminal.
func choosePassphrase(what string, stderr io.Writer) ([]byte, error) {
	tty, ok := openTerminal(stderr)
	if !ok {
		return nil, nil
	}
	p1, err := tty.ReadPassword(what + ": ")
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(p1) == 0 {
		return nil, errors.New("empty passphrase (use --no-passphrase to store the key unencrypted)")
	}
	p2, err := tty.ReadPassword("again: ")
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if !bytes.Equal(p1, p2) {
		return nil, errors.New("the two passphrases differ; nothing changed")
	}
	return p1, nil
}

// warnUnencrypted is printed whenever a key is stored without a passphrase.
func warnUnencrypted(w io.Writer, dir string) {
	fmt.Fprintf(w, "WARNING: the identity key in %s is stored UNENCRYPTED. Anyone who can read that file can be you.\n"+
		"         Only do this for unattended nodes; encrypt it later with: natter passwd --data-dir %s\n", dir, dir)
}

func newPasswdCmd(g *globals) *cobra.Command {
	var (
		oldFile, newFile string
		noPass           bool
	)
	cmd := &cobra.Command{
		Use:   "passwd [--passphrase-file OLD] [--new-passphrase-file NEW | --no-passphrase]",
		Short: "Change the passphrase of the identity key (the identity stays the same)",
		Long: `passwd re-encrypts the identity key under a new passphrase; the peer ID,
contacts and history do not change, and a running daemon is not affected.
The current passphrase comes from --passphrase-file, NATTER_PASSPHRASE or the
terminal; the new one from --new-passphrase-file, NATTER_NEW_PASSPHRASE or
the terminal (asked twice). --no-passphrase stores the key unencrypted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := g.dataDir
			_, oldPass, err := unlockKey(dir, oldFile, g.stderr)
			if err != nil {
				return err
			}
			var newPass []byte
			switch {
			case noPass:
			case newFile != "":
				if newPass, err = readPassphrase(newFile); err != nil {
					return err
				}
			case os.Getenv("NATTER_NEW_PASSPHRASE") != "":
				newPass = []byte(os.Getenv("NATTER_NEW_PASSPHRASE"))
			default:
				if newPass, err = choosePassphrase("new passphrase", g.stderr); err != nil {
					return err
				}
				if newPass == nil {
					return usageError{errors.New("passwd: give the new passphrase with --new-passphrase-file or NATTER_NEW_PASSPHRASE, or run in a terminal")}
				}
			}
			if err := identity.ChangePassphrase(dir, oldPass, newPass, identity.Options{KDF: kdfParams}); err != nil {
				return fmt.Errorf("change passphrase: %w", err)
			}
			id, err := identity.PeerID(dir)
			if err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, id)
			if newPass == nil {
				warnUnencrypted(g.stderr, dir)
			} else {
				fmt.Fprintln(g.stderr, "passphrase changed; the identity is the same")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&oldFile, "passphrase-file", "", "read the current passphrase from this file")
	cmd.Flags().StringVar(&newFile, "new-passphrase-file", "", "read the new passphrase from this file")
	cmd.Flags().BoolVar(&noPass, "no-passphrase", false, "store the key unencrypted")
	return cmd
}
