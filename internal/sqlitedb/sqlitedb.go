// Package sqlitedb opens natter's embedded databases the one way they all
// need: SQLite (pure Go, modernc.org/sqlite) in WAL mode with
// synchronous=FULL, so that a transaction that returned is on disk whatever
// happens to the process or the machine afterwards; immediate write
// transactions; a schema versioned in code.
//
// The node (node/store: contacts, history, outbox, transfers) and the
// rendezvous server (rendezvous/store: names, mailboxes) each keep their
// own list of migrations; Open applies, in one transaction each, every
// migration newer than the database and refuses a database written by a
// newer version rather than guessing at it.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"syscall"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrExists is returned when an insert would duplicate a unique row.
	ErrExists = errors.New("already exists")
	// ErrDiskFull is returned when the disk (or its quota) is full; the
	// transaction was rolled back and nothing was changed.
	ErrDiskFull = errors.New("disk full")
	// ErrTooNew is returned for a database written by a newer natter.
	ErrTooNew = errors.New("database schema is newer than this natter")
)

// Open opens (creating if needed) the database at path and applies
// migrations: migrations[i] takes the schema from version i to i+1 (kept
// in PRAGMA user_version). Never edit a released migration; append one.
func Open(ctx context.Context, path string, migrations []string) (*sql.DB, error) {
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
		return nil, fmt.Errorf("open database %s: %w", path, Classify(err))
	}
	if err := migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func migrate(ctx context.Context, db *sql.DB, migrations []string) error {
	var v int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", Classify(err))
	}
	if v > len(migrations) {
		return fmt.Errorf("database at version %d, this natter knows %d: %w", v, len(migrations), ErrTooNew)
	}
	for i := v; i < len(migrations); i++ {
		err := Tx(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate database to version %d: %w", i+1, err)
		}
	}
	return nil
}

// Beginner is what starts a transaction: a *sql.DB or a *sql.Conn.
type Beginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// Tx runs fn in one write transaction on b, committing if fn returns nil
// and rolling back otherwise. Errors are classified (ErrDiskFull,
// ErrExists).
func Tx(ctx context.Context, b Beginner, fn func(*sql.Tx) error) error {
	tx, err := b.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", Classify(err))
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return Classify(err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", Classify(err))
	}
	return nil
}

// Classify maps SQLite errors onto the package's sentinels: a full disk
// (however SQLite reports it) wraps ErrDiskFull, a unique or primary-key
// violation wraps ErrExists; anything else is returned as it is.
func Classify(err error) error {
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
