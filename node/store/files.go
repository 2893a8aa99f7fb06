package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/chat"
)

// TransferState is where a transfer stands. A transfer only ever leaves the first four; the last
// four are final.
//
// Outgoing: offered (the offer is queued or delivered) -> accepted (the
// receiver said yes) -> transferring (data moving) <-> paused
// (interrupted; the receiver will ask again) -> done (the receiver has it,
// verified). Incoming: offered (waiting for the user) -> accepted ->
// transferring <-> paused -> done (verified and saved). Either: rejected
// (the receiver said no), cancelled (a user cancelled), failed (cannot
// complete: reason says why).
type TransferState string

// The transfer states, as stored and as the control API shows them.
const (
	TransferOffered      TransferState = "offered"
	TransferAccepted     TransferState = "accepted"
	TransferTransferring TransferState = "transferring"
	TransferPaused       TransferState = "paused"
	TransferDone         TransferState = "done"
	TransferFailed       TransferState = "failed"
	TransferRejected     TransferState = "rejected"
	TransferCancelled    TransferState = "cancelled"
)

// FinalState reports whether a transfer in state s is over.
func FinalState(s TransferState) bool {
	switch s {
	case TransferDone, TransferFailed, TransferRejected, TransferCancelled:
		return true
	}
	return false
}

// Transfer is one file transfer, in either direction.
type Transfer struct {
	// ID is the offer message's id.
	ID       chat.MsgID
	Peer     peer.ID
	Outgoing bool
	State    TransferState
	// Name is the offered name (outgoing) or the sanitised one we show
	// and save under (incoming).
	Name      string
	Size      int64
	SHA256    [32]byte
	MediaType string
	Note      string
	ChunkSize int
	Root      [32]byte
	// Path is the file sent (outgoing) or where the received file was
	// saved (incoming, once chosen).
	Path string
	// SrcMtime is the sent file's modification time (Unix ns) when it
	// was offered.
	SrcMtime int64
	// DoneBytes is, incoming, the verified prefix of the partial file
	// that is on disk (fsynced); outgoing, how far the receiver last
	// fetched.
	DoneBytes int64
	// HashState is the SHA-256 state after DoneBytes (incoming).
	HashState []byte
	Reason    string
	// Via is the path the data last took: direct or relayed.
	Via       string
	CreatedAt time.Time
	UpdatedAt time.Time
}

const transferCols = `id, peer_id, outgoing, state, name, size, sha256, media_type, note, chunk_size, chunks_root,
	path, src_mtime, done_bytes, hash_state, reason, via, created_at, updated_at`

func scanTransfer(r scanner) (Transfer, error) {
	var (
		t                Transfer
		id, sum, root    []byte
		pid              string
		created, updated int64
	)
	if err := r.Scan(&id, &pid, &t.Outgoing, &t.State, &t.Name, &t.Size, &sum, &t.MediaType, &t.Note, &t.ChunkSize, &root,
		&t.Path, &t.SrcMtime, &t.DoneBytes, &t.HashState, &t.Reason, &t.Via, &created, &updated); err != nil {
		return t, err
	}
	if len(id) != chat.IDLen || len(sum) != 32 || len(root) != 32 {
		return t, fmt.Errorf("stored transfer with malformed ids or hashes")
	}
	p, err := peer.Decode(pid)
	if err != nil {
		return t, fmt.Errorf("stored peer id %q: %w", pid, err)
	}
	t.ID, t.Peer = chat.MsgID(id), p
	copy(t.SHA256[:], sum)
	copy(t.Root[:], root)
	t.CreatedAt, t.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
	return t, nil
}

func insertTransferTx(ctx context.Context, tx *sql.Tx, t Transfer, sums []byte) error {
	now := time.Now().UnixMilli()
	_, err := tx.ExecContext(ctx, `INSERT INTO transfers (id, peer_id, outgoing, state, name, size, sha256, media_type, note, chunk_size,
		chunks_root, sums, path, src_mtime, done_bytes, reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID[:], t.Peer.String(), t.Outgoing, t.State, t.Name, t.Size, t.SHA256[:], t.MediaType, t.Note, t.ChunkSize,
		t.Root[:], sums, t.Path, t.SrcMtime, t.DoneBytes, t.Reason, now, now)
	return err
}

// OfferFile records an outgoing transfer with its chunk sums and queues
// its offer (msg, of kind file, whose id is the transfer's), in one
// durable transaction.
func (s *Store) OfferFile(ctx context.Context, t Transfer, sums []byte, msg NewOutgoing) (OutboxEntry, error) {
	var out []OutboxEntry
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		if err := insertTransferTx(ctx, tx, t, sums); err != nil {
			return err
		}
		var err error
		out, err = enqueueTx(ctx, tx, []NewOutgoing{msg})
		return err
	})
	if err != nil {
		return OutboxEntry{}, fmt.Errorf("offer file: %w", err)
	}
	return out[0], nil
}

// IncomingOffer is a file offer from a contact as the node decided to
// record it: the transfer (offered, accepted or failed) and an answer to
// queue in the same transaction.
type IncomingOffer struct {
	Transfer Transfer
	Reply    *NewOutgoing
}

// IncomingUpdate is a contact's change to one of our transfers with it.
type IncomingUpdate struct {
	Transfer chat.MsgID
	// State is accepted, rejected, done, cancelled or failed.
	State  TransferState
	Reason string
}

func storeOfferTx(ctx context.Context, tx *sql.Tx, from peer.ID, id chat.MsgID, o *IncomingOffer, res *Received) error {
	t := o.Transfer
	t.ID, t.Peer, t.Outgoing = id, from, false
	if err := insertTransferTx(ctx, tx, t, nil); err != nil {
		return err
	}
	now := time.Now()
	t.CreatedAt, t.UpdatedAt = now, now
	res.Transfers = append(res.Transfers, t)
	if o.Reply != nil {
		q, err := enqueueTx(ctx, tx, []NewOutgoing{*o.Reply})
		if err != nil {
			return err
		}
		res.Queued = append(res.Queued, q...)
	}
	return nil
}

// remoteTransition applies a state a contact reports to t: only moves that
// side may make, and never out of a final state. It reports whether t
// changed.
func remoteTransition(t *Transfer, state TransferState, reason string) bool {
	if FinalState(t.State) {
		return false
	}
	switch state {
	case TransferAccepted:
		if !t.Outgoing || t.State != TransferOffered {
			return false
		}
	case TransferRejected:
		if !t.Outgoing {
			return false
		}
	case TransferDone:
		if !t.Outgoing {
			return false
		}
		t.DoneBytes = t.Size
	case TransferCancelled, TransferFailed:
	default:
		return false
	}
	t.State, t.Reason = state, reason
	return true
}

func applyUpdateTx(ctx context.Context, tx *sql.Tx, from peer.ID, u *IncomingUpdate, res *Received) error {
	t, err := scanTransfer(tx.QueryRowContext(ctx, `SELECT `+transferCols+` FROM transfers WHERE id = ? AND peer_id = ?`, u.Transfer[:], from.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil // not ours with this contact: ignore
	}
	if err != nil {
		return err
	}
	if !remoteTransition(&t, u.State, u.Reason) {
		return nil
	}
	t.UpdatedAt = time.Now()
	if _, err := tx.ExecContext(ctx, `UPDATE transfers SET state = ?, reason = ?, done_bytes = ?, updated_at = ?,
		sums = CASE WHEN ? THEN NULL ELSE sums END WHERE id = ?`,
		t.State, t.Reason, t.DoneBytes, t.UpdatedAt.UnixMilli(), FinalState(t.State), t.ID[:]); err != nil {
		return err
	}
	res.Transfers = append(res.Transfers, t)
	return nil
}

// Transfers lists every transfer, newest last.
func (s *Store) Transfers(ctx context.Context) ([]Transfer, error) {
	return s.queryTransfers(ctx, `SELECT `+transferCols+` FROM transfers ORDER BY created_at, id`)
}

// ActiveTransfers lists the transfers that are not over.
func (s *Store) ActiveTransfers(ctx context.Context) ([]Transfer, error) {
	return s.queryTransfers(ctx, `SELECT `+transferCols+` FROM transfers
		WHERE state NOT IN ('done', 'failed', 'rejected', 'cancelled') ORDER BY created_at, id`)
}

func (s *Store) queryTransfers(ctx context.Context, q string, args ...any) ([]Transfer, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read transfers: %w", classify(err))
	}
	defer rows.Close()
	var out []Transfer
	for rows.Next() {
		t, err := scanTransfer(rows)
		if err != nil {
			return nil, fmt.Errorf("read transfers: %w", classify(err))
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// GetTransfer returns one transfer.
func (s *Store) GetTransfer(ctx context.Context, id chat.MsgID) (Transfer, error) {
	t, err := scanTransfer(s.db.QueryRowContext(ctx, `SELECT `+transferCols+` FROM transfers WHERE id = ?`, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("transfer %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("read transfer: %w", classify(err))
	}
	return t, nil
}

// ErrAmbiguous is returned by FindTransfer for a prefix that matches
// several transfers.
var ErrAmbiguous = errors.New("matches several transfers")

// FindTransfer resolves a transfer reference: its id, or a unique prefix
// of it (at least 4 hex digits; dashes are ignored).
func (s *Store) FindTransfer(ctx context.Context, ref string) (Transfer, error) {
	if id, err := chat.ParseID(ref); err == nil {
		return s.GetTransfer(ctx, id)
	}
	h := strings.ToUpper(strings.ReplaceAll(ref, "-", ""))
	if _, err := hex.DecodeString(h + strings.Repeat("0", len(h)%2)); err != nil || len(h) < 4 || len(h) > 32 {
		return Transfer{}, fmt.Errorf("%q is not a transfer id: %w", ref, ErrNotFound)
	}
	ts, err := s.queryTransfers(ctx, `SELECT `+transferCols+` FROM transfers WHERE hex(id) LIKE ? LIMIT 2`, h+"%")
	if err != nil {
		return Transfer{}, err
	}
	switch len(ts) {
	case 0:
		return Transfer{}, fmt.Errorf("transfer %q: %w", ref, ErrNotFound)
	case 1:
		return ts[0], nil
	}
	return Transfer{}, fmt.Errorf("%q %w; give more of the id", ref, ErrAmbiguous)
}

// TransferSums returns a transfer's chunk hash list (nil if not known
// yet).
func (s *Store) TransferSums(ctx context.Context, id chat.MsgID) ([]byte, error) {
	var sums []byte
	err := s.db.QueryRowContext(ctx, `SELECT sums FROM transfers WHERE id = ?`, id[:]).Scan(&sums)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("transfer %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read chunk sums: %w", classify(err))
	}
	return sums, nil
}

// SetTransferSums stores a verified chunk hash list (incoming).
func (s *Store) SetTransferSums(ctx context.Context, id chat.MsgID, sums []byte) error {
	if sums == nil {
		sums = []byte{}
	}
	_, err := s.db.ExecContext(ctx, `UPDATE transfers SET sums = ? WHERE id = ?`, sums, id[:])
	if err != nil {
		return fmt.Errorf("store chunk sums: %w", classify(err))
	}
	return nil
}

// Checkpoint records, durably, that the first done bytes of an incoming
// transfer are verified and on disk, with the SHA-256 state after them.
// Call it only after the partial file was fsynced up to done.
func (s *Store) Checkpoint(ctx context.Context, id chat.MsgID, done int64, hashState []byte) error {
	_, err := s.db.ExecContext(ctx, `UPDATE transfers SET done_bytes = ?, hash_state = ?, updated_at = ? WHERE id = ? AND NOT outgoing`,
		done, hashState, time.Now().UnixMilli(), id[:])
	if err != nil {
		return fmt.Errorf("checkpoint transfer: %w", classify(err))
	}
	return nil
}

// UpdateTransfer changes one transfer in a transaction: edit sees the
// current row and changes State, Reason, Path, Via or DoneBytes/HashState;
// once the state is final the chunk sums are dropped. edit
// may return a message to queue in the same transaction (a file update for
// the contact). If edit returns an error nothing changes. It returns the
// transfer as stored and the queued message, if any.
func (s *Store) UpdateTransfer(ctx context.Context, id chat.MsgID, edit func(t *Transfer) (*NewOutgoing, error)) (Transfer, *OutboxEntry, error) {
	var (
		t   Transfer
		out *OutboxEntry
	)
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		out = nil
		t, err = scanTransfer(tx.QueryRowContext(ctx, `SELECT `+transferCols+` FROM transfers WHERE id = ?`, id[:]))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("transfer %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		msg, err := edit(&t)
		if err != nil {
			return err
		}
		t.UpdatedAt = time.Now()
		if _, err := tx.ExecContext(ctx, `UPDATE transfers SET state = ?, reason = ?, path = ?, via = ?, done_bytes = ?, hash_state = ?,
			updated_at = ?, sums = CASE WHEN ? THEN NULL ELSE sums END WHERE id = ?`,
			t.State, t.Reason, t.Path, t.Via, t.DoneBytes, t.HashState, t.UpdatedAt.UnixMilli(), FinalState(t.State), t.ID[:]); err != nil {
			return err
		}
		if msg != nil {
			q, err := enqueueTx(ctx, tx, []NewOutgoing{*msg})
			if err != nil {
				return err
			}
			out = &q[0]
		}
		return nil
	})
	if err != nil {
		return t, nil, err
	}
	return t, out, nil
}
