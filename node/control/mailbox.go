package control

import "time"

// Offline delivery. An outgoing message whose contact stays offline is
// sealed into the contact's mailbox on a rendezvous: its status becomes
// "stored" (between sent and delivered); the contact's node drains its
// mailbox when it comes back and sends a DELIVERED receipt, and the
// message becomes "delivered" with Via "mailbox". A stored message the
// mailbox dropped before the contact fetched it (it expired) becomes
// "failed", with a Reason; natter no longer tries to deliver it.
const (
	StatusStored = "stored"
	StatusFailed = "failed"
	// PathMailbox is Message.Via (and a status event's Path) for a
	// message that reached the contact through its mailbox.
	PathMailbox = "mailbox"
)

// Mailbox is GET /v1/mailbox: the node's offline delivery, both ways.
type Mailbox struct {
	Enabled bool `json:"enabled"`
	// Servers are our own mailboxes, one per rendezvous.
	Servers []MailboxServer `json:"servers"`
	// Contacts are, per accepted contact, what we can deposit for it and
	// what waits in its mailbox.
	Contacts []MailboxContact `json:"contacts"`
}

// MailboxServer is our mailbox on one rendezvous.
type MailboxServer struct {
	PeerID string `json:"peer_id"`
	// LastDrain is when we last emptied it; Received counts the messages
	// (and receipts) taken from it since the daemon started, Rejected the
	// boxes refused (not openable, not from a contact).
	LastDrain time.Time `json:"last_drain,omitzero"`
	Received  int       `json:"received"`
	Rejected  int       `json:"rejected"`
	LastError string    `json:"last_error,omitempty"`
}

// MailboxContact is offline delivery to one contact.
type MailboxContact struct {
	PeerID string `json:"peer_id"`
	Name   string `json:"name"`
	// TokenExpires is when the contact's permission to deposit in its
	// mailbox runs out (zero: we have none yet; it comes the next time we
	// are connected to the contact).
	TokenExpires time.Time `json:"token_expires,omitzero"`
	// Stored counts our messages waiting in its mailbox.
	Stored int `json:"stored"`
	// Server is the rendezvous that took our last deposit for it.
	Server    string `json:"server,omitempty"`
	LastError string `json:"last_error,omitempty"`
}
