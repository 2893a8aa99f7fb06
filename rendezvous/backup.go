package rendezvous

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/natterim/natter/rendezvous/store"
)

// A backup is a tar archive of what a restore needs:
//
//	identity.key    the server's key (its peer ID: every node's config
//	                and invite names it), unencrypted, as in the data dir
//	rendezvous.db   a consistent snapshot of the server's database (names,
//	                mailboxes), made with SQLite's VACUUM INTO
//
// The registry of who is online is soft state: nodes register again after
// a restore, as after any restart. Keep backups as private as the data dir:
// the key is in clear.

// maxBackupMember bounds what Restore unpacks from one archive member.
const maxBackupMember = 64 << 30

// prepareBackup snapshots the running server's database (see
// serveBackup, the admin API's GET /v1/backup, and AdminClient.Backup).
func (s *Server) prepareBackup(ctx context.Context) ([]string, func(), error) {
	return prepareBackup(s.cfg.DataDir, func(dst string) error { return s.db.Snapshot(ctx, dst) })
}

// BackupOffline writes a backup of the data dir of a server that is not
// running, holding the data dir's lock meanwhile (ErrAlreadyRunning if a
// server holds it: ask that one, through its admin socket).
func BackupOffline(ctx context.Context, dataDir string, w io.Writer) error {
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	files, cleanup, err := prepareBackup(dataDir, func(dst string) error {
		err := store.SnapshotDir(ctx, dataDir, dst)
		if errors.Is(err, store.ErrNotFound) {
			return nil // a server that never ran: the key alone
		}
		return err
	})
	if err != nil {
		return err
	}
	defer cleanup()
	return writeBackup(w, files)
}

// prepareBackup snapshots the database into a temporary file in the data
// dir and returns the files to archive (key, then database if any).
func prepareBackup(dataDir string, snapshot func(dst string) error) ([]string, func(), error) {
	key := filepath.Join(dataDir, KeyFile)
	if _, err := os.Stat(key); err != nil {
		return nil, nil, fmt.Errorf("backup: %w", err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dataDir, ".backup-"+hex.EncodeToString(rnd[:])+".db")
	cleanup := func() { _ = os.Remove(tmp) }
	if err := snapshot(tmp); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("backup: %w", err)
	}
	files := []string{key}
	if _, err := os.Stat(tmp); err == nil {
		files = append(files, tmp)
	}
	return files, cleanup, nil
}

// writeBackup archives files: the first as identity.key, the second (if
// any) as rendezvous.db.
func writeBackup(w io.Writer, files []string) error {
	names := []string{KeyFile, store.FileName}
	tw := tar.NewWriter(w)
	for i, p := range files {
		if err := addFile(tw, p, names[i]); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func addFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Mode: 0o600, Size: st.Size(), ModTime: time.Now().UTC(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if n, err := io.Copy(tw, f); err != nil || n != st.Size() {
		return fmt.Errorf("archive %s: %d of %d bytes: %w", name, n, st.Size(), errOr(err, io.ErrUnexpectedEOF))
	}
	return nil
}

func errOr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// ErrBackupInvalid is wrapped by Restore's errors about the archive itself.
var ErrBackupInvalid = errors.New("not a natter-rendezvous backup")

// Restore sets up dataDir from a backup read from r. It holds the data
// dir's lock throughout (ErrAlreadyRunning if a server runs on it) and
// refuses a data dir that has a key or a database unless force is set; it
// checks the key, writes each file next to its place and renames it in
// only once the whole archive has been read, removing a stale SQLite WAL so
// that it cannot be replayed onto the restored database. It returns the
// restored server's key.
func Restore(dataDir string, r io.Reader, force bool) (crypto.PrivKey, error) {
	if err := EnsureDataDir(dataDir); err != nil {
		return nil, err
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	db := filepath.Join(dataDir, store.FileName)
	if !force {
		for _, p := range []string{filepath.Join(dataDir, KeyFile), db} {
			if _, err := os.Stat(p); err == nil {
				return nil, fmt.Errorf("%s already exists; pass --force to replace it", p)
			}
		}
	}
	tr := tar.NewReader(r)
	staged := map[string]string{} // final name -> temporary file
	defer func() {
		for _, tmp := range staged {
			_ = os.Remove(tmp)
		}
	}()
	var key crypto.PrivKey
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBackupInvalid, err)
		}
		if hdr.Typeflag != tar.TypeReg || (hdr.Name != KeyFile && hdr.Name != store.FileName) {
			return nil, fmt.Errorf("%w: unexpected member %q", ErrBackupInvalid, hdr.Name)
		}
		if _, dup := staged[hdr.Name]; dup {
			return nil, fmt.Errorf("%w: %s twice", ErrBackupInvalid, hdr.Name)
		}
		if hdr.Size < 0 || hdr.Size > maxBackupMember {
			return nil, fmt.Errorf("%w: %s of %d bytes", ErrBackupInvalid, hdr.Name, hdr.Size)
		}
		tmp, err := stage(dataDir, io.LimitReader(tr, hdr.Size), hdr.Size)
		if err != nil {
			return nil, fmt.Errorf("restore %s: %w", hdr.Name, err)
		}
		staged[hdr.Name] = tmp
		if hdr.Name == KeyFile {
			b, err := os.ReadFile(tmp)
			if err != nil {
				return nil, err
			}
			if key, err = crypto.UnmarshalPrivateKey(b); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrBackupInvalid, KeyFile, err)
			}
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: no %s in it", ErrBackupInvalid, KeyFile)
	}
	// The old database's WAL and shared memory belong to the old file.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(db + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("restore: remove stale %s: %w", db+suffix, err)
		}
	}
	if _, ok := staged[store.FileName]; !ok {
		if err := os.Remove(db); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("restore: remove old database: %w", err)
		}
	}
	for name, tmp := range staged {
		if err := os.Rename(tmp, filepath.Join(dataDir, name)); err != nil {
			return nil, fmt.Errorf("restore %s: %w", name, err)
		}
		delete(staged, name)
	}
	if d, err := os.Open(dataDir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return key, nil
}

// stage copies size bytes from r into a new 0600 file in dir, synced.
func stage(dir string, r io.Reader, size int64) (string, error) {
	f, err := os.CreateTemp(dir, ".restore-*")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return "", err
	}
	if n, err := io.Copy(f, r); err != nil || n != size {
		return "", fmt.Errorf("%w: truncated (%d of %d bytes): %v", ErrBackupInvalid, n, size, err)
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	ok = true
	return f.Name(), nil
}
