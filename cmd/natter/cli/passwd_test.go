package cli_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/cmd/natter/cli"
	"github.com/natterim/natter/node/identity"
)

// TestPassphraseLifecycle: init asks for a passphrase twice at the
// terminal; passwd changes it without changing the identity (the old one
// stops working); the unlock prompt gives three tries; a wrong passphrase
// from a file fails at once with one line.
func TestPassphraseLifecycle(t *testing.T) {
	t.Setenv("NATTER_PASSPHRASE", "")
	t.Setenv("NATTER_NEW_PASSPHRASE", "")
	dir := filepath.Join(t.TempDir(), "d")

	prompts, restore := cli.FakeTerminal("first secret", "first secret")
	code, out, errOut := run(t, "init", "--data-dir", dir, "--name", "alice")
	restore()
	require.Equal(t, 0, code, errOut)
	require.Len(t, *prompts, 2)
	id, err := identity.PeerID(dir)
	require.NoError(t, err)
	require.Equal(t, id.String()+"\n", out)
	_, err = identity.Load(dir, []byte("first secret"))
	require.NoError(t, err)

	// Mismatched confirmation: nothing is created.
	dir2 := filepath.Join(t.TempDir(), "e")
	_, restore = cli.FakeTerminal("one", "two")
	code, _, errOut = run(t, "init", "--data-dir", dir2, "--name", "bob")
	restore()
	oneLineErr(t, code, errOut, 1, "differ")
	_, err = identity.PeerID(dir2)
	require.ErrorIs(t, err, identity.ErrNotFound)

	// passwd at the terminal: old, new, new again.
	_, restore = cli.FakeTerminal("first secret", "second secret", "second secret")
	code, out, errOut = run(t, "passwd", "--data-dir", dir)
	restore()
	require.Equal(t, 0, code, errOut)
	require.Equal(t, id.String()+"\n", out, "same identity")
	require.Contains(t, errOut, "passphrase changed")
	_, err = identity.Load(dir, []byte("first secret"))
	require.ErrorIs(t, err, identity.ErrWrongPassphrase)
	sk, err := identity.Load(dir, []byte("second secret"))
	require.NoError(t, err)
	got, err := identity.PeerID(dir)
	require.NoError(t, err)
	require.Equal(t, id, got)
	_ = sk

	// Three wrong tries at the prompt, then a clear error.
	prompts, restore = cli.FakeTerminal("nope", "still no", "no again", "second secret")
	code, _, errOut = run(t, "passwd", "--data-dir", dir, "--no-passphrase")
	restore()
	require.Len(t, *prompts, 3)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "wrong passphrase (3 tries)")

	// A wrong passphrase from a file: one try, one line.
	pf := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(pf, []byte("not it\n"), 0o600))
	code, _, errOut = run(t, "passwd", "--data-dir", dir, "--passphrase-file", pf, "--no-passphrase")
	oneLineErr(t, code, errOut, 1, "wrong passphrase (from "+pf+")")

	// Files and environment work without a terminal; --no-passphrase
	// decrypts the key for good and says so loudly.
	require.NoError(t, os.WriteFile(pf, []byte("second secret\n"), 0o600))
	code, _, errOut = run(t, "passwd", "--data-dir", dir, "--passphrase-file", pf, "--no-passphrase")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "UNENCRYPTED")
	enc, err := identity.Encrypted(dir)
	require.NoError(t, err)
	require.False(t, enc)
	t.Setenv("NATTER_NEW_PASSPHRASE", "third secret")
	code, _, errOut = run(t, "passwd", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	_, err = identity.Load(dir, []byte("third secret"))
	require.NoError(t, err)
}
