package rendezvous

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/natterim/natter/internal/dirlock"
)

// Files in the data dir.
const (
	// KeyFile holds the server's Ed25519 key, unencrypted (the server must
	// start unattended), as a libp2p-marshalled protobuf, mode 0600.
	KeyFile = "identity.key"
	// LockFile is held (flock) by the running server.
	LockFile = "server.lock"
	// AdminSocket is the admin API's unix socket, mode 0600.
	AdminSocket = "admin.sock"
)

// ErrAlreadyRunning means another server holds the data dir.
var ErrAlreadyRunning = errors.New("another natter-rendezvous is already running on this data dir")

// EnsureDataDir creates dir (0700) if it does not exist.
func EnsureDataDir(dir string) error {
	if dir == "" {
		return errors.New("data dir: must be set")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	return nil
}

// LoadOrCreateKey returns the key in dir/identity.key, creating a new
// Ed25519 key there first if the file does not exist. The key is stored
// unencrypted: a public server has to start without a person typing a
// passphrase; the file's mode (0600) and the data dir's (0700) protect it.
func LoadOrCreateKey(dir string) (crypto.PrivKey, error) {
	p := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(p)
	if err == nil {
		sk, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s is damaged: %w", p, err)
		}
		return sk, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read key: %w", err)
	}
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	if err := writeNew(p, raw); err != nil {
		if errors.Is(err, os.ErrExist) {
			// Created concurrently by another process: use that one.
			return LoadOrCreateKey(dir)
		}
		return nil, err
	}
	return sk, nil
}

// writeNew writes b to p through a temporary file, fsync and a hard link,
// so that p appears complete or not at all and is never overwritten.
func writeNew(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".identity-*")
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := os.Link(tmp.Name(), p); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// lockDataDir takes the lock on dir/server.lock (see internal/dirlock).
func lockDataDir(dir string) (*dirlock.Lock, error) {
	return dirlock.Acquire(dir, LockFile, ErrAlreadyRunning)
}
