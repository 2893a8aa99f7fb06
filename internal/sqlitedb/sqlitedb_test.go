package sqlitedb_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/natterim/natter/internal/sqlitedb"
)

func TestMigrationsApplyOnceAndInOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	v1 := []string{`CREATE TABLE a (k TEXT PRIMARY KEY)`}
	db, err := sqlitedb.Open(ctx, path, v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO a VALUES ('x')`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Reopening with one more migration applies only the new one and
	// keeps the data.
	v2 := append(v1, `ALTER TABLE a ADD COLUMN n INTEGER NOT NULL DEFAULT 7`)
	db, err = sqlitedb.Open(ctx, path, v2)
	if err != nil {
		t.Fatal(err)
	}
	var (
		k string
		n int
		v int
	)
	if err := db.QueryRow(`SELECT k, n FROM a`).Scan(&k, &n); err != nil || k != "x" || n != 7 {
		t.Fatalf("row = %q %d, %v", k, n, err)
	}
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != 2 {
		t.Fatalf("user_version = %d, %v", v, err)
	}
	db.Close()

	// An older program refuses the newer database.
	if _, err := sqlitedb.Open(ctx, path, v1); !errors.Is(err, sqlitedb.ErrTooNew) {
		t.Fatalf("open with fewer migrations: %v, want ErrTooNew", err)
	}
}

func TestFailedMigrationChangesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	bad := []string{`CREATE TABLE a (k TEXT); CREATE TABLE oops (`}
	if _, err := sqlitedb.Open(ctx, path, bad); err == nil {
		t.Fatal("a broken migration opened")
	}
	db, err := sqlitedb.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'a'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("table from the failed migration: %d, %v", n, err)
	}
}

func TestTxClassifiesAndRollsBack(t *testing.T) {
	ctx := context.Background()
	db, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "x.db"), []string{`CREATE TABLE a (k TEXT PRIMARY KEY)`})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = sqlitedb.Tx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO a VALUES ('x')`); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO a VALUES ('x')`)
		return err
	})
	if !errors.Is(err, sqlitedb.ErrExists) {
		t.Fatalf("duplicate insert: %v, want ErrExists", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM a`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after rollback: %d, %v", n, err)
	}
}
