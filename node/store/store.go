// Package store is a node's durable state: one SQLite database (pure Go,
// modernc.org/sqlite) in the data dir, in WAL mode with synchronous=FULL so
// that a transaction that returned is on disk, whatever happens to the
// process or the machine afterwards.
//
// The schema is versioned in code (migrations.go): Open applies, in one
// transaction each, every migration newer than the database. A database
// written by a newer natter is refused rather than guessed at.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/natterim/natter/internal/sqlitedb"
)

// FileName is the database file's name inside a data dir.
const FileName = "natter.db"

// SettingName is the settings key of the node's own display name.
const SettingName = "name"

var (
	// ErrNotFound is returned when a looked-up row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when an insert would duplicate a unique row.
	ErrExists = sqlitedb.ErrExists
	// ErrDiskFull is returned when the disk (or its quota) is full; the
	// transaction was rolled back and nothing was changed.
	ErrDiskFull = sqlitedb.ErrDiskFull
	// ErrTooNew is returned for a database written by a newer natter.
	ErrTooNew = sqlitedb.ErrTooNew
)

// Store is the node database. Its methods are safe for concurrent use.
type Store struct {
	db *sql.DB
	// lazy is one connection with synchronous=NORMAL, for writes whose
	// loss on a power cut is harmless (see Acked): they are atomic and
	// ordered like every other commit, but do not wait for the disk.
	lazyMu sync.Mutex
	lazy   *sql.Conn
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, path, migrations)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db}
	if s.lazy, err = db.Conn(ctx); err == nil {
		_, err = s.lazy.ExecContext(ctx, `PRAGMA synchronous = NORMAL`)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, classify(err))
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.lazyMu.Lock()
	defer s.lazyMu.Unlock()
	return errors.Join(s.lazy.Close(), s.db.Close())
}

// lazyTx is Tx on the lazy connection.
func (s *Store) lazyTx(ctx context.Context, fn func(*sql.Tx) error) error {
	s.lazyMu.Lock()
	defer s.lazyMu.Unlock()
	return sqlitedb.Tx(ctx, s.lazy, fn)
}

// DB exposes the handle for packages that own their own tables (each
// through a migration registered here).
func (s *Store) DB() *sql.DB { return s.db }

// Tx runs fn in one write transaction, committing if fn returns nil.
func (s *Store) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return sqlitedb.Tx(ctx, s.db, fn)
}

// classify maps SQLite errors onto the package's sentinels.
func classify(err error) error { return sqlitedb.Classify(err) }
