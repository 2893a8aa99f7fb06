package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// selfProfile is the peer_id of our own row in profiles.
const selfProfile = "self"

// Profile is a user's profile: ours, or a contact's cached copy. Version
// grows with every change, so a cached copy is fresh when its version is
// the one the contact announces.
type Profile struct {
	Version    uint64
	Name       string
	Status     string
	Avatar     []byte
	AvatarType string
	UpdatedAt  time.Time
}

const profileCols = `version, name, status, avatar, avatar_type, updated_at`

func scanProfile(r scanner) (Profile, error) {
	var (
		p       Profile
		version int64
		updated int64
	)
	if err := r.Scan(&version, &p.Name, &p.Status, &p.Avatar, &p.AvatarType, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Profile{}, ErrNotFound
		}
		return Profile{}, fmt.Errorf("read profile: %w", classify(err))
	}
	p.Version = uint64(version)
	p.UpdatedAt = time.UnixMilli(updated)
	return p, nil
}

// OwnProfile returns our profile. Before the first change it is version 0
// with the name given at init.
func (s *Store) OwnProfile(ctx context.Context) (Profile, error) {
	p, err := scanProfile(s.db.QueryRowContext(ctx, `SELECT `+profileCols+` FROM profiles WHERE peer_id = ?`, selfProfile))
	if errors.Is(err, ErrNotFound) {
		name, err := s.Setting(ctx, SettingName)
		return Profile{Name: name}, err
	}
	return p, err
}

// SetOwnProfile applies edit to our profile, bumps its version and stores
// it (with the name setting kept in step), in one transaction.
func (s *Store) SetOwnProfile(ctx context.Context, edit func(*Profile)) (Profile, error) {
	var out Profile
	err := s.Tx(ctx, func(tx *sql.Tx) error {
		p, err := scanProfile(tx.QueryRowContext(ctx, `SELECT `+profileCols+` FROM profiles WHERE peer_id = ?`, selfProfile))
		if errors.Is(err, ErrNotFound) {
			var name string
			if err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, SettingName).Scan(&name); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			p, err = Profile{Name: name}, nil
		}
		if err != nil {
			return err
		}
		edit(&p)
		p.Version++
		p.UpdatedAt = time.Now()
		if _, err := tx.ExecContext(ctx, `INSERT INTO profiles (peer_id, `+profileCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(peer_id) DO UPDATE SET version = excluded.version, name = excluded.name, status = excluded.status,
			avatar = excluded.avatar, avatar_type = excluded.avatar_type, updated_at = excluded.updated_at`,
			selfProfile, int64(p.Version), p.Name, p.Status, p.Avatar, p.AvatarType, p.UpdatedAt.UnixMilli()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value`, SettingName, p.Name); err != nil {
			return err
		}
		out = p
		return nil
	})
	if err != nil {
		return Profile{}, fmt.Errorf("update profile: %w", classify(err))
	}
	return out, nil
}

// ContactProfile returns the cached profile of p, or ErrNotFound.
func (s *Store) ContactProfile(ctx context.Context, p peer.ID) (Profile, error) {
	return scanProfile(s.db.QueryRowContext(ctx, `SELECT `+profileCols+` FROM profiles WHERE peer_id = ?`, p.String()))
}

// SaveContactProfile caches p's profile. It only ever moves forward: a
// version not newer than the cached one is ignored (false).
func (s *Store) SaveContactProfile(ctx context.Context, id peer.ID, p Profile) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO profiles (peer_id, `+profileCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(peer_id) DO UPDATE SET version = excluded.version, name = excluded.name, status = excluded.status,
		avatar = excluded.avatar, avatar_type = excluded.avatar_type, updated_at = excluded.updated_at
		WHERE excluded.version > profiles.version`,
		id.String(), int64(p.Version), p.Name, p.Status, p.Avatar, p.AvatarType, time.Now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("save profile of %s: %w", id.ShortString(), classify(err))
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
