// Package offline delivers messages to contacts that are offline, through
// a sealed mailbox on their rendezvous server (protocols/mailbox,
// protocols/mailbox/seal), and takes what waits in ours. It exists so
// that two people who are never online at the same time can still talk,
// without the server ever reading a message or keeping a contact list.
//
//	outbox entry for contact C, no link to C for mailbox.after
//	   └─> seal to C's key (signed by us inside) ─> DEPOSIT on C's rendezvous,
//	       with the deposit token C gave us ─> message "stored"
//	C connects to its rendezvous ─> FETCH ─> open, verify (signature, an
//	   accepted contact) ─> the normal chat receive path (de-duplicated by
//	   message id) ─> queue a DELIVERED receipt ─> DELETE
//	receipt reaches us (direct, or through our own mailbox) ─> "delivered" (via mailbox)
//
// The outbox entry stays in the outbox until the contact has the message
// (a stream ack or its DELIVERED receipt): whichever way comes first wins,
// and the contact's node stores the message once. We ask the rendezvous
// what became of our deposits (STATUS) when we connect and every
// mailbox.status_interval: a box that expired before the contact fetched
// it makes its message "failed" (it leaves the outbox); receipts that
// expire are deposited again.
//
// Where to deposit (candidates): the server that took our last deposit
// for that contact, then our connected rendezvous servers that the
// contact's invite names, then our other connected ones, then the ones its
// invite names that we are not linked to. A server that cannot take the
// boxes (no mailbox for the contact there, full, unreachable) hands over to
// the next; a bad token stops the pass.
//
// Deposit tokens: while connected to an accepted contact we give it a
// token signed by our key (valid mailbox.token_ttl) naming it, which lets
// it deposit in our mailbox; the rendezvous checks it, so it needs no
// contact list. Removed or blocked contacts get no new token.
//
//	link up (HandleLink) ──────────┐
//	heartbeat (HandleLink, pinged) ─┼─> PushToken: due? accepted? ─> Remote.PushToken
//	contact accepted (PushToken) ───┘
//	token from a contact (TokenReceiver) ─> Store.SaveToken ─> deposit loop kicked
//
// The Service owns a deposit loop and one drain loop per rendezvous server
// (Config.Rendezvous), and the token pushes it starts; Close stops and
// waits for them. What it needs of the rest of the node (the store, the
// links, the protocol client, chat, who is a contact) it declares in
// deps.go; node wires them.
package offline
