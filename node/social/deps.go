package social

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/contact"
	"github.com/natterim/natter/protocols/names"
	"github.com/natterim/natter/protocols/presence"
	"github.com/natterim/natter/protocols/profile"
)

// ContactStore is the part of the database about contacts.
type ContactStore interface {
	// ContactByPeer returns the contact p (store.ErrNotFound if none).
	ContactByPeer(ctx context.Context, p peer.ID) (store.Contact, error)
	// FindContact resolves a name or peer ID (store.ErrNotFound if none).
	FindContact(ctx context.Context, ref string) (store.Contact, error)
	// ContactByDirName returns the contact added by directory name dn.
	ContactByDirName(ctx context.Context, dn string) (store.Contact, error)
	// Contacts lists every contact.
	Contacts(ctx context.Context) ([]store.Contact, error)
	// CountState counts the contacts in state.
	CountState(ctx context.Context, state store.ContactState) (int, error)
	// AddContact stores a new contact (store.ErrExists if its name is taken).
	AddContact(ctx context.Context, c store.Contact) error
	// UpdateContact changes a contact (store.ErrExists if its name is taken).
	UpdateContact(ctx context.Context, c store.Contact) error
	// RemoveContact forgets a contact.
	RemoveContact(ctx context.Context, p peer.ID) error
	// RemoveWithdrawing forgets our pending_out contact p and queues the
	// withdrawal of our request, at, in one step.
	RemoveWithdrawing(ctx context.Context, p peer.ID, at time.Time) error
	// Withdrawals are the queued withdrawals and when each was queued.
	Withdrawals(ctx context.Context) (map[peer.ID]time.Time, error)
	// DropWithdrawal forgets p's queued withdrawal; it reports whether
	// there was one.
	DropWithdrawal(ctx context.Context, p peer.ID) (bool, error)
	// RemoveRejected forgets the requester p and records that we rejected
	// it at at, in one step; rejections before forgetBefore are dropped.
	RemoveRejected(ctx context.Context, p peer.ID, at, forgetBefore time.Time) error
	// RejectedAt is when we last rejected p (zero: not, or forgotten).
	RejectedAt(ctx context.Context, p peer.ID) (time.Time, error)
	// Setting reads a setting ("" if unset): our name, our presence.
	Setting(ctx context.Context, key string) (string, error)
}

// ProfileStore is the part of the database about our presence and
// profiles.
type ProfileStore interface {
	// Setting reads a setting ("" if unset).
	Setting(ctx context.Context, key string) (string, error)
	// SetSetting writes a setting.
	SetSetting(ctx context.Context, key, value string) error
	// OwnProfile is our profile.
	OwnProfile(ctx context.Context) (store.Profile, error)
	// SetOwnProfile edits our profile and bumps its version.
	SetOwnProfile(ctx context.Context, edit func(*store.Profile)) (store.Profile, error)
	// ContactProfile is p's profile as last fetched (store.ErrNotFound if none).
	ContactProfile(ctx context.Context, p peer.ID) (store.Profile, error)
	// SaveContactProfile caches p's profile if newer; it reports whether it was.
	SaveContactProfile(ctx context.Context, p peer.ID, prof store.Profile) (bool, error)
}

// NameStore is the part of the database about directory names.
type NameStore interface {
	// OwnNames lists our names.
	OwnNames(ctx context.Context) ([]store.OwnName, error)
	// NextNameSeq durably reserves the next record sequence of name.
	NextNameSeq(ctx context.Context, name string, next func(last uint64) uint64) (uint64, error)
	// RemoveOwnName forgets one of our names.
	RemoveOwnName(ctx context.Context, name string) error
	// NameWarnings are the key-change warnings by contact.
	NameWarnings(ctx context.Context) (map[peer.ID]store.NameWarning, error)
	// SetNameWarning records a warning; it reports whether it changed.
	SetNameWarning(ctx context.Context, p peer.ID, w store.NameWarning) (bool, error)
	// ClearNameWarning drops p's warning; it reports whether there was one.
	ClearNameWarning(ctx context.Context, p peer.ID) (bool, error)
}

// Store is the database subset social uses (*store.Store).
type Store interface {
	ContactStore
	ProfileStore
	NameStore
}

// Links is what social needs of the links with contacts and rendezvous
// servers.
type Links interface {
	// Path is how p is reached now (core.PathNone when not connected).
	Path(p peer.ID) (core.Path, network.Conn)
	// StartContact starts keeping a link with p (and what rides on it);
	// a no-op if one runs.
	StartContact(p peer.ID)
	// StopContact stops the link with p and closes our connections to it.
	StopContact(p peer.ID)
	// KeepLink keeps a bare link with p, which is no contact (nothing
	// rides on it): a queued withdrawal waits for its LinkUp. StopContact
	// stops it; a no-op if a link runs.
	KeepLink(p peer.ID)
	// SetBlocked makes the connection gater refuse p, or stop refusing it.
	SetBlocked(p peer.ID, blocked bool)
	// SetError records why the link with p is not doing what it should
	// (nil clears it); status shows it.
	SetError(p peer.ID, err error)
	// Servers are the configured rendezvous servers, in config order.
	Servers() []peer.ID
	// ConnectedServers are the rendezvous servers connected now, with the
	// time each connection opened.
	ConnectedServers() map[peer.ID]time.Time
}

// Tokens hands out offline-mailbox deposit tokens.
type Tokens interface {
	// PushToken gives p a fresh deposit token, best effort.
	PushToken(ctx context.Context, p peer.ID)
}

// StatusSource composes what `natter status` shows (SetPresence answers
// with it).
type StatusSource interface {
	// Status is the node's status.
	Status(ctx context.Context) (control.Status, error)
}

// Network reaches other peers and the rendezvous directory over natter's
// protocols. NewNetwork implements it over a libp2p host.
type Network interface {
	// ID is this node's peer ID.
	ID() peer.ID
	// SendContact sends a friend-request message to p and returns its answer.
	SendContact(ctx context.Context, p peer.ID, req contact.Request) (contact.Response, error)
	// PushPresence pushes our presence to p.
	PushPresence(ctx context.Context, p peer.ID, pr presence.Presence) error
	// FetchProfile fetches p's profile (validated).
	FetchProfile(ctx context.Context, p peer.ID) (profile.Profile, error)
	// Disconnect closes every connection to p.
	Disconnect(p peer.ID)
	// RegisterName claims or renews name on server with record seq; it
	// returns when the server will release it.
	RegisterName(ctx context.Context, server peer.ID, name string, seq uint64) (time.Time, error)
	// ReleaseName gives name up on server with record seq.
	ReleaseName(ctx context.Context, server peer.ID, name string, seq uint64) error
	// LookupName asks server who holds name, verified.
	LookupName(ctx context.Context, server peer.ID, name string) (names.Record, error)
}
