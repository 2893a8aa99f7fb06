package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Friend requests that outlive a restart (node/social): a withdrawal not
// delivered yet, and the rejections whose cool-down runs.

// RemoveWithdrawing removes the contact p (our pending_out request) and
// queues the withdrawal of that request, at, in one transaction: the
// receiver is told when it is next reachable (DropWithdrawal once it
// was). ErrNotFound if there is no such contact.
func (s *Store) RemoveWithdrawing(ctx context.Context, p peer.ID, at time.Time) error {
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM contacts WHERE peer_id = ?`, p.String())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("contact %s: %w", p, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO withdrawals (peer_id, created_at) VALUES (?, ?)
			ON CONFLICT(peer_id) DO UPDATE SET created_at = excluded.created_at`, p.String(), at.UnixMilli())
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("withdraw request: %w", classify(err))
	}
	return nil
}

// Withdrawals are the queued withdrawals: peer -> when it was queued.
func (s *Store) Withdrawals(ctx context.Context) (map[peer.ID]time.Time, error) {
	return s.peerTimes(ctx, "read withdrawals", `SELECT peer_id, created_at FROM withdrawals`)
}

// DropWithdrawal forgets p's queued withdrawal (delivered, given up, or
// p is a contact again); it reports whether there was one.
func (s *Store) DropWithdrawal(ctx context.Context, p peer.ID) (bool, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM withdrawals WHERE peer_id = ?`, p.String())
	if err != nil {
		return false, fmt.Errorf("drop withdrawal: %w", classify(err))
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// RemoveRejected removes the contact p (a request we reject) and records
// the rejection at, in one transaction; rejections before forgetBefore
// (their cool-down is over) are forgotten. ErrNotFound if there is no
// such contact.
func (s *Store) RemoveRejected(ctx context.Context, p peer.ID, at, forgetBefore time.Time) error {
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM contacts WHERE peer_id = ?`, p.String())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("contact %s: %w", p, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rejections WHERE rejected_at < ?`, forgetBefore.UnixMilli()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO rejections (peer_id, rejected_at) VALUES (?, ?)
			ON CONFLICT(peer_id) DO UPDATE SET rejected_at = excluded.rejected_at`, p.String(), at.UnixMilli())
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("reject request: %w", classify(err))
	}
	return nil
}

// RejectedAt is when we last rejected p's request (the zero time if we
// did not, or forgot it).
func (s *Store) RejectedAt(ctx context.Context, p peer.ID) (time.Time, error) {
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT rejected_at FROM rejections WHERE peer_id = ?`, p.String()).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read rejection: %w", classify(err))
	}
	return time.UnixMilli(at), nil
}
