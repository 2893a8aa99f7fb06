package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/natterim/natter/internal/sqlitedb"
)

// Snapshot writes a consistent copy of the database to dst (which must not
// exist) with VACUUM INTO: one read transaction, so writers carry on and
// the copy is a single point in time, compacted, without a WAL.
func (s *Store) Snapshot(ctx context.Context, dst string) error {
	if _, err := s.db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return fmt.Errorf("snapshot database: %w", sqlitedb.Classify(err))
	}
	return nil
}

// SnapshotDir does the same for the database in dataDir when no server
// holds it open (the caller holds the data dir's lock). It opens the file
// as it is, without migrating it; ErrNotFound if there is none.
func SnapshotDir(ctx context.Context, dataDir, dst string) error {
	src := filepath.Join(dataDir, FileName)
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", src, ErrNotFound)
		}
		return err
	}
	s, err := openRaw(ctx, src)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Snapshot(ctx, dst)
}

// openRaw opens the database file at path without touching its schema.
func openRaw(ctx context.Context, path string) (*Store, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, sqlitedb.Classify(err))
	}
	return &Store{db: db}, nil
}
