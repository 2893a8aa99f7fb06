package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/internal/sqlitedb"
	"github.com/natterim/natter/protocols/names"
)

// Names is the name directory's table, a names.Registry: every call is
// one durable statement (the names.Service serialises changes).
type Names struct{ db *sql.DB }

// Names returns the name directory's registry.
func (s *Store) Names() *Names { return &Names{db: s.db} }

var _ names.Registry = (*Names)(nil)

// Get implements names.Registry.
func (n *Names) Get(ctx context.Context, skeleton string) (names.Entry, error) {
	var (
		e                 names.Entry
		id                string
		seq, reg, renewed int64
	)
	err := n.db.QueryRowContext(ctx, `SELECT name, skeleton, peer_id, seq, record, registered, renewed
		FROM names WHERE skeleton = ?`, skeleton).Scan(&e.Name, &e.Skeleton, &id, &seq, &e.Record, &reg, &renewed)
	if errors.Is(err, sql.ErrNoRows) {
		return names.Entry{}, names.ErrNotFound
	}
	if err != nil {
		return names.Entry{}, fmt.Errorf("read name: %w", err)
	}
	if e.Peer, err = peer.Decode(id); err != nil {
		return names.Entry{}, fmt.Errorf("stored peer id %q: %w", id, err)
	}
	e.Seq = uint64(seq)
	e.Registered, e.Renewed = time.UnixMilli(reg), time.UnixMilli(renewed)
	return e, nil
}

// Put implements names.Registry.
func (n *Names) Put(ctx context.Context, e names.Entry) error {
	_, err := n.db.ExecContext(ctx, `INSERT INTO names (skeleton, name, peer_id, seq, record, registered, renewed)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(skeleton) DO UPDATE SET name = excluded.name, peer_id = excluded.peer_id, seq = excluded.seq,
		record = excluded.record, registered = excluded.registered, renewed = excluded.renewed`,
		e.Skeleton, e.Name, e.Peer.String(), int64(e.Seq), e.Record, e.Registered.UnixMilli(), e.Renewed.UnixMilli())
	if err != nil {
		return fmt.Errorf("store name: %w", sqlitedb.Classify(err))
	}
	return nil
}

// Delete implements names.Registry.
func (n *Names) Delete(ctx context.Context, skeleton string) error {
	if _, err := n.db.ExecContext(ctx, `DELETE FROM names WHERE skeleton = ?`, skeleton); err != nil {
		return fmt.Errorf("delete name: %w", sqlitedb.Classify(err))
	}
	return nil
}

// NamesOf implements names.Registry.
func (n *Names) NamesOf(ctx context.Context, p peer.ID, activeSince time.Time) ([]string, error) {
	rows, err := n.db.QueryContext(ctx, `SELECT name FROM names WHERE peer_id = ? AND renewed >= ? ORDER BY name`,
		p.String(), activeSince.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("list names: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("list names: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteInactive implements names.Registry.
func (n *Names) DeleteInactive(ctx context.Context, before time.Time) (int, error) {
	res, err := n.db.ExecContext(ctx, `DELETE FROM names WHERE renewed < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("drop inactive names: %w", sqlitedb.Classify(err))
	}
	c, _ := res.RowsAffected()
	return int(c), nil
}
