package rendezvous_test

import (
	"archive/tar"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/rendezvous"
	"github.com/natterim/natter/rendezvous/store"
)

// members reads a tar archive into name -> contents.
func members(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		require.Equal(t, int64(0o600), hdr.Mode)
		out[hdr.Name] = body
	}
}

// rows writes n rows into a table of the server's database, through a
// connection of its own (as a feature's migration and queries would).
func addRows(t *testing.T, dataDir string, n int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, store.FileName)+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(`CREATE TABLE IF NOT EXISTS t (v INTEGER)`)
	require.NoError(t, err)
	for i := range n {
		_, err = db.Exec(`INSERT INTO t VALUES (?)`, i)
		require.NoError(t, err)
	}
}

func countRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM t`).Scan(&n))
	return n
}

func TestBackupAndRestore(t *testing.T) {
	cfg := testConfig(t)
	s := startServer(t, cfg)
	addRows(t, cfg.DataDir, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A server that runs answers through its admin socket; the data dir
	// cannot be read behind its back.
	var buf bytes.Buffer
	require.ErrorIs(t, rendezvous.BackupOffline(ctx, cfg.DataDir, &buf), rendezvous.ErrAlreadyRunning)
	require.NoError(t, rendezvous.NewAdminClient(cfg.DataDir).Backup(ctx, &buf))
	m := members(t, buf.Bytes())
	key, err := os.ReadFile(filepath.Join(cfg.DataDir, rendezvous.KeyFile))
	require.NoError(t, err)
	require.Equal(t, key, m[rendezvous.KeyFile])
	require.Contains(t, m, store.FileName)
	snap := filepath.Join(t.TempDir(), "snap.db")
	require.NoError(t, os.WriteFile(snap, m[store.FileName], 0o600))
	require.Equal(t, 50, countRows(t, snap))
	leftovers, _ := filepath.Glob(filepath.Join(cfg.DataDir, ".backup-*"))
	require.Empty(t, leftovers, "the snapshot's temporary file is removed")

	// Restore into a fresh data dir: the same server comes back.
	dir := filepath.Join(t.TempDir(), "d")
	sk, err := rendezvous.Restore(dir, bytes.NewReader(buf.Bytes()), false)
	require.NoError(t, err)
	id, err := peer.IDFromPrivateKey(sk)
	require.NoError(t, err)
	require.Equal(t, s.ID(), id)
	require.Equal(t, 50, countRows(t, filepath.Join(dir, store.FileName)))
	// Not over an existing one without force.
	_, err = rendezvous.Restore(dir, bytes.NewReader(buf.Bytes()), false)
	require.ErrorContains(t, err, "already exists")

	// Offline, once the server is gone.
	require.NoError(t, s.Close())
	addRows(t, cfg.DataDir, 5)
	var off bytes.Buffer
	require.NoError(t, rendezvous.BackupOffline(ctx, cfg.DataDir, &off))
	m = members(t, off.Bytes())
	require.NoError(t, os.WriteFile(snap+"2", m[store.FileName], 0o600))
	require.Equal(t, 55, countRows(t, snap+"2"))

	// --force replaces the database, and the old WAL cannot come back.
	addRows(t, dir, 1000)
	_, err = rendezvous.Restore(dir, bytes.NewReader(off.Bytes()), true)
	require.NoError(t, err)
	require.Equal(t, 55, countRows(t, filepath.Join(dir, store.FileName)))
	cfg2 := testConfig(t)
	cfg2.DataDir = dir
	s2 := startServer(t, cfg2)
	require.Equal(t, id, s2.ID())
}

func TestRestoreRefusesBadArchives(t *testing.T) {
	cfg := testConfig(t)
	s := startServer(t, cfg)
	var good bytes.Buffer
	require.NoError(t, rendezvous.NewAdminClient(cfg.DataDir).Backup(context.Background(), &good))
	require.NoError(t, s.Close())

	tarOf := func(files map[string][]byte) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for name, body := range files {
			require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg}))
			_, err := tw.Write(body)
			require.NoError(t, err)
		}
		require.NoError(t, tw.Close())
		return b.Bytes()
	}
	for name, archive := range map[string][]byte{
		"garbage":   []byte("this is not a tar archive at all, not even close........"),
		"truncated": good.Bytes()[:len(good.Bytes())/2],
		"no key":    tarOf(map[string][]byte{store.FileName: []byte("x")}),
		"bad key":   tarOf(map[string][]byte{rendezvous.KeyFile: []byte("not a key")}),
		"foreign":   tarOf(map[string][]byte{"../../etc/passwd": []byte("x")}),
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			_, err := rendezvous.Restore(dir, bytes.NewReader(archive), false)
			require.Error(t, err)
			require.True(t, errors.Is(err, rendezvous.ErrBackupInvalid), err)
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				require.Equal(t, rendezvous.LockFile, e.Name(), "nothing is left behind")
			}
		})
	}
}
