package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/cmd/natter/cli"
	"github.com/natterim/natter/internal/dirlock"
	"github.com/natterim/natter/node"
	"github.com/natterim/natter/node/identity"
	"github.com/natterim/natter/node/store"
)

// fastKDF makes new key files and archives cheap for the whole test;
// there is no terminal unless a test installs a fake one with answers.
func fastKDF(t *testing.T) {
	t.Helper()
	t.Setenv("NATTER_PASSPHRASE", "")
	t.Setenv("NATTER_NEW_PASSPHRASE", "")
	t.Setenv("NATTER_EXPORT_PASSPHRASE", "")
	_, restore := cli.FakeTerminal()
	t.Cleanup(restore)
}

func passFile(t *testing.T, pass string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(p, []byte(pass+"\n"), 0o600))
	return p
}

func TestInitPasswdLoad(t *testing.T) {
	fastKDF(t)
	dir := filepath.Join(t.TempDir(), "d")
	oldPF, newPF := passFile(t, "old secret"), passFile(t, "new secret")
	code, out, errOut := run(t, "init", "--data-dir", dir, "--name", "alice", "--passphrase-file", oldPF)
	require.Equal(t, 0, code, errOut)
	require.NotContains(t, errOut, "UNENCRYPTED")
	id, err := identity.PeerID(dir)
	require.NoError(t, err)
	require.Equal(t, id.String()+"\n", out)

	code, out, errOut = run(t, "passwd", "--data-dir", dir, "--passphrase-file", oldPF, "--new-passphrase-file", newPF)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, id.String()+"\n", out)
	require.Contains(t, errOut, "passphrase changed")

	sk, err := identity.Load(dir, []byte("new secret"))
	require.NoError(t, err)
	_, err = identity.Load(dir, []byte("old secret"))
	require.ErrorIs(t, err, identity.ErrWrongPassphrase)
	got, err := identity.PeerID(dir)
	require.NoError(t, err)
	require.Equal(t, id, got)
	fromKey, err := peer.IDFromPrivateKey(sk)
	require.NoError(t, err)
	require.Equal(t, id, fromKey, "the unlocked key is the same identity")

	// The old passphrase is now a clear one-line error.
	code, _, errOut = run(t, "passwd", "--data-dir", dir, "--passphrase-file", oldPF, "--new-passphrase-file", newPF)
	oneLineErr(t, code, errOut, 1, "wrong passphrase (from "+oldPF+")")

	// --no-passphrase says so loudly.
	dir2 := filepath.Join(t.TempDir(), "e")
	code, _, errOut = run(t, "init", "--data-dir", dir2, "--name", "bob", "--no-passphrase")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "WARNING: the identity key")
	require.Contains(t, errOut, "UNENCRYPTED")
}

func settingName(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	require.NoError(t, err)
	defer st.Close()
	name, err := st.Setting(ctx, store.SettingName)
	require.NoError(t, err)
	return name
}

func TestExportImport(t *testing.T) {
	fastKDF(t)
	src := filepath.Join(t.TempDir(), "src")
	pf := passFile(t, "key secret")
	code, _, errOut := run(t, "init", "--data-dir", src, "--name", "alice", "--passphrase-file", pf)
	require.Equal(t, 0, code, errOut)
	id, err := identity.PeerID(src)
	require.NoError(t, err)

	// Export with the identity's passphrase.
	arch := filepath.Join(t.TempDir(), "alice.natter")
	code, out, errOut := run(t, "export", "--data-dir", src, "--passphrase-file", pf, arch)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, id.String()+"\n", out)
	fi, err := os.Stat(arch)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// Never overwrite without --force.
	code, _, errOut = run(t, "export", "--data-dir", src, "--passphrase-file", pf, arch)
	oneLineErr(t, code, errOut, 1, "already exists")
	code, _, errOut = run(t, "export", "--data-dir", src, "--passphrase-file", pf, "--force", arch)
	require.Equal(t, 0, code, errOut)

	// A wrong identity passphrase: one line, nothing written.
	arch2 := filepath.Join(t.TempDir(), "x.natter")
	bad := passFile(t, "nope")
	code, _, errOut = run(t, "export", "--data-dir", src, "--passphrase-file", bad, arch2)
	oneLineErr(t, code, errOut, 1, "wrong passphrase")
	require.NoFileExists(t, arch2)

	// Import into a new data dir: same peer ID, same history.
	dst := filepath.Join(t.TempDir(), "dst")
	code, _, errOut = run(t, "import", "--data-dir", dst, "--passphrase-file", bad, arch)
	oneLineErr(t, code, errOut, 1, "wrong passphrase (from "+bad+") for the archive")
	require.NoDirExists(t, dst)

	code, out, errOut = run(t, "import", "--data-dir", dst, "--passphrase-file", pf, arch)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, id.String()+"\n", out)
	require.Contains(t, errOut, "next: natter daemon --data-dir "+dst)
	got, err := identity.PeerID(dst)
	require.NoError(t, err)
	require.Equal(t, id, got)
	_, err = identity.Load(dst, []byte("key secret"))
	require.NoError(t, err)
	require.Equal(t, "alice", settingName(t, dst))

	// Never over an existing identity.
	code, _, errOut = run(t, "import", "--data-dir", dst, "--passphrase-file", pf, arch)
	oneLineErr(t, code, errOut, 1, "already holds an identity")
	code, _, errOut = run(t, "import", "--data-dir", src, "--passphrase-file", pf, arch)
	oneLineErr(t, code, errOut, 1, "already holds an identity")

	// A damaged archive: one line, nothing left behind.
	b, err := os.ReadFile(arch)
	require.NoError(t, err)
	b[len(b)-5] ^= 1
	damaged := filepath.Join(t.TempDir(), "damaged")
	require.NoError(t, os.WriteFile(damaged, b, 0o600))
	dst3 := filepath.Join(t.TempDir(), "dst3")
	code, _, errOut = run(t, "import", "--data-dir", dst3, "--passphrase-file", pf, damaged)
	oneLineErr(t, code, errOut, 1, "damaged")
	require.NoDirExists(t, dst3)
}

// An unencrypted identity still gets an encrypted archive; stdout and
// stdin work; the import prompt gives three tries.
func TestExportImportUnencrypted(t *testing.T) {
	fastKDF(t)
	src := filepath.Join(t.TempDir(), "src")
	code, _, errOut := run(t, "init", "--data-dir", src, "--name", "carol", "--no-passphrase")
	require.Equal(t, 0, code, errOut)
	id, err := identity.PeerID(src)
	require.NoError(t, err)

	// No export passphrase and nobody typing one: refused.
	_, restore := cli.FakeTerminal()
	code, _, errOut = run(t, "export", "--data-dir", src, filepath.Join(t.TempDir(), "a"))
	restore()
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "read passphrase")

	// Chosen at the terminal (twice), to stdout.
	_, restore = cli.FakeTerminal("archive pass", "archive pass")
	code, archive, errOut := run(t, "export", "--data-dir", src, "-")
	restore()
	require.Equal(t, 0, code, errOut)
	require.True(t, strings.HasPrefix(archive, "NATTEREXP1"))

	// From stdin, with two wrong tries at the prompt.
	dst := filepath.Join(t.TempDir(), "dst")
	prompts, restore := cli.FakeTerminal("bad", "worse", "archive pass")
	code, out, errOut := runIn(t, archive, "import", "--data-dir", dst, "-")
	restore()
	require.Equal(t, 0, code, errOut)
	require.Len(t, *prompts, 3)
	require.Equal(t, 2, strings.Count(errOut, "wrong passphrase"))
	require.Equal(t, id.String()+"\n", out)
	require.Equal(t, "carol", settingName(t, dst))
	enc, err := identity.Encrypted(dst)
	require.NoError(t, err)
	require.False(t, enc)

	// Three wrong tries: a clear error, nothing imported.
	dst2 := filepath.Join(t.TempDir(), "dst2")
	prompts, restore = cli.FakeTerminal("a", "b", "c", "archive pass")
	code, _, errOut = runIn(t, archive, "import", "--data-dir", dst2, "-")
	restore()
	require.Len(t, *prompts, 3)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "wrong passphrase (3 tries)")
	require.NoDirExists(t, dst2)

	// NATTER_EXPORT_PASSPHRASE and NATTER_PASSPHRASE work without a
	// terminal.
	t.Setenv("NATTER_EXPORT_PASSPHRASE", "env pass")
	arch := filepath.Join(t.TempDir(), "env.natter")
	code, _, errOut = run(t, "export", "--data-dir", src, arch)
	require.Equal(t, 0, code, errOut)
	t.Setenv("NATTER_PASSPHRASE", "env pass")
	dst3 := filepath.Join(t.TempDir(), "dst3")
	code, out, errOut = run(t, "import", "--data-dir", dst3, arch)
	require.Equal(t, 0, code, errOut)
	require.Equal(t, id.String()+"\n", out)
}

// import refuses a data dir a running daemon holds, and leaves it as it
// was.
func TestImportRefusesLockedDir(t *testing.T) {
	fastKDF(t)
	src := filepath.Join(t.TempDir(), "src")
	code, _, errOut := run(t, "init", "--data-dir", src, "--name", "dave", "--no-passphrase")
	require.Equal(t, 0, code, errOut)
	arch := filepath.Join(t.TempDir(), "a.natter")
	pf := passFile(t, "p")
	code, _, errOut = run(t, "export", "--data-dir", src, "--export-passphrase-file", pf, arch)
	require.Equal(t, 0, code, errOut)

	dst := t.TempDir()
	l, err := dirlock.Acquire(dst, "daemon.lock", node.ErrAlreadyRunning)
	require.NoError(t, err)
	code, _, errOut = run(t, "import", "--data-dir", dst, "--passphrase-file", pf, arch)
	oneLineErr(t, code, errOut, 1, "already running")
	require.NoFileExists(t, identity.Path(dst))
	require.NoError(t, l.Release())

	code, _, errOut = run(t, "import", "--data-dir", dst, "--passphrase-file", pf, arch)
	require.Equal(t, 0, code, errOut)
	entries, err := os.ReadDir(dst)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"daemon.lock", identity.FileName, store.FileName}, names)
}
