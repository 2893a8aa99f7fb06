// Package store is the rendezvous server's durable state: one SQLite
// database (internal/sqlitedb: WAL, synchronous=FULL) in the server's data
// dir, for what a restart must not lose — the name directory and the
// sealed offline mailboxes. The registry of who is online is soft state
// and stays in memory: nodes re-register after a restart.
//
// Each feature owns its tables through a migration appended to migrations
// and its own file of methods on Store.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/natterim/natter/internal/sqlitedb"
)

// FileName is the database file's name inside the server's data dir.
const FileName = "rendezvous.db"

var (
	// ErrNotFound is returned when a looked-up row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when an insert would duplicate a unique row.
	ErrExists = sqlitedb.ErrExists
	// ErrDiskFull is returned when the disk is full; nothing was changed.
	ErrDiskFull = sqlitedb.ErrDiskFull
	// ErrTooNew is returned for a database written by a newer server.
	ErrTooNew = sqlitedb.ErrTooNew
)

// migrations is the schema history: migrations[i] takes the database from
// version i to i+1. Never edit a released entry; append a new one.
var migrations = []string{
	// 1: the name directory (names.go). skeleton is the look-alike key
	// (names.Skeleton): one holder per skeleton. record is the holder's
	// latest signed REGISTER record, handed out by lookups as it arrived.
	`CREATE TABLE names (
		skeleton    TEXT PRIMARY KEY,
		name        TEXT NOT NULL,
		peer_id     TEXT NOT NULL,
		seq         INTEGER NOT NULL,
		record      BLOB NOT NULL,
		registered  INTEGER NOT NULL,
		renewed     INTEGER NOT NULL
	);
	CREATE INDEX names_peer ON names(peer_id, renewed);
	CREATE INDEX names_renewed ON names(renewed);`,
	// 2: offline mailboxes (protocols/mailbox; queries in mailbox.go).
	// mailbox_owners are the peers that have a mailbox here (they
	// registered or fetched), with the count and bytes of the boxes they
	// hold. mailbox_boxes holds every deposit: its sealed box while it is
	// in the mailbox, then (box NULL) its fate until fates expire. seq is
	// the mailbox position (AUTOINCREMENT: never reused). mailbox_totals
	// is one row: all boxes held.
	`CREATE TABLE mailbox_owners (
		peer_id  TEXT PRIMARY KEY,
		seen_at  INTEGER NOT NULL,
		count    INTEGER NOT NULL DEFAULT 0,
		bytes    INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE mailbox_boxes (
		seq          INTEGER PRIMARY KEY AUTOINCREMENT,
		id           BLOB NOT NULL UNIQUE,
		owner        TEXT NOT NULL,
		sender       TEXT NOT NULL,
		size         INTEGER NOT NULL,
		box          BLOB,
		deposited_at INTEGER NOT NULL,
		state        INTEGER NOT NULL,
		state_at     INTEGER NOT NULL,
		fetched      INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX mailbox_boxes_owner ON mailbox_boxes(owner, seq) WHERE box IS NOT NULL;
	CREATE INDEX mailbox_boxes_age ON mailbox_boxes(deposited_at) WHERE box IS NOT NULL;
	CREATE INDEX mailbox_boxes_gone ON mailbox_boxes(state_at) WHERE box IS NULL;
	CREATE TABLE mailbox_totals (
		id     INTEGER PRIMARY KEY CHECK (id = 1),
		count  INTEGER NOT NULL,
		bytes  INTEGER NOT NULL
	);
	INSERT INTO mailbox_totals (id, count, bytes) VALUES (1, 0, 0);`,
	// 3: the per-sender deposit rate limits (protocols/mailbox), saved
	// every GC interval and on a clean stop so that a restart does not
	// refill every bucket: the tokens a sender had left at at (ms).
	`CREATE TABLE mailbox_limits (
		sender  TEXT PRIMARY KEY,
		tokens  REAL NOT NULL,
		at      INTEGER NOT NULL
	);`,
}

// SchemaVersion is the version this server writes.
func SchemaVersion() int { return len(migrations) }

// Store is the server database. Its methods are safe for concurrent use.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the database in dataDir and migrates it.
func Open(ctx context.Context, dataDir string) (*Store, error) {
	db, err := sqlitedb.Open(ctx, filepath.Join(dataDir, FileName), migrations)
	if err != nil {
		return nil, fmt.Errorf("open server database: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Tx runs fn in one write transaction, committing if fn returns nil.
func (s *Store) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return sqlitedb.Tx(ctx, s.db, fn)
}

// DB exposes the handle for reads.
func (s *Store) DB() *sql.DB { return s.db }
