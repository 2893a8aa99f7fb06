package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/chat"
)

// Kinds of messages. Text, nudge and file (an offer; its text is the
// note) are history; delivered and read are receipts and file_update a
// change of a transfer, which live only in the outbox until the contact
// has them.
const (
	KindText       = "text"
	KindNudge      = "nudge"
	KindDelivered  = "delivered"
	KindRead       = "read"
	KindFile       = "file"
	KindFileUpdate = "file_update"
)

// IsHistory reports whether messages of kind k show in the history.
func IsHistory(kind string) bool { return kind == KindText || kind == KindNudge || kind == KindFile }

// Status is where a message stands. It only ever moves forward: an update
// to an earlier status is ignored.
//
// Outgoing: queued (in the outbox) -> sent (written to a stream, not yet
// acknowledged; the node knows this, the database does not) -> stored
// (sealed in the contact's mailbox on a rendezvous: the contact was
// offline) -> delivered (the contact's node stored it) -> read (the
// contact marked it read). Failed is terminal for natter's own efforts: a
// stored message the mailbox dropped before the contact fetched it (or the
// contact's node refused); it left the outbox and natter no longer tries.
// It is numbered below queued so that proof of delivery arriving after all
// (an ack or a receipt) still moves it to delivered or read.
// Incoming: delivered (we stored it) -> read (we marked it read).
type Status int

// Status values; the numbers are stored. 2 (stored) was reserved for the
// offline mailbox since the chat schema (migration 2), so no row holds it
// from before; failed (-1) is new with the mailbox (migration 4).
const (
	StatusFailed    Status = -1
	StatusQueued    Status = 0
	StatusSent      Status = 1
	StatusStored    Status = 2
	StatusDelivered Status = 3
	StatusRead      Status = 4
)

func (s Status) String() string {
	switch s {
	case StatusQueued:
		return "queued"
	case StatusSent:
		return "sent"
	case StatusStored:
		return "stored"
	case StatusFailed:
		return "failed"
	case StatusDelivered:
		return "delivered"
	case StatusRead:
		return "read"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Message is one history entry.
type Message struct {
	// Pos orders the history: arrival order on this node.
	Pos      int64
	ID       chat.MsgID
	Peer     peer.ID // the conversation: the contact
	Outgoing bool
	Kind     string
	Text     string
	Seq      uint64
	// SentAt is the sender's clock; ReceivedAt ours (incoming only).
	SentAt     time.Time
	ReceivedAt time.Time
	Status     Status
	StatusAt   time.Time
	// Via is how an outgoing message reached the contact (direct,
	// relayed or mailbox), once delivered.
	Via string
	// Reason says why a failed message failed.
	Reason string
}

// NewOutgoing is a message to queue for a contact.
type NewOutgoing struct {
	ID     chat.MsgID
	Peer   peer.ID
	Kind   string
	Text   string
	Refs   []chat.MsgID // receipts
	SentAt time.Time
	// Payload is the file offer or update of a file message.
	Payload []byte
}

// OutboxEntry is a queued message with its sequence number.
type OutboxEntry struct {
	NewOutgoing
	Seq uint64
	// Stored is true once it is sealed in the contact's mailbox (it stays
	// in the outbox until the contact has it).
	Stored bool
}

// Incoming is one validated message received from a contact.
type Incoming struct {
	ID     chat.MsgID
	Kind   string
	Text   string
	Seq    uint64
	SentAt time.Time
	Refs   []chat.MsgID
	// Offer is set for a file offer, Update for a file update.
	Offer  *IncomingOffer
	Update *IncomingUpdate
}

// StatusChange reports that one of our messages moved to Status.
type StatusChange struct {
	ID     chat.MsgID
	Status Status
	// Via is how it travelled, when the change says so (an ack: the
	// link's path; a receipt for a message stored in a mailbox:
	// "mailbox").
	Via string
	// Reason, for StatusFailed.
	Reason string
}

// Received is what StoreIncoming did.
type Received struct {
	// New are the history messages stored now (duplicates are left out).
	New []Message
	// Changed are our messages whose status the batch's receipts moved.
	Changed []StatusChange
	// Transfers are the transfers the batch created or changed.
	Transfers []Transfer
	// Queued are the messages queued for the sender in the same
	// transaction (answers to file offers).
	Queued []OutboxEntry
}

// Enqueue assigns each message the next sequence number of its
// conversation and stores it in the outbox (and, for history kinds, in the
// history as queued), all in one durable transaction.
func (s *Store) Enqueue(ctx context.Context, msgs []NewOutgoing) ([]OutboxEntry, error) {
	var out []OutboxEntry
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = enqueueTx(ctx, tx, msgs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue message: %w", err)
	}
	return out, nil
}

func enqueueTx(ctx context.Context, tx *sql.Tx, msgs []NewOutgoing) ([]OutboxEntry, error) {
	out := make([]OutboxEntry, 0, len(msgs))
	for _, m := range msgs {
		var seq uint64
		err := tx.QueryRowContext(ctx, `INSERT INTO conversations (peer_id, out_seq) VALUES (?, 1)
			ON CONFLICT(peer_id) DO UPDATE SET out_seq = out_seq + 1 RETURNING out_seq`, m.Peer.String()).Scan(&seq)
		if err != nil {
			return nil, err
		}
		sent := m.SentAt.UnixMilli()
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, peer_id, seq, kind, text, refs, sent_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID[:], m.Peer.String(), seq, m.Kind, m.Text, joinIDs(m.Refs), sent, m.Payload); err != nil {
			return nil, err
		}
		if IsHistory(m.Kind) {
			if _, err := tx.ExecContext(ctx, `INSERT INTO messages (id, peer_id, outgoing, kind, text, seq, sent_at, status, status_at)
				VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)`, m.ID[:], m.Peer.String(), m.Kind, m.Text, seq, sent, StatusQueued, sent); err != nil {
				return nil, err
			}
		}
		out = append(out, OutboxEntry{NewOutgoing: m, Seq: seq})
	}
	return out, nil
}

// Outbox returns up to limit queued messages for p with a sequence number
// above afterSeq, in order.
func (s *Store) Outbox(ctx context.Context, p peer.ID, afterSeq uint64, limit int) ([]OutboxEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT o.id, o.seq, o.kind, o.text, o.refs, o.sent_at, o.payload, d.msg_id IS NOT NULL FROM outbox o
		LEFT JOIN mailbox_deposits d ON d.msg_id = o.id AND d.state >= ?
		WHERE o.peer_id = ? AND o.seq > ? ORDER BY o.seq LIMIT ?`, depositStored, p.String(), afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", classify(err))
	}
	defer rows.Close()
	var out []OutboxEntry
	for rows.Next() {
		var (
			e    = OutboxEntry{NewOutgoing: NewOutgoing{Peer: p}}
			id   []byte
			refs []byte
			sent int64
		)
		if err := rows.Scan(&id, &e.Seq, &e.Kind, &e.Text, &refs, &sent, &e.Payload, &e.Stored); err != nil {
			return nil, fmt.Errorf("read outbox: %w", classify(err))
		}
		if len(id) != chat.IDLen {
			return nil, fmt.Errorf("outbox entry with a %d-byte id", len(id))
		}
		e.ID = chat.MsgID(id)
		e.Refs = splitIDs(refs)
		e.SentAt = time.UnixMilli(sent)
		out = append(out, e)
	}
	return out, rows.Err()
}

// OutboxLen counts the messages queued for p.
func (s *Store) OutboxLen(ctx context.Context, p peer.ID) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE peer_id = ?`, p.String()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count outbox: %w", classify(err))
	}
	return n, nil
}

// Queued counts the messages queued per contact.
func (s *Store) Queued(ctx context.Context) (map[peer.ID]int, error) {
	return s.countPerPeer(ctx, `SELECT peer_id, count(*) FROM outbox GROUP BY peer_id`)
}

// Acked records that p's node acknowledged (durably stored) the messages
// ids: they leave the outbox and become delivered, via the given path.
//
// It does not wait for the disk: the acknowledgement is already durable
// at the receiver, so if a power cut loses this write the messages are
// sent again on restart and the receiver de-duplicates them. That keeps
// one fsync off the send -> delivered path.
func (s *Store) Acked(ctx context.Context, p peer.ID, ids []chat.MsgID, via string) ([]StatusChange, error) {
	var changed []StatusChange
	now := time.Now().UnixMilli()
	err := s.lazyTx(ctx, func(tx *sql.Tx) error {
		del, err := tx.PrepareContext(ctx, `DELETE FROM outbox WHERE id = ? AND peer_id = ?`)
		if err != nil {
			return err
		}
		defer del.Close()
		upd, err := tx.PrepareContext(ctx, `UPDATE messages SET status = ?, status_at = ?, via = ?, reason = ''
			WHERE id = ? AND peer_id = ? AND outgoing = 1 AND status < ? RETURNING id`)
		if err != nil {
			return err
		}
		defer upd.Close()
		for _, id := range ids {
			if _, err := del.ExecContext(ctx, id[:], p.String()); err != nil {
				return err
			}
			ok, err := returnsRow(upd.QueryContext(ctx, StatusDelivered, now, via, id[:], p.String(), StatusDelivered))
			if err != nil {
				return err
			}
			if ok {
				changed = append(changed, StatusChange{ID: id, Status: StatusDelivered, Via: via})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record delivery: %w", err)
	}
	return changed, nil
}

// StoreIncoming stores one batch from contact from in one durable
// transaction: history messages not seen before (by id) are added, in the
// batch's order; receipts move our messages forward.
func (s *Store) StoreIncoming(ctx context.Context, from peer.ID, in []Incoming) (Received, error) {
	var res Received
	now := time.Now()
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		res = Received{}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO messages (id, peer_id, outgoing, kind, text, seq, sent_at, received_at, status, status_at)
			VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING RETURNING pos`)
		if err != nil {
			return err
		}
		defer ins.Close()
		// A receipt for a message stored in a mailbox says it reached the
		// contact through the mailbox (receipts are only ever sent for
		// messages that arrived without a stream to acknowledge them on).
		upd, err := tx.PrepareContext(ctx, `UPDATE messages SET status = ?, status_at = ?,
			via = CASE WHEN status = ? AND via = '' THEN 'mailbox' ELSE via END, reason = ''
			WHERE id = ? AND peer_id = ? AND outgoing = 1 AND status < ? RETURNING via`)
		if err != nil {
			return err
		}
		defer upd.Close()
		del, err := tx.PrepareContext(ctx, `DELETE FROM outbox WHERE id = ? AND peer_id = ?`)
		if err != nil {
			return err
		}
		defer del.Close()
		var maxSeq uint64
		for _, m := range in {
			switch m.Kind {
			case KindText, KindNudge, KindFile:
				var pos int64
				err := ins.QueryRowContext(ctx, m.ID[:], from.String(), m.Kind, m.Text, m.Seq, m.SentAt.UnixMilli(),
					now.UnixMilli(), StatusDelivered, now.UnixMilli()).Scan(&pos)
				if errors.Is(err, sql.ErrNoRows) {
					continue // seen before
				}
				if err != nil {
					return err
				}
				maxSeq = max(maxSeq, m.Seq)
				res.New = append(res.New, Message{
					Pos: pos, ID: m.ID, Peer: from, Kind: m.Kind, Text: m.Text, Seq: m.Seq,
					SentAt: m.SentAt, ReceivedAt: now, Status: StatusDelivered, StatusAt: now,
				})
				if m.Offer != nil {
					if err := storeOfferTx(ctx, tx, from, m.ID, m.Offer, &res); err != nil {
						return err
					}
				}
			case KindFileUpdate:
				if m.Update != nil {
					if err := applyUpdateTx(ctx, tx, from, m.Update, &res); err != nil {
						return err
					}
				}
			case KindDelivered, KindRead:
				st := StatusDelivered
				if m.Kind == KindRead {
					st = StatusRead
				}
				for _, ref := range m.Refs {
					// They have it: no need to send it again.
					if _, err := del.ExecContext(ctx, ref[:], from.String()); err != nil {
						return err
					}
					var via string
					err := upd.QueryRowContext(ctx, st, now.UnixMilli(), StatusStored, ref[:], from.String(), st).Scan(&via)
					if errors.Is(err, sql.ErrNoRows) {
						continue
					}
					if err != nil {
						return err
					}
					res.Changed = append(res.Changed, StatusChange{ID: ref, Status: st, Via: via})
				}
			}
		}
		if maxSeq > 0 {
			_, err := tx.ExecContext(ctx, `INSERT INTO conversations (peer_id, in_seq) VALUES (?, ?)
				ON CONFLICT(peer_id) DO UPDATE SET in_seq = max(in_seq, excluded.in_seq)`, from.String(), maxSeq)
			return err
		}
		return nil
	})
	if err != nil {
		return Received{}, fmt.Errorf("store messages: %w", err)
	}
	return res, nil
}

// MarkRead marks every unread message from p read and returns their ids.
// If receipts is true, read receipts naming them are queued for p in the
// same transaction.
func (s *Store) MarkRead(ctx context.Context, p peer.ID, receipts bool) ([]chat.MsgID, []OutboxEntry, error) {
	var (
		ids  []chat.MsgID
		outs []OutboxEntry
	)
	now := time.Now()
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		ids, outs = nil, nil
		rows, err := tx.QueryContext(ctx, `UPDATE messages SET status = ?, status_at = ?
			WHERE peer_id = ? AND outgoing = 0 AND status < ? RETURNING id`, StatusRead, now.UnixMilli(), p.String(), StatusRead)
		if err != nil {
			return err
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, chat.MsgID(b))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if !receipts || len(ids) == 0 {
			return nil
		}
		slices.SortFunc(ids, func(a, b chat.MsgID) int { return strings.Compare(string(a[:]), string(b[:])) })
		var rs []NewOutgoing
		for chunk := range slices.Chunk(ids, chat.MaxRefs) {
			rs = append(rs, NewOutgoing{ID: chat.NewID(), Peer: p, Kind: KindRead, Refs: chunk, SentAt: now})
		}
		outs, err = enqueueTx(ctx, tx, rs)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("mark read: %w", err)
	}
	return ids, outs, nil
}

const messageCols = `pos, id, peer_id, outgoing, kind, text, seq, sent_at, received_at, status, status_at, via, reason`

// History returns up to limit messages of the conversation with p, oldest
// first, ending just before the message before (or at the newest if before
// is nil).
func (s *Store) History(ctx context.Context, p peer.ID, before *chat.MsgID, limit int) ([]Message, error) {
	bound := int64(1<<63 - 1)
	if before != nil {
		var pos int64
		err := s.db.QueryRowContext(ctx, `SELECT pos FROM messages WHERE id = ? AND peer_id = ?`, before[:], p.String()).Scan(&pos)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("message %s in this conversation: %w", before, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("read history: %w", classify(err))
		}
		bound = pos
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+messageCols+` FROM messages
		WHERE peer_id = ? AND pos < ? ORDER BY pos DESC LIMIT ?`, p.String(), bound, limit)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", classify(err))
	}
	out, err := scanMessages(rows)
	slices.Reverse(out)
	return out, err
}

// Search finds history messages matching every word of query (a word
// ending in * matches as a prefix), in the conversation with p if p is not
// empty; it returns the newest limit matches, oldest first.
func (s *Store) Search(ctx context.Context, query string, p peer.ID, limit int) ([]Message, error) {
	q, err := ftsQuery(query)
	if err != nil {
		return nil, err
	}
	sqlq := `SELECT ` + prefixCols("m.", messageCols) + ` FROM messages_fts f JOIN messages m ON m.pos = f.rowid
		WHERE messages_fts MATCH ?`
	args := []any{q}
	if p != "" {
		sqlq += ` AND m.peer_id = ?`
		args = append(args, p.String())
	}
	sqlq += ` ORDER BY m.pos DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, sqlq, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", classify(err))
	}
	out, err := scanMessages(rows)
	slices.Reverse(out)
	return out, err
}

// ErrBadQuery is returned by Search for a query with no words.
var ErrBadQuery = errors.New("search needs at least one word")

// ftsQuery turns user words into an FTS5 query that cannot be a syntax
// error: every word becomes a quoted string (AND-ed), a trailing * a prefix
// match.
func ftsQuery(q string) (string, error) {
	var parts []string
	for _, w := range strings.Fields(q) {
		prefix := strings.HasSuffix(w, "*")
		w = strings.TrimRight(w, "*")
		if w == "" {
			continue
		}
		p := `"` + strings.ReplaceAll(w, `"`, `""`) + `"`
		if prefix {
			p += "*"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "", ErrBadQuery
	}
	return strings.Join(parts, " "), nil
}

func prefixCols(prefix, cols string) string {
	fs := strings.Split(cols, ", ")
	for i := range fs {
		fs[i] = prefix + fs[i]
	}
	return strings.Join(fs, ", ")
}

// MessageByID returns one history message.
func (s *Store) MessageByID(ctx context.Context, id chat.MsgID) (Message, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+messageCols+` FROM messages WHERE id = ?`, id[:])
	if err != nil {
		return Message{}, fmt.Errorf("read message: %w", classify(err))
	}
	ms, err := scanMessages(rows)
	if err != nil {
		return Message{}, err
	}
	if len(ms) == 0 {
		return Message{}, fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	return ms[0], nil
}

// Unread counts unread incoming messages per contact.
func (s *Store) Unread(ctx context.Context) (map[peer.ID]int, error) {
	return s.countPerPeer(ctx, `SELECT peer_id, count(*) FROM messages
		WHERE outgoing = 0 AND status < ? GROUP BY peer_id`, StatusRead)
}

// countPerPeer runs a (peer_id, count) query.
func (s *Store) countPerPeer(ctx context.Context, q string, args ...any) (map[peer.ID]int, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("count messages: %w", classify(err))
	}
	defer rows.Close()
	out := map[peer.ID]int{}
	for rows.Next() {
		var (
			id string
			n  int
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("count messages: %w", classify(err))
		}
		if p, err := peer.Decode(id); err == nil {
			out[p] = n
		}
	}
	return out, rows.Err()
}

func scanMessages(rows *sql.Rows) ([]Message, error) {
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var (
			m                    Message
			id                   []byte
			pid                  string
			sent, recv, statusAt int64
			outgoing             bool
		)
		if err := rows.Scan(&m.Pos, &id, &pid, &outgoing, &m.Kind, &m.Text, &m.Seq, &sent, &recv, &m.Status, &statusAt, &m.Via, &m.Reason); err != nil {
			return nil, fmt.Errorf("read message: %w", classify(err))
		}
		if len(id) != chat.IDLen {
			return nil, fmt.Errorf("stored message with a %d-byte id", len(id))
		}
		p, err := peer.Decode(pid)
		if err != nil {
			return nil, fmt.Errorf("stored peer id %q: %w", pid, err)
		}
		m.ID, m.Peer, m.Outgoing = chat.MsgID(id), p, outgoing
		m.SentAt, m.StatusAt = time.UnixMilli(sent), time.UnixMilli(statusAt)
		if recv != 0 {
			m.ReceivedAt = time.UnixMilli(recv)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read messages: %w", classify(err))
	}
	return out, nil
}

// returnsRow reports whether a RETURNING statement produced a row.
func returnsRow(rows *sql.Rows, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	defer rows.Close()
	ok := rows.Next()
	return ok, rows.Err()
}

func joinIDs(ids []chat.MsgID) []byte {
	if len(ids) == 0 {
		return nil
	}
	b := make([]byte, 0, len(ids)*chat.IDLen)
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

func splitIDs(b []byte) []chat.MsgID {
	var out []chat.MsgID
	for len(b) >= chat.IDLen {
		out = append(out, chat.MsgID(b[:chat.IDLen]))
		b = b[chat.IDLen:]
	}
	return out
}
