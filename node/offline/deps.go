package offline

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/chat/pb"
	"github.com/natterim/natter/protocols/mailbox"
)

// What offline delivery needs from the rest of the node. node wires each
// to the feature that has it; tests use fakes.

// Store is the part of the database offline delivery reads and writes
// (*store.Store).
type Store interface {
	TokenStore
	DepositStore
	ContactStore
}

// TokenStore keeps the deposit tokens contacts gave us.
type TokenStore interface {
	// SaveToken keeps p's token, which lets us deposit in p's mailbox
	// until expires.
	SaveToken(ctx context.Context, p peer.ID, token []byte, expires time.Time) error
	// Token is p's token and its expiry (store.ErrNotFound: none).
	Token(ctx context.Context, p peer.ID) ([]byte, time.Time, error)
	// DropToken forgets p's token (a server said it is bad).
	DropToken(ctx context.Context, p peer.ID) error
}

// DepositStore is the outbox as offline delivery sees it, and the record
// of our deposits.
type DepositStore interface {
	// MailboxDue is, per contact with outbox entries not yet deposited,
	// when the oldest of them was queued.
	MailboxDue(ctx context.Context) (map[peer.ID]time.Time, error)
	// Undeposited is up to limit of p's outbox entries queued at or
	// before queuedBefore and not stored in a mailbox, in order.
	Undeposited(ctx context.Context, p peer.ID, queuedBefore time.Time, limit int) ([]store.Undeposited, error)
	// BeginDeposits records deposits about to be sent.
	BeginDeposits(ctx context.Context, ds []store.DepositRecord) error
	// Deposited records what a server stored and refused of p's
	// messages, and returns their status changes.
	Deposited(ctx context.Context, p peer.ID, stored, refused []chat.MsgID) ([]store.StatusChange, error)
	// DepositsToCheck is up to limit stored deposits last checked
	// before before.
	DepositsToCheck(ctx context.Context, before time.Time, limit int) ([]store.DepositRecord, error)
	// ApplyFates applies what servers said about deposits and returns
	// the status changes of our messages.
	ApplyFates(ctx context.Context, us []store.FateUpdate) ([]store.StatusChange, error)
	// MailboxCounts is, per contact, how many of our messages wait in
	// its mailbox.
	MailboxCounts(ctx context.Context) (map[peer.ID]int, error)
}

// ContactStore reads the contact list.
type ContactStore interface {
	// Contacts is every contact.
	Contacts(ctx context.Context) ([]store.Contact, error)
	// ContactByPeer is p's contact (its invite names the rendezvous
	// servers where it has a mailbox).
	ContactByPeer(ctx context.Context, p peer.ID) (store.Contact, error)
}

// Links is what offline delivery needs of the node's connections (the
// links feature).
type Links interface {
	// Path is how we reach p now (core.PathNone: not at all).
	Path(p peer.ID) (core.Path, network.Conn)
	// Changed is closed at the next change of our connections to p.
	Changed(p peer.ID) <-chan struct{}
	// Connected reports whether we have a usable connection to p (a
	// rendezvous server).
	Connected(p peer.ID) bool
	// Connect connects to a server that is not one of ours, at ai's
	// addresses (kept for a short while).
	Connect(ctx context.Context, ai peer.AddrInfo) error
}

// Remote is the mailbox protocol's client side (*mailbox.Client): the
// requests to rendezvous servers and the token push to contacts.
type Remote interface {
	// Deposit puts items in recipient's mailbox on server, with the
	// token recipient gave us; one code per item, or a
	// *mailbox.RefusedError for the whole deposit.
	Deposit(ctx context.Context, server, recipient peer.ID, token []byte, items []mailbox.Item) ([]mailbox.Code, error)
	// Fetch reads up to limit boxes of our mailbox on server after
	// position after; more says whether others follow.
	Fetch(ctx context.Context, server peer.ID, after uint64, limit int) (boxes []mailbox.StoredBox, more bool, err error)
	// Delete removes boxes from our mailbox on server: delivered ones we
	// stored, rejected ones we refused.
	Delete(ctx context.Context, server peer.ID, delivered, rejected []mailbox.DepositID) (int, error)
	// Status asks server the fate of deposits we made there.
	Status(ctx context.Context, server peer.ID, ids []mailbox.DepositID) ([]mailbox.Fate, error)
	// PushToken gives a token we issued to contact to over an existing
	// connection.
	PushToken(ctx context.Context, to peer.ID, token []byte) error
}

// Chat is the chat feature: what goes into and comes out of a mailbox is
// chat messages.
type Chat interface {
	// Receive stores messages from a contact as the chat stream does
	// (de-duplicated by id); drained boxes come with a nil conn.
	Receive(ctx context.Context, from peer.ID, conn network.Conn, msgs []*pb.Message) error
	// ApplyChanges tells the user what became of p's messages (stored,
	// failed...).
	ApplyChanges(p peer.ID, changes []store.StatusChange)
	// Enqueue queues outgoing messages (our DELIVERED receipts).
	Enqueue(ctx context.Context, msgs []store.NewOutgoing) ([]store.OutboxEntry, error)
	// ToWire is an outbox entry as the chat protocol sends it: what we
	// seal into a box.
	ToWire(e store.OutboxEntry) *pb.Message
}

// Policy says who offline delivery serves.
type Policy interface {
	// Allow reports whether p is an accepted contact: it gets our
	// tokens, we deposit for it, and we take its boxes.
	Allow(ctx context.Context, p peer.ID) bool
}
