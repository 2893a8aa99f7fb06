package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations is the schema history: migrations[i] takes the database from
// version i to i+1. Never edit a released entry; append a new one.
var migrations = []string{
	// 1: contacts and node-local settings.
	`CREATE TABLE contacts (
		peer_id     TEXT PRIMARY KEY,
		name        TEXT NOT NULL DEFAULT '',
		state       TEXT NOT NULL DEFAULT 'accepted',
		rendezvous  TEXT NOT NULL DEFAULT '',
		created_at  INTEGER NOT NULL,
		updated_at  INTEGER NOT NULL
	);
	CREATE UNIQUE INDEX contacts_name ON contacts(name COLLATE NOCASE) WHERE name != '';
	CREATE TABLE settings (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
}

// SchemaVersion is the version this natter writes.
func SchemaVersion() int { return len(migrations) }

func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", classify(err))
	}
	if v > len(migrations) {
		return fmt.Errorf("database at version %d, this natter knows %d: %w", v, len(migrations), ErrTooNew)
	}
	for i := v; i < len(migrations); i++ {
		err := s.Tx(ctx, func(tx *sql.Tx) error {
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
