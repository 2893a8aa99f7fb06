package node

import "github.com/natterim/natter/internal/dirlock"

// lockName is the lock file that keeps two daemons off one data dir.
const lockName = "daemon.lock"

func lockDataDir(dir string) (*dirlock.Lock, error) {
	return dirlock.Acquire(dir, lockName, ErrAlreadyRunning)
}
