// Package wire is the framing every natter protocol shares: protobuf
// messages, each prefixed with its length as an unsigned varint, with a hard
// size limit that is checked before anything is allocated on read and before
// anything is sent on write.
//
// It also holds the one stream-handler skeleton all natter services use
// (Serve): set the resource-manager service, reserve memory, set a deadline,
// run the handler, then Close on success or Reset on any error. Keeping it in
// one place means a misbehaving peer is treated the same way by every
// protocol: its stream is reset and the failure is counted, never logged
// above Debug, never allowed to crash the process.
//
// Frame layout (same as go-msgio/pbio, so libp2p tooling can read it):
//
//	+----------------+---------------------------+
//	| uvarint length | protobuf message (length) |
//	+----------------+---------------------------+
//
// Unlike pbio's reader, ReadMsg never reads past the end of the frame, so a
// stream may carry delimited messages followed by raw bytes (file chunks).
//
// # The protocol kit
//
// Every natter protocol is built from the same few pieces, so that each
// one treats streams alike:
//
//	client                                  server (Service)
//	Call(ctx, h, p, ID, CallOptions{...}) ─▶ Tracker.Handler(func(st) {
//	  open (NoDial? AllowLimited?)             Serve(st, ServeOptions{...}, h)
//	  SetService, ReserveMemory                  SetService, ReserveMemory
//	  deadline = ctx's; ctx done → Reset         deadline = Timeout
//	  WriteMsg(req, RequestMax)  ─────────────▶  ReadMsg(req, max)
//	  CloseWrite                                 ...
//	  ReadMsg(resp, ResponseMax) ◀─────────────  WriteMsg(resp, max)
//	  Close (any error: Reset)                   Close (any error: Reset)
//	                                           })
//
// Call is the one client for request/response streams: a protocol
// package wraps it with its options (give Service the package's
// ServiceName, AllowLimited and NoDial as the protocol runs over the relay
// and on existing connections only, the frame limits, and the timeout as
// an option of the package, never a package variable). A request without
// an answer passes resp nil. Long-lived streams (chat's batches and acks,
// file's streamed data) are not one request and one response: their
// packages open them themselves, and use the Tracker on the server side.
//
// Tracker is what a Service's Close waits on: wrap the handler given to
// SetStreamHandler with Tracker.Handler, start loops with Tracker.Go,
// derive handlers' contexts from Tracker.Context, and in Close remove the
// handler, then Tracker.Close (it cancels, resets the streams in flight
// and waits). Watchdog resets a stream whose exchange outlives its
// timeout when the transport ignores deadlines (the mailbox and the
// rendezvous registry use one per request).
//
// A Service is made by New(h, ..., opts ...Option) from an unexported
// config that starts at documented defaults (WithLogger, WithMetrics,
// limits), and has an idempotent Close() error.
package wire
