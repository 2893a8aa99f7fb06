// Package mailbox is natter's offline mailbox: a rendezvous server keeps
// sealed boxes for a node that is offline until it comes back and fetches
// them, without ever being able to read them.
//
// Two protocols:
//
//	/natter/mailbox/1.0.0        node <-> rendezvous (Service, Client)
//	/natter/mailbox-token/1.0.0  node <-> node       (TokenService, Client.PushToken)
//
// Each stream carries one request and one response; the client writes its
// request and closes its side:
//
//	sender A                  rendezvous S                     recipient B
//	   |                           |<-- FETCH{owner B} ----------|  B connects: its
//	   |                           |--- {boxes, more} ---------->|  mailbox exists now
//	   |<==== TokenPush{token: B signed (A, B, expiry)} =========|  while A and B are
//	   |===== TokenAck =========================================>|  connected
//	      ... B goes offline; A's message is not delivered within mailbox.after ...
//	   |-- DEPOSIT{B, token, [id, seal(msg)]} -->|  verify token with B's key,
//	   |<-------------- {results: OK} -----------|  quota, store (durable)
//	   |-- STATUS{[id]} ------------------------>|
//	   |<-------------- {fates: PENDING} --------|
//	      ... B comes back ...
//	   |                           |<-- FETCH{owner B, after} ---|  open, verify, store
//	   |                           |--- {boxes, more} ---------->|  through the chat path
//	   |                           |<-- DELETE{ids, rejected} ---|  then delete
//	   |                           |--- {deleted} -------------->|
//	   |<====== DELIVERED receipt (chat, direct or via A's own mailbox) =====|
//	   |-- STATUS{[id]} ------------------------>|
//	   |<-------------- {fates: DELIVERED} ------|
//
// Boxes are sealed (subpackage seal) to the recipient's key: the server
// sees their sizes, times, the depositor and the owner, never their
// content or the message's author inside.
//
// Who may do what. A DEPOSIT needs a deposit token: the recipient's
// signature over (recipient, sender, expiry), which the server checks with
// the recipient's public key (inlined in its Ed25519 peer ID) and against
// the stream's remote peer (the authenticated depositor); so only the
// recipient's accepted contacts deposit, and the contact list stays off the
// server. FETCH and DELETE name the mailbox's owner, which must be the
// stream's remote peer (the connection's Noise/TLS handshake proved its
// key): anyone else gets NOT_OWNER. STATUS answers only about deposits the
// asker made (others are UNKNOWN).
//
// Refusals are answered with a code and a reason, not by a reset, so that
// an honest client learns why: BAD_TOKEN (missing, forged, expired, naming
// someone else), UNKNOWN_RECIPIENT (no mailbox here: the owner never
// registered or fetched on this server, or was forgotten after OwnerTTL),
// OVER_QUOTA (per recipient count and bytes, server total), TOO_LARGE,
// MALFORMED (ids not 16 bytes, boxes too short to be sealed, bad peer IDs),
// DUPLICATE (a deposit id already seen: a retry or a replay, stored once),
// RATE_LIMITED (a token bucket per depositor), NOT_OWNER, UNAVAILABLE
// (storage failed). Each is counted: natter_mailbox_requests_total{op,
// result} and, per box, natter_mailbox_deposits_total{result}. A frame
// that does not decode, is over MaxFrameSize or has no body, and a peer
// that stalls past the request timeout, get a reset stream, counted in
// natter_protocol_stream_errors_total{protocol="mailbox"}.
//
// Limits (Limits, DefaultLimits): box size, per-recipient count and bytes,
// server bytes, maximum age (then the box is dropped and its fate is
// EXPIRED), deposit rate per sender, how long fates (and deposit ids, against
// replays) and idle empty mailboxes are remembered. A frame is at most
// MaxFrameSize on both sides; a deposit and a fetch response hold at most
// MaxItems boxes, a delete and a status query at most MaxStatusIDs ids.
//
// Mailbox streams need a direct connection to the server (nodes always
// have one to their rendezvous); token streams run on any connection
// between two nodes, relayed ones included.
package mailbox
