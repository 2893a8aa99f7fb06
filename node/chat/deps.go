package chat

import (
	"context"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	chatproto "github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
)

// Outbox is the durable queue of what we send (node/store).
type Outbox interface {
	// Enqueue stores msgs in the outbox (history kinds also in the
	// history) in one transaction, each with the next sequence number of
	// its conversation, and returns them in order.
	Enqueue(ctx context.Context, msgs []store.NewOutgoing) ([]store.OutboxEntry, error)
	// Outbox returns up to limit of the messages queued for p after
	// sequence number afterSeq, in sequence order.
	Outbox(ctx context.Context, p peer.ID, afterSeq uint64, limit int) ([]store.OutboxEntry, error)
	// OutboxLen is how many messages are queued for p.
	OutboxLen(ctx context.Context, p peer.ID) (int, error)
	// Acked takes messages p acknowledged out of the outbox (via is the
	// path they took) and returns the status changes of ours.
	Acked(ctx context.Context, p peer.ID, ids []chatproto.MsgID, via string) ([]store.StatusChange, error)
}

// History is the message history (node/store).
type History interface {
	// StoreIncoming stores a received batch in one durable transaction,
	// leaving out messages already stored (same id), and applies its
	// receipts.
	StoreIncoming(ctx context.Context, from peer.ID, in []store.Incoming) (store.Received, error)
	// History returns up to limit messages of the conversation with p
	// before the message before (nil: the newest), oldest first.
	History(ctx context.Context, p peer.ID, before *chatproto.MsgID, limit int) ([]store.Message, error)
	// Search finds messages matching query, of p only if p is set.
	Search(ctx context.Context, query string, p peer.ID, limit int) ([]store.Message, error)
	// MarkRead marks p's messages read and, if receipts, queues read
	// receipts in the same transaction; it returns the ids marked and
	// the receipts queued.
	MarkRead(ctx context.Context, p peer.ID, receipts bool) ([]chatproto.MsgID, []store.OutboxEntry, error)
	// MessageByID returns one history message.
	MessageByID(ctx context.Context, id chatproto.MsgID) (store.Message, error)
}

// Contacts is the address book (node/store).
type Contacts interface {
	// FindContact resolves a reference (name or peer ID);
	// store.ErrNotFound if there is no such contact.
	FindContact(ctx context.Context, ref string) (store.Contact, error)
	// ContactByPeer returns the contact with peer ID p.
	ContactByPeer(ctx context.Context, p peer.ID) (store.Contact, error)
	// UpdateContact rewrites the contact's mutable fields.
	UpdateContact(ctx context.Context, c store.Contact) error
}

// Links says how a contact is reachable right now (node/links).
type Links interface {
	// Path is the best path to p and a connection on it (nil for
	// core.PathNone).
	Path(p peer.ID) (core.Path, network.Conn)
	// Changed returns a channel closed at p's next connection change.
	Changed(p peer.ID) <-chan struct{}
}

// Policy says who may chat with us (node/social).
type Policy interface {
	// Allow reports whether p may send us messages: an accepted contact.
	Allow(ctx context.Context, p peer.ID) bool
}

// KindHandler handles the message kinds another feature carries over chat
// (files: FILE_OFFER and FILE_UPDATE); see Service.Register.
type KindHandler interface {
	// Incoming converts a received message of a registered kind into what
	// the store records: Kind and the kind's fields (chat sets ID, Seq
	// and SentAt). fromName is the sender's contact name, "" if none.
	// false skips the message (a state this version does not know).
	Incoming(ctx context.Context, from peer.ID, fromName string, m *pb.Message) (store.Incoming, bool)
	// Received acts on the transfers a stored batch created or changed.
	Received(ts []store.Transfer)
	// Ref describes the attachment of the history message id of a
	// registered kind (nil if unknown).
	Ref(id chatproto.MsgID) *control.FileRef
}
