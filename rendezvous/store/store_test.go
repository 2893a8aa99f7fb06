package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/natterim/natter/rendezvous/store"
)

func TestOpenCreatesAndReopens(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); err != nil {
		t.Fatalf("database file: %v", err)
	}
	s, err = store.Open(ctx, dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var v int
	if err := s.DB().QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil || v != store.SchemaVersion() {
		t.Fatalf("user_version = %d (%v), want %d", v, err, store.SchemaVersion())
	}
}
