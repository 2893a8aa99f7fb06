package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// OwnName is a directory name we registered.
type OwnName struct {
	Name string
	// Seq is the sequence of the last record we signed for it.
	Seq       uint64
	CreatedAt time.Time
}

// OwnNames lists our names, sorted.
func (s *Store) OwnNames(ctx context.Context) ([]OwnName, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, seq, created_at FROM own_names ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list own names: %w", classify(err))
	}
	defer rows.Close()
	var out []OwnName
	for rows.Next() {
		var (
			n            OwnName
			seq, created int64
		)
		if err := rows.Scan(&n.Name, &seq, &created); err != nil {
			return nil, fmt.Errorf("list own names: %w", classify(err))
		}
		n.Seq, n.CreatedAt = uint64(seq), time.UnixMilli(created)
		out = append(out, n)
	}
	return out, rows.Err()
}

// NextNameSeq durably reserves the next record sequence for name, adding
// it to our names if it is not there. next computes the sequence from the
// last one (0 for a new name).
func (s *Store) NextNameSeq(ctx context.Context, name string, next func(last uint64) uint64) (seq uint64, err error) {
	err = s.Tx(ctx, func(tx *sql.Tx) error {
		var last int64
		err := tx.QueryRowContext(ctx, `SELECT seq FROM own_names WHERE name = ?`, name).Scan(&last)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			seq = next(0)
			_, err = tx.ExecContext(ctx, `INSERT INTO own_names (name, seq, created_at) VALUES (?, ?, ?)`, name, int64(seq), time.Now().UnixMilli())
			return err
		case err != nil:
			return err
		}
		seq = next(uint64(last))
		_, err = tx.ExecContext(ctx, `UPDATE own_names SET seq = ? WHERE name = ?`, int64(seq), name)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("name sequence: %w", classify(err))
	}
	return seq, nil
}

// RemoveOwnName forgets one of our names; ErrNotFound if it is not ours.
func (s *Store) RemoveOwnName(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM own_names WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("remove own name: %w", classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("name %q: %w", name, ErrNotFound)
	}
	return nil
}

// NameWarning says that the directory name a contact was added by now
// points elsewhere.
type NameWarning struct {
	DirName string
	// SeenPeer is who the directory says holds the name now ("" when
	// the servers disagree).
	SeenPeer peer.ID
	Warning  string
	SeenAt   time.Time
}

// NameWarnings returns the warnings of every contact that has one.
func (s *Store) NameWarnings(ctx context.Context) (map[peer.ID]NameWarning, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT peer_id, dir_name, seen_peer, warning, seen_at FROM name_warnings`)
	if err != nil {
		return nil, fmt.Errorf("read name warnings: %w", classify(err))
	}
	defer rows.Close()
	out := map[peer.ID]NameWarning{}
	for rows.Next() {
		var (
			id, seen string
			w        NameWarning
			at       int64
		)
		if err := rows.Scan(&id, &w.DirName, &seen, &w.Warning, &at); err != nil {
			return nil, fmt.Errorf("read name warnings: %w", classify(err))
		}
		p, err := peer.Decode(id)
		if err != nil {
			continue
		}
		if seen != "" {
			w.SeenPeer, _ = peer.Decode(seen)
		}
		w.SeenAt = time.UnixMilli(at)
		out[p] = w
	}
	return out, rows.Err()
}

// SetNameWarning records w for contact p; it reports whether the warning
// is new or changed (false: the same warning was already there).
func (s *Store) SetNameWarning(ctx context.Context, p peer.ID, w NameWarning) (bool, error) {
	seen := ""
	if w.SeenPeer != "" {
		seen = w.SeenPeer.String()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO name_warnings (peer_id, dir_name, seen_peer, warning, seen_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(peer_id) DO UPDATE SET dir_name = excluded.dir_name, seen_peer = excluded.seen_peer,
		warning = excluded.warning, seen_at = excluded.seen_at
		WHERE name_warnings.seen_peer != excluded.seen_peer OR name_warnings.warning != excluded.warning`,
		p.String(), w.DirName, seen, w.Warning, w.SeenAt.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("store name warning: %w", classify(err))
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// ClearNameWarning drops contact p's warning; it reports whether there
// was one.
func (s *Store) ClearNameWarning(ctx context.Context, p peer.ID) (bool, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM name_warnings WHERE peer_id = ?`, p.String())
	if err != nil {
		return false, fmt.Errorf("clear name warning: %w", classify(err))
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
