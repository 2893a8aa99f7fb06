package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ContactState is where a contact stands. Only accepted contacts may chat;
// the others belong to the friend-request flow. The values are the control
// API's strings.
type ContactState string

// The contact states.
const (
	StateAccepted   ContactState = "accepted"
	StatePendingIn  ContactState = "pending_in"
	StatePendingOut ContactState = "pending_out"
	StateBlocked    ContactState = "blocked"
)

// Contact is a peer the user knows.
type Contact struct {
	PeerID peer.ID
	// Name is the user's local name for the contact ("" if none); unique,
	// case-insensitively.
	Name  string
	State ContactState
	// Rendezvous are rendezvous servers the contact said it uses (from its
	// invite), tried when looking it up.
	Rendezvous []ma.Multiaddr
	// ReadReceipts overrides, for this contact, whether marking its
	// messages read tells it so (nil: the node's default).
	ReadReceipts *bool
	// Note is the friend request's note: the contact's for pending_in,
	// ours for pending_out.
	Note string
	// DirName is the directory name (rendezvous names) the contact was
	// added by; "" if it was added by peer ID or invite.
	DirName   string
	CreatedAt time.Time
	UpdatedAt time.Time
}

const contactCols = `peer_id, name, state, rendezvous, read_receipts, note, dir_name, created_at, updated_at`

// Label is how the contact is shown: its name, or its peer ID.
func (c Contact) Label() string {
	if c.Name != "" {
		return c.Name
	}
	return c.PeerID.String()
}

// AddContact inserts c. It returns ErrExists if the peer or the name is
// already taken.
func (s *Store) AddContact(ctx context.Context, c Contact) error {
	now := time.Now()
	if c.State == "" {
		c.State = StateAccepted
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO contacts (`+contactCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.PeerID.String(), c.Name, c.State, joinAddrs(c.Rendezvous), nullBool(c.ReadReceipts), c.Note, c.DirName, now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("add contact: %w", classify(err))
	}
	return nil
}

// UpdateContact rewrites the mutable fields of the contact with c.PeerID.
func (s *Store) UpdateContact(ctx context.Context, c Contact) error {
	res, err := s.db.ExecContext(ctx, `UPDATE contacts SET name = ?, state = ?, rendezvous = ?, read_receipts = ?, note = ?, dir_name = ?, updated_at = ? WHERE peer_id = ?`,
		c.Name, c.State, joinAddrs(c.Rendezvous), nullBool(c.ReadReceipts), c.Note, c.DirName, time.Now().UnixMilli(), c.PeerID.String())
	if err != nil {
		return fmt.Errorf("update contact: %w", classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("contact %s: %w", c.PeerID, ErrNotFound)
	}
	return nil
}

// RemoveContact deletes the contact with id.
func (s *Store) RemoveContact(ctx context.Context, id peer.ID) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM contacts WHERE peer_id = ?`, id.String())
	if err != nil {
		return fmt.Errorf("remove contact: %w", classify(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("contact %s: %w", id, ErrNotFound)
	}
	return nil
}

// Contacts lists all contacts, by name then peer ID.
func (s *Store) Contacts(ctx context.Context) ([]Contact, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+contactCols+`
		FROM contacts ORDER BY name = '', name COLLATE NOCASE, peer_id`)
	if err != nil {
		return nil, fmt.Errorf("list contacts: %w", classify(err))
	}
	defer rows.Close()
	var out []Contact
	for rows.Next() {
		c, err := scanContact(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ContactByPeer returns the contact with id, or ErrNotFound.
func (s *Store) ContactByPeer(ctx context.Context, id peer.ID) (Contact, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+contactCols+`
		FROM contacts WHERE peer_id = ?`, id.String())
	return scanContact(row)
}

// FindContact resolves ref, a contact's name (case-insensitive) or peer ID.
func (s *Store) FindContact(ctx context.Context, ref string) (Contact, error) {
	if id, err := peer.Decode(ref); err == nil {
		if c, err := s.ContactByPeer(ctx, id); err == nil || !errors.Is(err, ErrNotFound) {
			return c, err
		}
	}
	row := s.db.QueryRowContext(ctx, `SELECT `+contactCols+`
		FROM contacts WHERE name = ? COLLATE NOCASE AND name != ''`, ref)
	c, err := scanContact(row)
	if errors.Is(err, ErrNotFound) {
		return Contact{}, fmt.Errorf("no contact named %q: %w", ref, ErrNotFound)
	}
	return c, err
}

// ContactByDirName returns the contact added by directory name dn, or
// ErrNotFound.
func (s *Store) ContactByDirName(ctx context.Context, dn string) (Contact, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+contactCols+`
		FROM contacts WHERE dir_name = ? AND dir_name != ''`, dn)
	return scanContact(row)
}

// CountState counts the contacts in state.
func (s *Store) CountState(ctx context.Context, state ContactState) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM contacts WHERE state = ?`, state).Scan(&n); err != nil {
		return 0, fmt.Errorf("count contacts: %w", classify(err))
	}
	return n, nil
}

type scanner interface{ Scan(...any) error }

func scanContact(r scanner) (Contact, error) {
	var (
		c                Contact
		id, rdv          string
		receipts         sql.NullBool
		created, updated int64
	)
	if err := r.Scan(&id, &c.Name, &c.State, &rdv, &receipts, &c.Note, &c.DirName, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Contact{}, ErrNotFound
		}
		return Contact{}, fmt.Errorf("read contact: %w", classify(err))
	}
	pid, err := peer.Decode(id)
	if err != nil {
		return Contact{}, fmt.Errorf("stored peer id %q: %w", id, err)
	}
	c.PeerID = pid
	c.Rendezvous = splitAddrs(rdv)
	if receipts.Valid {
		c.ReadReceipts = &receipts.Bool
	}
	c.CreatedAt = time.UnixMilli(created)
	c.UpdatedAt = time.UnixMilli(updated)
	return c, nil
}

func nullBool(b *bool) sql.NullBool {
	if b == nil {
		return sql.NullBool{}
	}
	return sql.NullBool{Bool: *b, Valid: true}
}

func joinAddrs(as []ma.Multiaddr) string {
	ss := make([]string, 0, len(as))
	for _, a := range as {
		ss = append(ss, a.String())
	}
	return strings.Join(ss, "\n")
}

func splitAddrs(s string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, line := range strings.Split(s, "\n") {
		if a, err := ma.NewMultiaddr(line); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// Setting returns a node-local setting ("" if unset).
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, classify(err))
	}
	return v, nil
}

// SetSetting stores a node-local setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("write setting %s: %w", key, classify(err))
	}
	return nil
}
