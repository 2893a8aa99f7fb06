// Package chat is natter's private-chat protocol, /natter/chat/1.0.0.
//
// A node that has messages for a contact opens one long-lived stream to it
// and writes Frames, each a batch of Messages, without waiting for the
// previous batch to be acknowledged (pipelining, up to a window the sender
// chooses). The receiver handles batches strictly in order: it validates
// every message, stores the batch durably in one transaction, and only then
// writes back one Frame whose acks list the batch's ids. The sender removes
// a message from its outbox only when it sees that ack.
//
//	opener (sender)                          receiver
//	  |-- Frame{messages: m1..m64} ----------->|  store m1..m64 (one tx, fsync)
//	  |-- Frame{messages: m65..m90} ---------->|
//	  |<---------------- Frame{acks: m1..m64} -|
//	  |<--------------- Frame{acks: m65..m90} -|  store m65..m90
//	  |        ... idle, stream stays open ... |
//
// Sender keeps that window on the opener's side: Send blocks while
// DefaultWindow batches await their ack; its reader matches each ack to the
// oldest batch in flight and hands it out in order; an ack that does not
// match, none within the ack timeout, or a reset ends the stream (reset)
// and the owner starts again from its oldest unacknowledged message.
//
// Delivery is at-least-once on the wire: after a reset the sender sends its
// unacknowledged messages again, in order, and the receiver de-duplicates by
// id, so each message is stored exactly once and in the sender's order.
//
// Kinds: TEXT and NUDGE are history messages; DELIVERED and READ are
// receipts whose refs name messages of the other direction; FILE_OFFER is a
// history message that offers a file (protocols/file moves its bytes) and
// FILE_UPDATE a durable change of a transfer's state (accepted, rejected,
// done, cancelled, failed), never shown in the history; TYPING_STARTED
// and TYPING_STOPPED are ephemeral (acknowledged, never stored, never
// retried). A kind this version does not know is acknowledged and ignored,
// so that newer peers can add kinds.
//
// Limits: a frame is at most MaxFrameSize bytes and MaxBatch messages; text
// is valid UTF-8 of at most MaxTextBytes; a receipt names at most MaxRefs
// messages. A frame over a limit or not decodable resets the stream and is
// counted (natter_protocol_stream_errors_total{protocol="chat"}).
//
// Streams over relayed (limited) connections are allowed: the relay's data
// budget is far larger than chat needs.
package chat
