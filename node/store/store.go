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
	"net/url"
	"sync"
	"syscall"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// FileName is the database file's name inside a data dir.
const FileName = "natter.db"

// SettingName is the settings key of the node's own display name.
const SettingName = "name"

var (
	// ErrNotFound is returned when a looked-up row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when an insert would duplicate a unique row.
	ErrExists = errors.New("already exists")
	// ErrDiskFull is returned when the disk (or its quota) is full; the
	// transaction was rolled back and nothing was changed.
	ErrDiskFull = errors.New("disk full")
	// ErrTooNew is returned for a database written by a newer natter.
	ErrTooNew = errors.New("database schema is newer than this natter")
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
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, classify(err))
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
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
	return runTx(fn, func() (*sql.Tx, error) { return s.lazy.BeginTx(ctx, nil) })
}

// DB exposes the handle for packages that own their own tables (each
// through a migration registered here).
func (s *Store) DB() *sql.DB { return s.db }

// Tx runs fn in one write transaction, committing if fn returns nil.
func (s *Store) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return runTx(fn, func() (*sql.Tx, error) { return s.db.BeginTx(ctx, nil) })
}

func runTx(fn func(*sql.Tx) error, begin func() (*sql.Tx, error)) error {
	tx, err := begin()
	if err != nil {
		return fmt.Errorf("begin: %w", classify(err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return classify(err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	return nil
}

// classify maps SQLite errors onto the package's sentinels.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return fmt.Errorf("%w: %v", ErrDiskFull, err)
		}
		return err
	}
	switch se.Code() & 0xff { // primary result code
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("%w: %v", ErrDiskFull, err)
	case sqlite3.SQLITE_IOERR:
		// Extended I/O errors on write/fsync are what a full disk looks
		// like when SQLite does not see ENOSPC itself.
		if c := se.Code(); c == sqlite3.SQLITE_IOERR_WRITE || c == sqlite3.SQLITE_IOERR_FSYNC || c == sqlite3.SQLITE_IOERR_SHMSIZE {
			return fmt.Errorf("%w: %v", ErrDiskFull, err)
		}
	case sqlite3.SQLITE_CONSTRAINT:
		if se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return fmt.Errorf("%w: %v", ErrExists, err)
		}
	}
	return err
}
