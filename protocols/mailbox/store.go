package mailbox

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Store is where a Service keeps the mailboxes: the rendezvous's database
// (rendezvous/store). Every method is one atomic, durable step: when it
// returns, what it did survives a crash of the server.
type Store interface {
	// HasMailbox reports whether owner has a mailbox here: it registered
	// or fetched on this server, and was not forgotten (Limits.OwnerTTL).
	HasMailbox(ctx context.Context, owner peer.ID) (bool, error)
	// TouchMailbox creates owner's mailbox, or records that its owner was
	// seen at now.
	TouchMailbox(ctx context.Context, owner peer.ID, now time.Time) error
	// Deposit stores the batch's boxes in order, each unless its id is
	// already known (DUPLICATE) or it would take the recipient's mailbox
	// over MaxMessages or MaxBytes, or all mailboxes over MaxTotalBytes
	// (OVER_QUOTA). It returns one code per item.
	Deposit(ctx context.Context, b DepositBatch) ([]Code, error)
	// Fetch returns owner's boxes with a position above after, oldest
	// first: at most limit of them and, past the first, at most maxBytes
	// of boxes in all. more reports whether others follow. The returned
	// boxes are marked fetched.
	Fetch(ctx context.Context, owner peer.ID, after uint64, limit, maxBytes int, now time.Time) (boxes []StoredBox, more bool, err error)
	// Delete removes owner's boxes named in delivered (fate DELIVERED)
	// and rejected (fate REJECTED) and returns how many it removed; ids
	// that are not in owner's mailbox are ignored.
	Delete(ctx context.Context, owner peer.ID, delivered, rejected []DepositID, now time.Time) (int, error)
	// Fates returns the fate of each of ids among the deposits sender
	// made (UNKNOWN for others), in order.
	Fates(ctx context.Context, sender peer.ID, ids []DepositID) ([]Fate, error)
	// Expire drops boxes older than l.MaxAge (fate EXPIRED), fates older
	// than l.FateTTL and empty mailboxes whose owner was not seen for
	// l.OwnerTTL.
	Expire(ctx context.Context, now time.Time, l Limits) (ExpireStats, error)
	// SaveSenderLimits replaces the saved per-sender deposit rate limits
	// with ls (the senders whose bucket is not full).
	SaveSenderLimits(ctx context.Context, ls []SenderLimit) error
	// SenderLimits are the saved per-sender deposit rate limits.
	SenderLimits(ctx context.Context) ([]SenderLimit, error)
}

// SenderLimit is one sender's deposit rate limit as kept across a
// restart: Tokens (boxes it may still deposit at once) left at At.
type SenderLimit struct {
	Sender peer.ID
	Tokens float64
	At     time.Time
}

// DepositBatch is one deposit request as the Service hands it to the
// Store, checked and with the quota to apply.
type DepositBatch struct {
	Recipient peer.ID
	Sender    peer.ID
	Items     []Item
	Now       time.Time
	// Quota (from Limits).
	MaxMessages   int
	MaxBytes      int64
	MaxTotalBytes int64
}

// Item is one box to deposit.
type Item struct {
	ID  DepositID
	Box []byte
}

// StoredBox is one box in a mailbox.
type StoredBox struct {
	ID        DepositID
	Box       []byte
	Seq       uint64
	Deposited time.Time
}

// Fate is what became of a deposit.
type Fate struct {
	ID    DepositID
	State State
	At    time.Time
	// Fetched is true if the owner fetched the box at least once (for an
	// EXPIRED box: it may well have it).
	Fetched bool
}

// ExpireStats counts what one Expire call dropped.
type ExpireStats struct {
	// Expired boxes (their fate is now EXPIRED).
	Expired int
	// Fates forgotten.
	Fates int
	// Owners forgotten (their empty mailbox is gone).
	Owners int
}
