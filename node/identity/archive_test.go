package identity_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/identity"
	"github.com/natterim/natter/node/store"
)

// newDataDir makes a data dir with an encrypted identity and a database
// holding a setting (and, with big, enough data to span several chunks).
func newDataDir(t *testing.T, big bool) (string, string) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "src")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	sk, err := identity.Generate()
	require.NoError(t, err)
	require.NoError(t, identity.Create(dir, sk, []byte("key pass"), fast))
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, st.SetSetting(ctx, store.SettingName, "alice"))
	if big {
		b := make([]byte, 100<<10)
		_, _ = rand.Read(b)
		require.NoError(t, st.SetSetting(ctx, "blob", string(b)))
	}
	return dir, filepath.Join(dir, store.FileName)
}

func export(t *testing.T, dir string, pass string) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, identity.Export(context.Background(), dir, &buf, []byte(pass), identity.FastKDFParams()))
	return buf.Bytes()
}

func TestDBFileName(t *testing.T) {
	require.Equal(t, store.FileName, identity.DBFileName)
}

func TestArchiveRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, _ := newDataDir(t, true)
	want, err := identity.PeerID(src)
	require.NoError(t, err)
	arch := export(t, src, "export pass")
	require.Greater(t, len(arch), 2*64<<10, "spans several chunks")
	srcEntries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range srcEntries {
		require.False(t, strings.HasPrefix(e.Name(), ".export"), "snapshot left behind: %s", e.Name())
	}

	dst := filepath.Join(t.TempDir(), "dst")
	got, err := identity.Import(bytes.NewReader(arch), dst, []byte("export pass"))
	require.NoError(t, err)
	require.Equal(t, want, got)

	fi, err := os.Stat(dst)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	for _, n := range []string{identity.FileName, store.FileName} {
		fi, err := os.Stat(filepath.Join(dst, n))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), n)
	}
	entries, err := os.ReadDir(dst)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temp files left")

	// The key keeps its own passphrase; the history came along.
	sk, err := identity.Load(dst, []byte("key pass"))
	require.NoError(t, err)
	orig, err := identity.Load(src, []byte("key pass"))
	require.NoError(t, err)
	require.True(t, sk.Equals(orig))
	st, err := store.Open(ctx, filepath.Join(dst, store.FileName))
	require.NoError(t, err)
	defer st.Close()
	name, err := st.Setting(ctx, store.SettingName)
	require.NoError(t, err)
	require.Equal(t, "alice", name)
	blob, err := st.Setting(ctx, "blob")
	require.NoError(t, err)
	require.Len(t, blob, 100<<10)
}

// The snapshot is consistent while the database is open and written to.
func TestExportWhileOpen(t *testing.T) {
	ctx := context.Background()
	src, dbPath := newDataDir(t, false)
	st, err := store.Open(ctx, dbPath)
	require.NoError(t, err)
	defer st.Close()
	require.NoError(t, st.SetSetting(ctx, "late", "in the wal"))
	arch := export(t, src, "p")
	dst := filepath.Join(t.TempDir(), "dst")
	_, err = identity.Import(bytes.NewReader(arch), dst, []byte("p"))
	require.NoError(t, err)
	st2, err := store.Open(ctx, filepath.Join(dst, store.FileName))
	require.NoError(t, err)
	defer st2.Close()
	v, err := st2.Setting(ctx, "late")
	require.NoError(t, err)
	require.Equal(t, "in the wal", v)
}

func requireNothingWritten(t *testing.T, dst string) {
	t.Helper()
	_, err := os.Stat(dst)
	require.ErrorIs(t, err, os.ErrNotExist, "import left %s behind", dst)
}

func TestArchiveRejects(t *testing.T) {
	src, _ := newDataDir(t, true)
	arch := export(t, src, "export pass")
	const chunk = 64<<10 + 16
	hdr := len("NATTEREXP1") + 4 + 4 + 1 + 16 + 16 + 16

	for _, tc := range []struct {
		name string
		data func() []byte
		pass string
		want error
	}{
		{"wrong passphrase", func() []byte { return arch }, "nope", identity.ErrWrongPassphrase},
		{"not an archive", func() []byte { return []byte("hello") }, "export pass", identity.ErrBadArchive},
		{"bad magic", func() []byte { b := bytes.Clone(arch); b[0] ^= 1; return b }, "export pass", identity.ErrBadArchive},
		{"tampered byte", func() []byte { b := bytes.Clone(arch); b[hdr+chunk+100] ^= 1; return b }, "export pass", identity.ErrBadArchive},
		{"tampered last byte", func() []byte { b := bytes.Clone(arch); b[len(b)-1] ^= 1; return b }, "export pass", identity.ErrBadArchive},
		{"tampered params", func() []byte { b := bytes.Clone(arch); b[13] ^= 2; return b }, "export pass", identity.ErrWrongPassphrase},
		{"truncated mid chunk", func() []byte { return arch[:len(arch)-10] }, "export pass", identity.ErrBadArchive},
		{"truncated at chunk boundary", func() []byte { return arch[:hdr+2*chunk] }, "export pass", identity.ErrBadArchive},
		{"header only", func() []byte { return arch[:hdr] }, "export pass", identity.ErrBadArchive},
		{"trailing garbage", func() []byte { return append(bytes.Clone(arch), 0) }, "export pass", identity.ErrBadArchive},
		{"reordered chunks", func() []byte {
			b := bytes.Clone(arch)
			c0 := bytes.Clone(b[hdr : hdr+chunk])
			copy(b[hdr:hdr+chunk], b[hdr+chunk:hdr+2*chunk])
			copy(b[hdr+chunk:hdr+2*chunk], c0)
			return b
		}, "export pass", identity.ErrBadArchive},
		{"dropped chunk", func() []byte {
			return append(bytes.Clone(arch[:hdr+chunk]), arch[hdr+2*chunk:]...)
		}, "export pass", identity.ErrBadArchive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst")
			_, err := identity.Import(bytes.NewReader(tc.data()), dst, []byte(tc.pass))
			require.ErrorIs(t, err, tc.want)
			requireNothingWritten(t, dst)
		})
	}
}

func TestImportRefusesExisting(t *testing.T) {
	src, _ := newDataDir(t, false)
	arch := export(t, src, "p")
	_, err := identity.Import(bytes.NewReader(arch), src, []byte("p"))
	require.ErrorIs(t, err, identity.ErrExists)

	// A data dir with only a database is refused too (its history would
	// be overwritten), and left as it was.
	dst := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dst, store.FileName), []byte("x"), 0o600))
	_, err = identity.Import(bytes.NewReader(arch), dst, []byte("p"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "already has a database")
	b, err := os.ReadFile(filepath.Join(dst, store.FileName))
	require.NoError(t, err)
	require.Equal(t, "x", string(b))
	_, err = os.Stat(identity.Path(dst))
	require.ErrorIs(t, err, os.ErrNotExist)

	// An existing empty dir is fine and keeps its other files.
	dst2 := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dst2, "notes"), []byte("mine"), 0o600))
	_, err = identity.Import(bytes.NewReader(arch), dst2, []byte("p"))
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dst2, "notes"))
	require.NoError(t, err)
}

// An unencrypted identity still gets an encrypted archive.
func TestExportNeedsPassphrase(t *testing.T) {
	dir := t.TempDir()
	sk, err := identity.Generate()
	require.NoError(t, err)
	require.NoError(t, identity.Create(dir, sk, nil, fast))
	var buf bytes.Buffer
	err = identity.Export(context.Background(), dir, &buf, nil, identity.FastKDFParams())
	require.Error(t, err)
	require.NoError(t, identity.Export(context.Background(), dir, &buf, []byte("p"), identity.FastKDFParams()))
	require.False(t, bytes.Contains(buf.Bytes(), []byte(`"kdf"`)), "the key file must not be visible")
	dst := filepath.Join(t.TempDir(), "dst")
	id, err := identity.Import(&buf, dst, []byte("p"))
	require.NoError(t, err)
	want, _ := identity.PeerID(dir)
	require.Equal(t, want, id)
	_, err = os.Stat(filepath.Join(dst, store.FileName))
	require.ErrorIs(t, err, os.ErrNotExist, "no database to export, none imported")
	require.True(t, strings.HasPrefix(string(export(t, dir, "q")), "NATTEREXP1"))
}
