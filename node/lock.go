package node

import (
	"path/filepath"

	"github.com/natterim/natter/internal/dirlock"
)

// lockName is the lock file that keeps two daemons off one data dir.
const lockName = "daemon.lock"

// LockPath is the daemon's lock file in dir.
func LockPath(dir string) string { return filepath.Join(dir, lockName) }

// LockDataDir takes the lock a daemon holds on dir while it runs (so that
// tools such as natter import keep off a live data dir); ErrAlreadyRunning
// if a daemon holds it.
func LockDataDir(dir string) (*dirlock.Lock, error) {
	return dirlock.Acquire(dir, lockName, ErrAlreadyRunning)
}
