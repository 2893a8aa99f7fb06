package files

import (
	"context"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
)

// Store is the part of the database files uses (*store.Store implements
// it).
type Store interface {
	// ActiveTransfers lists the transfers that are not over.
	ActiveTransfers(ctx context.Context) ([]store.Transfer, error)
	// Transfers lists every transfer, oldest first.
	Transfers(ctx context.Context) ([]store.Transfer, error)
	// GetTransfer returns one transfer (store.ErrNotFound if none).
	GetTransfer(ctx context.Context, id chat.MsgID) (store.Transfer, error)
	// FindTransfer resolves a transfer id or a unique prefix of it
	// (store.ErrNotFound, store.ErrAmbiguous).
	FindTransfer(ctx context.Context, ref string) (store.Transfer, error)
	// UpdateTransfer changes one transfer in a transaction, queueing the
	// message edit returns in the same one; an error from edit changes
	// nothing and is returned.
	UpdateTransfer(ctx context.Context, id chat.MsgID, edit func(t *store.Transfer) (*store.NewOutgoing, error)) (store.Transfer, *store.OutboxEntry, error)
	// TransferSums returns a transfer's chunk hash list (nil if not known
	// yet).
	TransferSums(ctx context.Context, id chat.MsgID) ([]byte, error)
	// SetTransferSums stores the verified chunk hash list of an incoming
	// transfer.
	SetTransferSums(ctx context.Context, id chat.MsgID, sums []byte) error
	// Checkpoint records that the first done bytes of an incoming transfer
	// are verified and fsynced, with the SHA-256 state after them.
	Checkpoint(ctx context.Context, id chat.MsgID, done int64, hashState []byte) error
	// OfferFile records an outgoing transfer with its chunk sums and
	// queues its offer, in one transaction (store.ErrDiskFull if the disk
	// is full).
	OfferFile(ctx context.Context, t store.Transfer, sums []byte, msg store.NewOutgoing) (store.OutboxEntry, error)
	// FindContact resolves a contact reference: name or peer ID
	// (store.ErrNotFound).
	FindContact(ctx context.Context, ref string) (store.Contact, error)
}

// Links tells files how a peer is reachable (node wires the links
// feature).
type Links interface {
	// Path is the best open connection to p and its path (PathNone and
	// nil when there is none).
	Path(p peer.ID) (core.Path, network.Conn)
	// Changed returns a channel closed at the next connection change of
	// p; a runner waiting for a link waits on it.
	Changed(p peer.ID) <-chan struct{}
}

// Chat is what files needs of chat, which carries offers and answers.
type Chat interface {
	// Wake tells p's deliverer that something was queued for it (files
	// queue offers and answers through the store, in their own
	// transactions).
	Wake(p peer.ID)
	// ContactName is p's contact name ("" if it has none).
	ContactName(ctx context.Context, p peer.ID) string
	// ToAPI converts a history message for clients; name is the
	// contact's.
	ToAPI(m store.Message, name string) control.Message
}

// Policy decides who may exchange files with us.
type Policy interface {
	// Allow reports whether p is an accepted contact: the only peers
	// whose offers may be auto-accepted and who may fetch our files.
	Allow(ctx context.Context, p peer.ID) bool
}
