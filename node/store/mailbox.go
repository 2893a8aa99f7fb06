package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/chat"
)

// Offline delivery (node/mailbox.go). An outbox entry for a contact that
// stays offline is sealed into the contact's mailbox on a rendezvous; the
// deposit is recorded here with the entry, which stays in the outbox until
// the contact has the message (its ack, or its DELIVERED receipt), so a
// direct link that comes up first still delivers it and nothing is ever
// lost; the contact's node de-duplicates by message id, so nothing shows
// twice.

// Deposit states (mailbox_deposits.state).
const (
	// depositPending: the id is chosen and the deposit may be in flight;
	// a retry to the same server reuses the id (the server stores it
	// once).
	depositPending = 0
	// depositStored: the server stored the box.
	depositStored = 1
	// depositTaken: the contact fetched the box; only its receipt is
	// awaited.
	depositTaken = 2
)

// SaveToken keeps a deposit token from p (it lets us deposit in p's
// mailbox until expires), unless the one kept lasts longer.
func (s *Store) SaveToken(ctx context.Context, p peer.ID, token []byte, expires time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO mailbox_tokens (peer_id, token, expires_at, received_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(peer_id) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at, received_at = excluded.received_at
		WHERE excluded.expires_at >= mailbox_tokens.expires_at`, p.String(), token, expires.UnixMilli(), time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("save deposit token: %w", classify(err))
	}
	return nil
}

// Token returns p's deposit token for us (ErrNotFound if none).
func (s *Store) Token(ctx context.Context, p peer.ID) ([]byte, time.Time, error) {
	var (
		tok []byte
		exp int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT token, expires_at FROM mailbox_tokens WHERE peer_id = ?`, p.String()).Scan(&tok, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, fmt.Errorf("deposit token of %s: %w", p.ShortString(), ErrNotFound)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read deposit token: %w", classify(err))
	}
	return tok, time.UnixMilli(exp), nil
}

// DropToken forgets p's token (it was refused).
func (s *Store) DropToken(ctx context.Context, p peer.ID) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM mailbox_tokens WHERE peer_id = ?`, p.String()); err != nil {
		return fmt.Errorf("drop deposit token: %w", classify(err))
	}
	return nil
}

// MailboxDue returns, per contact, when its oldest outbox entry not yet
// stored in a mailbox was queued.
func (s *Store) MailboxDue(ctx context.Context) (map[peer.ID]time.Time, error) {
	return s.peerTimes(ctx, "mailbox due", `SELECT o.peer_id, min(o.sent_at) FROM outbox o
		LEFT JOIN mailbox_deposits d ON d.msg_id = o.id
		WHERE d.msg_id IS NULL OR d.state = ? GROUP BY o.peer_id`, depositPending)
}

// peerTimes runs a query of (peer ID, Unix ms) rows into a map; rows whose
// peer ID does not decode are skipped. what names the query in errors.
func (s *Store) peerTimes(ctx context.Context, what, query string, args ...any) (map[peer.ID]time.Time, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, classify(err))
	}
	defer rows.Close()
	out := map[peer.ID]time.Time{}
	for rows.Next() {
		var (
			id string
			at int64
		)
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("%s: %w", what, classify(err))
		}
		if p, err := peer.Decode(id); err == nil {
			out[p] = time.UnixMilli(at)
		}
	}
	return out, rows.Err()
}

// Undeposited is an outbox entry not yet stored in a mailbox, with the
// deposit in flight for it, if any.
type Undeposited struct {
	OutboxEntry
	// DepositID and Server are set when a deposit was begun (and may have
	// reached Server): a retry there must reuse the id.
	DepositID [16]byte
	Server    peer.ID
}

// Undeposited returns up to limit of p's outbox entries queued at or
// before queuedBefore that are not stored in a mailbox, in order, with
// their payload (a file offer or update is sealed whole).
func (s *Store) Undeposited(ctx context.Context, p peer.ID, queuedBefore time.Time, limit int) ([]Undeposited, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT o.id, o.seq, o.kind, o.text, o.refs, o.sent_at, o.payload, d.deposit_id, d.server FROM outbox o
		LEFT JOIN mailbox_deposits d ON d.msg_id = o.id
		WHERE o.peer_id = ? AND o.sent_at <= ? AND (d.msg_id IS NULL OR d.state = ?) ORDER BY o.seq LIMIT ?`,
		p.String(), queuedBefore.UnixMilli(), depositPending, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", classify(err))
	}
	defer rows.Close()
	var out []Undeposited
	for rows.Next() {
		var (
			u      = Undeposited{OutboxEntry: OutboxEntry{NewOutgoing: NewOutgoing{Peer: p}}}
			id     []byte
			refs   []byte
			sent   int64
			dep    []byte
			server sql.NullString
		)
		if err := rows.Scan(&id, &u.Seq, &u.Kind, &u.Text, &refs, &sent, &u.Payload, &dep, &server); err != nil {
			return nil, fmt.Errorf("read outbox: %w", classify(err))
		}
		if len(id) != chat.IDLen {
			return nil, fmt.Errorf("outbox entry with a %d-byte id", len(id))
		}
		u.ID, u.Refs, u.SentAt = chat.MsgID(id), splitIDs(refs), time.UnixMilli(sent)
		if len(dep) == 16 && server.Valid {
			if sp, err := peer.Decode(server.String); err == nil {
				u.DepositID, u.Server = [16]byte(dep), sp
			}
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// DepositRecord is one deposit: an outbox entry sealed for a server.
type DepositRecord struct {
	MsgID     chat.MsgID
	Peer      peer.ID
	DepositID [16]byte
	Server    peer.ID
	// Addrs are the server's multiaddrs (for a server that is not one of
	// ours), space-separated.
	Addrs string
	// Kind is the outbox entry's kind (DepositsToCheck).
	Kind string
}

// BeginDeposits records deposits about to be sent, before they are, so
// that a retry (after a crash too) reuses their ids. Entries that left
// the outbox meanwhile are skipped; a pending deposit of an entry is
// replaced.
func (s *Store) BeginDeposits(ctx context.Context, ds []DepositRecord) error {
	now := time.Now().UnixMilli()
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO mailbox_deposits (msg_id, peer_id, deposit_id, server, addrs, state, created_at)
			SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM outbox WHERE id = ?)
			ON CONFLICT(msg_id) DO UPDATE SET deposit_id = excluded.deposit_id, server = excluded.server, addrs = excluded.addrs,
				created_at = excluded.created_at WHERE state = ?`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, d := range ds {
			if _, err := ins.ExecContext(ctx, d.MsgID[:], d.Peer.String(), d.DepositID[:], d.Server.String(), d.Addrs,
				depositPending, now, d.MsgID[:], depositPending); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record deposits: %w", err)
	}
	return nil
}

// Deposited records a server's answer for p's deposits: the boxes of
// stored are in the mailbox (their history messages become stored), those
// of refused are not (they will be deposited again, with new ids).
func (s *Store) Deposited(ctx context.Context, p peer.ID, stored, refused []chat.MsgID) ([]StatusChange, error) {
	var changes []StatusChange
	now := time.Now().UnixMilli()
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		changes = nil
		mark, err := tx.PrepareContext(ctx, `UPDATE mailbox_deposits SET state = ?, stored_at = ?, checked_at = ? WHERE msg_id = ? AND state = ?`)
		if err != nil {
			return err
		}
		defer mark.Close()
		upd, err := tx.PrepareContext(ctx, `UPDATE messages SET status = ?, status_at = ?
			WHERE id = ? AND peer_id = ? AND outgoing = 1 AND status >= ? AND status < ? RETURNING id`)
		if err != nil {
			return err
		}
		defer upd.Close()
		for _, id := range stored {
			if _, err := mark.ExecContext(ctx, depositStored, now, now, id[:], depositPending); err != nil {
				return err
			}
			ok, err := returnsRow(upd.QueryContext(ctx, StatusStored, now, id[:], p.String(), StatusQueued, StatusStored))
			if err != nil {
				return err
			}
			if ok {
				changes = append(changes, StatusChange{ID: id, Status: StatusStored})
			}
		}
		for _, id := range refused {
			if _, err := tx.ExecContext(ctx, `DELETE FROM mailbox_deposits WHERE msg_id = ? AND state = ?`, id[:], depositPending); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record deposits: %w", err)
	}
	return changes, nil
}

// DepositsToCheck returns up to limit stored deposits whose fate was not
// checked since before, grouped by server.
func (s *Store) DepositsToCheck(ctx context.Context, before time.Time, limit int) ([]DepositRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT d.msg_id, d.peer_id, d.deposit_id, d.server, d.addrs, o.kind FROM mailbox_deposits d
		JOIN outbox o ON o.id = d.msg_id WHERE d.state = ? AND d.checked_at <= ? ORDER BY d.server, d.checked_at LIMIT ?`,
		depositStored, before.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("read deposits: %w", classify(err))
	}
	defer rows.Close()
	var out []DepositRecord
	for rows.Next() {
		var (
			r           DepositRecord
			id, dep     []byte
			pid, server string
		)
		if err := rows.Scan(&id, &pid, &dep, &server, &r.Addrs, &r.Kind); err != nil {
			return nil, fmt.Errorf("read deposits: %w", classify(err))
		}
		p, err1 := peer.Decode(pid)
		sp, err2 := peer.Decode(server)
		if len(id) != chat.IDLen || len(dep) != 16 || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("corrupt deposit record")
		}
		r.MsgID, r.Peer, r.DepositID, r.Server = chat.MsgID(id), p, [16]byte(dep), sp
		out = append(out, r)
	}
	return out, rows.Err()
}

// Fate actions for ApplyFates.
const (
	// FateWaiting: still in the mailbox; check again later.
	FateWaiting = iota
	// FateTaken: the contact has the box; stop checking. A receipt leaves
	// the outbox (nothing more will come for it); a history message waits
	// for the contact's DELIVERED receipt.
	FateTaken
	// FateRedeposit: the box is gone without reaching the contact and the
	// entry should be deposited again (a receipt that expired; a server
	// that forgot the deposit).
	FateRedeposit
	// FateFailed: a history message the mailbox lost for good: it becomes
	// failed (with the reason) and leaves the outbox.
	FateFailed
)

// FateUpdate is what became of one deposit.
type FateUpdate struct {
	MsgID  chat.MsgID
	Peer   peer.ID
	Action int
	Reason string
}

// ApplyFates applies what servers said about deposits, in one
// transaction, and returns the status changes of our messages.
func (s *Store) ApplyFates(ctx context.Context, us []FateUpdate) ([]StatusChange, error) {
	var changes []StatusChange
	now := time.Now().UnixMilli()
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		changes = nil
		for _, u := range us {
			var err error
			switch u.Action {
			case FateWaiting:
				_, err = tx.ExecContext(ctx, `UPDATE mailbox_deposits SET checked_at = ? WHERE msg_id = ?`, now, u.MsgID[:])
			case FateTaken:
				if _, err = tx.ExecContext(ctx, `UPDATE mailbox_deposits SET state = ?, checked_at = ? WHERE msg_id = ?`, depositTaken, now, u.MsgID[:]); err == nil {
					_, err = tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ? AND peer_id = ? AND kind IN (?, ?)`, u.MsgID[:], u.Peer.String(), KindDelivered, KindRead)
				}
			case FateRedeposit:
				_, err = tx.ExecContext(ctx, `DELETE FROM mailbox_deposits WHERE msg_id = ?`, u.MsgID[:])
			case FateFailed:
				var ok bool
				ok, err = returnsRow(tx.QueryContext(ctx, `UPDATE messages SET status = ?, status_at = ?, reason = ?
					WHERE id = ? AND peer_id = ? AND outgoing = 1 AND status >= ? AND status < ? RETURNING id`,
					StatusFailed, now, u.Reason, u.MsgID[:], u.Peer.String(), StatusQueued, StatusDelivered))
				if err == nil {
					if ok {
						changes = append(changes, StatusChange{ID: u.MsgID, Status: StatusFailed, Reason: u.Reason})
					}
					_, err = tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ? AND peer_id = ?`, u.MsgID[:], u.Peer.String())
				}
			default:
				err = fmt.Errorf("unknown fate action %d", u.Action)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply deposit fates: %w", err)
	}
	return changes, nil
}

// MailboxCounts are, per contact, history messages (texts, nudges, file
// offers) stored in its mailbox and not yet delivered.
func (s *Store) MailboxCounts(ctx context.Context) (map[peer.ID]int, error) {
	return s.countPerPeer(ctx, `SELECT d.peer_id, count(*) FROM mailbox_deposits d JOIN outbox o ON o.id = d.msg_id
		WHERE d.state >= ? AND o.kind IN (?, ?, ?) GROUP BY d.peer_id`, depositStored, KindText, KindNudge, KindFile)
}
