package api

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
)

// What the control API needs from the rest of the daemon. Each method has
// the signature of the domain function it stands for; errors carry a core
// kind (core.Invalid, core.NotFound, ...) that statusOf maps to a status.

// Node is what the node itself composes from several features.
type Node interface {
	// ID is this node's peer ID (GET /id, the events hello line).
	ID() peer.ID
	// Status is what `natter status` shows (GET /status).
	Status(ctx context.Context) (control.Status, error)
	// Invite is this node's invite string (GET /id).
	Invite(ctx context.Context) (string, error)
	// Ping measures the round trip to a contact over the current path
	// (POST /contacts/{ref}/ping).
	Ping(ctx context.Context, ref string) (control.PingResult, error)
}

// Contacts is the friend-request state machine and the contact list.
type Contacts interface {
	// Contacts lists every contact with its name warning, if any
	// (GET /contacts).
	Contacts(ctx context.Context) ([]control.Contact, error)
	// AddContact adds a contact from a peer ID, invite or directory
	// name and sends it a friend request (POST /contacts).
	AddContact(ctx context.Context, req control.AddContactRequest) (store.Contact, error)
	// AcceptContact accepts ref's friend request, naming it name if not
	// empty (POST /contacts/{ref}/accept).
	AcceptContact(ctx context.Context, ref, name string) (store.Contact, error)
	// RejectContact rejects ref's friend request
	// (POST /contacts/{ref}/reject).
	RejectContact(ctx context.Context, ref string) (store.Contact, error)
	// BlockContact blocks ref, which may be any peer ID
	// (POST /contacts/{ref}/block).
	BlockContact(ctx context.Context, ref string) (store.Contact, error)
	// RemoveContact removes ref in any state and returns it as it was
	// (DELETE /contacts/{ref}).
	RemoveContact(ctx context.Context, ref string) (store.Contact, error)
}

// Presence is our own presence and the user's activity.
type Presence interface {
	// SetPresence sets our presence and/or status message
	// (POST /presence).
	SetPresence(ctx context.Context, req control.PresenceRequest) (control.Status, error)
	// Touch records that the user is at the keyboard (it ends an
	// automatic away). The routes a user drives call it first.
	Touch()
}

// Chat is the conversation with contacts.
type Chat interface {
	// Send queues a text or nudge (POST /contacts/{ref}/messages).
	Send(ctx context.Context, ref string, req control.SendRequest) (control.Message, error)
	// History is a page of the conversation, oldest first
	// (GET /contacts/{ref}/messages).
	History(ctx context.Context, ref string, before string, limit int) ([]control.Message, error)
	// Search finds messages, in ref's conversation if ref is set
	// (GET /search).
	Search(ctx context.Context, query, ref string, limit int) ([]control.Message, error)
	// MarkRead marks the conversation read (POST /contacts/{ref}/read).
	MarkRead(ctx context.Context, ref string) (control.ReadResult, error)
	// Typing tells a connected contact that the user started or
	// stopped typing; it reports whether the notice went out
	// (POST /contacts/{ref}/typing).
	Typing(ctx context.Context, ref string, typing bool) (bool, error)
	// SetReceipts sets ref's read-receipt override: on, off or default
	// (POST /contacts/{ref}/receipts).
	SetReceipts(ctx context.Context, ref, mode string) (store.Contact, error)
}

// Files is file transfer.
type Files interface {
	// SendFile offers a file to a contact (POST /contacts/{ref}/files).
	SendFile(ctx context.Context, ref string, req control.SendFileRequest) (control.Transfer, error)
	// Files lists every transfer, oldest first (GET /files).
	Files(ctx context.Context) ([]control.Transfer, error)
	// File is one transfer by ID or unique prefix (GET /files/{id}).
	File(ctx context.Context, ref string) (control.Transfer, error)
	// FileAction accepts, rejects or cancels a transfer
	// (POST /files/{id}/{action}).
	FileAction(ctx context.Context, ref, action string) (control.Transfer, error)
}

// Profiles is our profile and the contacts' ones.
type Profiles interface {
	// OwnProfile is our profile (GET /profile).
	OwnProfile(ctx context.Context) (control.Profile, error)
	// SetProfile changes our profile (POST /profile).
	SetProfile(ctx context.Context, req control.ProfileRequest) (control.Profile, error)
	// ContactProfile is ref's profile as last fetched
	// (GET /contacts/{ref}/profile).
	ContactProfile(ctx context.Context, ref string) (control.Profile, error)
}

// Names is the name directory.
type Names interface {
	// OwnNames lists the names we hold (GET /names).
	OwnNames(ctx context.Context) ([]control.OwnName, error)
	// RegisterName claims a name (POST /names).
	RegisterName(ctx context.Context, name string) (control.OwnName, error)
	// ReleaseName gives a name up (DELETE /names/{name}).
	ReleaseName(ctx context.Context, name string) (control.OwnName, error)
	// LookupName resolves a name to its verified holder
	// (GET /directory/{name}).
	LookupName(ctx context.Context, name string) (control.NameLookup, error)
}

// Mailbox is offline delivery.
type Mailbox interface {
	// Mailbox reports our mailboxes and each contact's (GET /mailbox).
	Mailbox(ctx context.Context) (control.Mailbox, error)
}

// Events is where the event stream comes from (a *core.Bus).
type Events interface {
	// Subscribe returns a subscription and the function that ends it.
	Subscribe() (*core.Subscription, func())
}

// Services are the features the routes call. Each field is one of the
// small interfaces above; New refuses a nil one.
type Services struct {
	Node     Node
	Contacts Contacts
	Presence Presence
	Chat     Chat
	Files    Files
	Profiles Profiles
	Names    Names
	Mailbox  Mailbox
	Events   Events
}
