// Package presence is natter's presence protocol, /natter/presence/1.0.0.
//
// Presence is pushed, never polled: a node opens a stream to a contact,
// writes one Presence (state, status message, profile version, the time
// the state was set) and reads an empty Ack.
//
//	pusher                                  contact
//	  |-- Presence{AWAY, "lunch", v7, t} ---->|  apply if t is newer
//	  |<------------------------------- Ack{} -|
//
// A node pushes to each accepted contact when a connection to it opens and
// whenever its own presence changes, and pushes OFFLINE to connected
// contacts when it stops cleanly. Invisible is sent as OFFLINE. Whether a
// contact whose node dies without saying so is offline is the receiver's
// business (heartbeats on the link; see node/links.go).
//
// Limits: the status message is at most MaxMessageBytes of UTF-8 without
// control characters; a frame is at most MaxFrameSize. Streams from peers
// the Receiver does not allow, and invalid or oversized frames, are reset
// and counted (natter_protocol_stream_errors_total{protocol="presence"}).
// Relayed (limited) connections are allowed; Push never dials. Close removes
// the handler and waits for the pushes in flight (wire.Tracker).
package presence
