package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/mailbox"
)

// The offline mailboxes (protocols/mailbox): Store implements
// mailbox.Store. The server only ever holds sealed boxes, their sizes and
// times, the depositor's and the owner's peer IDs; it cannot read a box.

var _ mailbox.Store = (*Store)(nil)

// HasMailbox implements mailbox.Store.
func (s *Store) HasMailbox(ctx context.Context, owner peer.ID) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM mailbox_owners WHERE peer_id = ?`, owner.String()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up mailbox: %w", err)
	}
	return n > 0, nil
}

// TouchMailbox implements mailbox.Store.
func (s *Store) TouchMailbox(ctx context.Context, owner peer.ID, now time.Time) error {
	return s.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO mailbox_owners (peer_id, seen_at) VALUES (?, ?)
			ON CONFLICT(peer_id) DO UPDATE SET seen_at = max(seen_at, excluded.seen_at)`, owner.String(), now.UnixMilli())
		if err != nil {
			return fmt.Errorf("touch mailbox: %w", err)
		}
		return nil
	})
}

// Deposit implements mailbox.Store. Boxes are stored in order; once one
// does not fit, the ones after it are refused too, so that a mailbox never
// holds a later message of a conversation without an earlier one.
func (s *Store) Deposit(ctx context.Context, b mailbox.DepositBatch) ([]mailbox.Code, error) {
	var codes []mailbox.Code
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		codes = make([]mailbox.Code, len(b.Items))
		var count, bytes int64
		err := tx.QueryRowContext(ctx, `SELECT count, bytes FROM mailbox_owners WHERE peer_id = ?`, b.Recipient.String()).Scan(&count, &bytes)
		if errors.Is(err, sql.ErrNoRows) {
			for i := range codes {
				codes[i] = mailbox.CodeUnknownRecipient
			}
			return nil
		}
		if err != nil {
			return err
		}
		var total int64
		if err := tx.QueryRowContext(ctx, `SELECT bytes FROM mailbox_totals WHERE id = 1`).Scan(&total); err != nil {
			return err
		}
		exists, err := tx.PrepareContext(ctx, `SELECT count(*) FROM mailbox_boxes WHERE id = ?`)
		if err != nil {
			return err
		}
		defer exists.Close()
		ins, err := tx.PrepareContext(ctx, `INSERT INTO mailbox_boxes (id, owner, sender, size, box, deposited_at, state, state_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		now := b.Now.UnixMilli()
		full := false
		var added, addedBytes int64
		for i, it := range b.Items {
			var n int
			if err := exists.QueryRowContext(ctx, it.ID[:]).Scan(&n); err != nil {
				return err
			}
			size := int64(len(it.Box))
			switch {
			case n > 0:
				codes[i] = mailbox.CodeDuplicate
				continue
			case full, count+1 > int64(b.MaxMessages), bytes+size > b.MaxBytes, total+size > b.MaxTotalBytes:
				full = true
				codes[i] = mailbox.CodeOverQuota
				continue
			}
			if _, err := ins.ExecContext(ctx, it.ID[:], b.Recipient.String(), b.Sender.String(), size, it.Box, now, mailbox.StatePending, now); err != nil {
				return err
			}
			codes[i] = mailbox.CodeOK
			count++
			bytes += size
			total += size
			added++
			addedBytes += size
		}
		if added == 0 {
			return nil
		}
		return adjust(ctx, tx, b.Recipient.String(), added, addedBytes)
	})
	if err != nil {
		return nil, fmt.Errorf("deposit: %w", err)
	}
	return codes, nil
}

// adjust adds n boxes of size bytes to owner's and the server's totals.
func adjust(ctx context.Context, tx *sql.Tx, owner string, n, size int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE mailbox_owners SET count = count + ?, bytes = bytes + ? WHERE peer_id = ?`, n, size, owner); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE mailbox_totals SET count = count + ?, bytes = bytes + ? WHERE id = 1`, n, size)
	return err
}

// Fetch implements mailbox.Store.
func (s *Store) Fetch(ctx context.Context, owner peer.ID, after uint64, limit, maxBytes int, now time.Time) ([]mailbox.StoredBox, bool, error) {
	var (
		out  []mailbox.StoredBox
		more bool
	)
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		out, more = nil, false
		rows, err := tx.QueryContext(ctx, `SELECT seq, id, box, deposited_at FROM mailbox_boxes
			WHERE owner = ? AND box IS NOT NULL AND seq > ? ORDER BY seq LIMIT ?`, owner.String(), int64(min(after, 1<<63-1)), limit+1)
		if err != nil {
			return err
		}
		size := 0
		for rows.Next() {
			var (
				b   mailbox.StoredBox
				seq int64
				id  []byte
				at  int64
			)
			if err := rows.Scan(&seq, &id, &b.Box, &at); err != nil {
				rows.Close()
				return err
			}
			if len(out) == limit || (len(out) > 0 && size+len(b.Box) > maxBytes) {
				more = true
				break
			}
			if len(id) != mailbox.IDLen {
				rows.Close()
				return fmt.Errorf("stored deposit id of %d bytes", len(id))
			}
			b.ID, b.Seq, b.Deposited = mailbox.DepositID(id), uint64(seq), time.UnixMilli(at)
			size += len(b.Box)
			out = append(out, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		upd, err := tx.PrepareContext(ctx, `UPDATE mailbox_boxes SET fetched = 1,
			state = CASE WHEN state = ? THEN ? ELSE state END,
			state_at = CASE WHEN state = ? THEN ? ELSE state_at END WHERE seq = ?`)
		if err != nil {
			return err
		}
		defer upd.Close()
		for _, b := range out {
			if _, err := upd.ExecContext(ctx, mailbox.StatePending, mailbox.StateFetched, mailbox.StatePending, now.UnixMilli(), int64(b.Seq)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("fetch: %w", err)
	}
	return out, more, nil
}

// Delete implements mailbox.Store.
func (s *Store) Delete(ctx context.Context, owner peer.ID, delivered, rejected []mailbox.DepositID, now time.Time) (int, error) {
	removed := 0
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		removed = 0
		upd, err := tx.PrepareContext(ctx, `UPDATE mailbox_boxes SET box = NULL, state = ?, state_at = ?
			WHERE id = ? AND owner = ? AND box IS NOT NULL RETURNING size`)
		if err != nil {
			return err
		}
		defer upd.Close()
		var n, bytes int64
		for _, set := range []struct {
			ids   []mailbox.DepositID
			state mailbox.State
		}{{delivered, mailbox.StateDelivered}, {rejected, mailbox.StateRejected}} {
			for _, id := range set.ids {
				var size int64
				err := upd.QueryRowContext(ctx, set.state, now.UnixMilli(), id[:], owner.String()).Scan(&size)
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				if err != nil {
					return err
				}
				n++
				bytes += size
			}
		}
		removed = int(n)
		if n == 0 {
			return nil
		}
		return adjust(ctx, tx, owner.String(), -n, -bytes)
	})
	if err != nil {
		return 0, fmt.Errorf("delete boxes: %w", err)
	}
	return removed, nil
}

// Fates implements mailbox.Store.
func (s *Store) Fates(ctx context.Context, sender peer.ID, ids []mailbox.DepositID) ([]mailbox.Fate, error) {
	q, err := s.db.PrepareContext(ctx, `SELECT state, state_at, fetched FROM mailbox_boxes WHERE id = ? AND sender = ?`)
	if err != nil {
		return nil, fmt.Errorf("fates: %w", err)
	}
	defer q.Close()
	out := make([]mailbox.Fate, len(ids))
	for i, id := range ids {
		var (
			state   int32
			at      int64
			fetched bool
		)
		err := q.QueryRowContext(ctx, id[:], sender.String()).Scan(&state, &at, &fetched)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			out[i] = mailbox.Fate{ID: id, State: mailbox.StateUnknown}
		case err != nil:
			return nil, fmt.Errorf("fates: %w", err)
		default:
			out[i] = mailbox.Fate{ID: id, State: mailbox.State(state), At: time.UnixMilli(at), Fetched: fetched}
		}
	}
	return out, nil
}

// Expire implements mailbox.Store.
func (s *Store) Expire(ctx context.Context, now time.Time, l mailbox.Limits) (mailbox.ExpireStats, error) {
	var st mailbox.ExpireStats
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		st = mailbox.ExpireStats{}
		rows, err := tx.QueryContext(ctx, `UPDATE mailbox_boxes SET box = NULL, state = ?, state_at = ?
			WHERE box IS NOT NULL AND deposited_at <= ? RETURNING owner, size`,
			mailbox.StateExpired, now.UnixMilli(), now.Add(-l.MaxAge).UnixMilli())
		if err != nil {
			return err
		}
		type sum struct{ n, bytes int64 }
		per := map[string]*sum{}
		for rows.Next() {
			var (
				owner string
				size  int64
			)
			if err := rows.Scan(&owner, &size); err != nil {
				rows.Close()
				return err
			}
			if per[owner] == nil {
				per[owner] = &sum{}
			}
			per[owner].n++
			per[owner].bytes += size
			st.Expired++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for owner, s := range per {
			if err := adjust(ctx, tx, owner, -s.n, -s.bytes); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM mailbox_boxes WHERE box IS NULL AND state_at <= ?`, now.Add(-l.FateTTL).UnixMilli())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		st.Fates = int(n)
		res, err = tx.ExecContext(ctx, `DELETE FROM mailbox_owners WHERE count = 0 AND seen_at <= ?`, now.Add(-l.OwnerTTL).UnixMilli())
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		st.Owners = int(n)
		return nil
	})
	if err != nil {
		return mailbox.ExpireStats{}, fmt.Errorf("expire mailboxes: %w", err)
	}
	return st, nil
}

// MailboxStat is what the operator sees of one mailbox: counts, sizes and
// times, never contents or senders.
type MailboxStat struct {
	Owner peer.ID `json:"owner"`
	// Boxes and Bytes are what it holds now.
	Boxes int   `json:"boxes"`
	Bytes int64 `json:"bytes"`
	// Oldest is when its oldest box was deposited.
	Oldest time.Time `json:"oldest,omitzero"`
	// Seen is when the owner last registered or fetched.
	Seen time.Time `json:"seen"`
}

// MailboxTotals sums all mailboxes.
type MailboxTotals struct {
	Mailboxes int   `json:"mailboxes"`
	Boxes     int   `json:"boxes"`
	Bytes     int64 `json:"bytes"`
	// Fates are deposits that left their mailbox and whose fate is still
	// kept for their senders.
	Fates int `json:"fates"`
}

// Totals returns the sums over all mailboxes.
func (s *Store) Totals(ctx context.Context) (MailboxTotals, error) {
	var t MailboxTotals
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM mailbox_owners), count, bytes,
		(SELECT count(*) FROM mailbox_boxes WHERE box IS NULL) FROM mailbox_totals WHERE id = 1`).Scan(&t.Mailboxes, &t.Boxes, &t.Bytes, &t.Fates)
	if err != nil {
		return t, fmt.Errorf("mailbox totals: %w", err)
	}
	return t, nil
}

// Mailboxes lists every mailbox with its counts, fullest first.
func (s *Store) Mailboxes(ctx context.Context) ([]MailboxStat, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT o.peer_id, o.count, o.bytes, o.seen_at,
		(SELECT min(deposited_at) FROM mailbox_boxes b WHERE b.owner = o.peer_id AND b.box IS NOT NULL)
		FROM mailbox_owners o ORDER BY o.bytes DESC, o.peer_id`)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	defer rows.Close()
	out := []MailboxStat{}
	for rows.Next() {
		var (
			id     string
			m      MailboxStat
			seen   int64
			oldest sql.NullInt64
		)
		if err := rows.Scan(&id, &m.Boxes, &m.Bytes, &seen, &oldest); err != nil {
			return nil, fmt.Errorf("list mailboxes: %w", err)
		}
		p, err := peer.Decode(id)
		if err != nil {
			return nil, fmt.Errorf("stored mailbox owner %q: %w", id, err)
		}
		m.Owner, m.Seen = p, time.UnixMilli(seen)
		if oldest.Valid {
			m.Oldest = time.UnixMilli(oldest.Int64)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// SaveSenderLimits implements mailbox.Store.
func (s *Store) SaveSenderLimits(ctx context.Context, ls []mailbox.SenderLimit) error {
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM mailbox_limits`); err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO mailbox_limits (sender, tokens, at) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, l := range ls {
			if _, err := ins.ExecContext(ctx, l.Sender.String(), l.Tokens, l.At.UnixMilli()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save deposit limits: %w", err)
	}
	return nil
}

// SenderLimits implements mailbox.Store.
func (s *Store) SenderLimits(ctx context.Context) ([]mailbox.SenderLimit, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sender, tokens, at FROM mailbox_limits`)
	if err != nil {
		return nil, fmt.Errorf("read deposit limits: %w", err)
	}
	defer rows.Close()
	var out []mailbox.SenderLimit
	for rows.Next() {
		var (
			id string
			l  mailbox.SenderLimit
			at int64
		)
		if err := rows.Scan(&id, &l.Tokens, &at); err != nil {
			return nil, fmt.Errorf("read deposit limits: %w", err)
		}
		p, err := peer.Decode(id)
		if err != nil {
			continue
		}
		l.Sender, l.At = p, time.UnixMilli(at)
		out = append(out, l)
	}
	return out, rows.Err()
}
