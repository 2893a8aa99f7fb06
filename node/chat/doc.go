// Package chat is natter's messaging feature: it turns "send this to that
// contact" into a durable, ordered, acknowledged delivery, and what arrives
// into history and events. protocols/chat is its wire side; node/store
// keeps the outbox and the history; node wires in the links (is the
// contact reachable?), who may chat, and the message kinds other features
// carry over chat (files: FILE_OFFER, FILE_UPDATE).
//
//	Send / Enqueue ──> group commit (commitLoop) ──> outbox + history (one fsync)
//	                                 │ wake
//	                                 ▼
//	      deliverer(contact) ── Sender: one stream, ≤ 8 batches of ≤ 256 in flight ──> peer
//	                                 ▲ ack (ids of the oldest batch)                    │
//	         Acked: outbox -> delivered, events, waiters (send --wait) <────────────────┘
//
//	peer ──> protocols/chat.Service ──> Receive: Policy.Allow, kinds, StoreIncoming
//	         (one durable write per batch, dedup by id) ──> events, receipts applied
//
// Every contact with a link has one deliverer goroutine (Open starts it,
// Drop stops it). While the contact is connected (relayed or direct) and
// its outbox is not empty, the deliverer keeps a chat stream open and
// streams the outbox in sequence order; an ack removes a batch from the
// outbox. Any error resets the stream and the deliverer starts again from
// the oldest unacknowledged message after a backoff, so the receiver may
// see a batch twice and de-duplicates it. A relayed stream is drained and
// replaced as soon as a direct connection appears; an idle one is closed.
//
// Typing notices are ephemeral: they go on the current stream if there is
// one, and are never stored nor retried.
package chat
