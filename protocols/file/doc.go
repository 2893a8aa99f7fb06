// Package file is natter's file-transfer protocol, /natter/file/1.0.0: how
// the bytes of an offered file move, verified chunk by chunk.
//
// The offer itself is a chat message (FILE_OFFER, protocols/chat): it shows
// in both histories and is delivered at least once from the durable outbox.
// It carries the name, size, SHA-256, media type, a note, the chunk size,
// and the chunks root: the SHA-256 of the concatenated SHA-256 sums of the
// chunks, which commits the sender to every chunk before any data moves.
// Answers (accepted, rejected, done, cancelled, failed) are chat messages
// too (FILE_UPDATE), so they survive restarts of either side.
//
// The receiver pulls. It decides whether, when, how much and where to
// write, and only ever asks for what it still needs:
//
//	receiver (opener)                          sender (offered the file)
//	  |-- Request{transfer, HASHES} ------------->|  offered to this peer?
//	  |<------------------- Response{OK, length=n}-|
//	  |<------------- Hashes{sums: <= 4096 x 32 B}-|  ... n sums in all,
//	  |<------------- Hashes{...} -----------------|  then the sender closes
//	  |  SHA-256(sums) == offer.chunks_root?
//	  |                                            |
//	  |-- Request{transfer, DATA, from_chunk=k} -->|  file unchanged? relay
//	  |<------- Response{OK, length=size-k*chunk}--|  limit?
//	  |<=========== raw bytes, length of them =====|  then the sender closes
//	  |  every chunk checked against its sum as it arrives; the whole
//	  |  file's SHA-256 checked at the end
//
// A chunk that does not match its sum is fetched again (a new DATA request
// from that chunk), not the whole file; resuming after a broken link or a
// restart is the same request from the first chunk not yet durably
// written. The sender streams from the requested offset to the end with
// big writes (the muxer's window is the flow control); the receiver reads,
// checks chunk sums, and hashes plus writes in three pipelined goroutines
// with a fixed set of 1 MiB buffers, so memory stays flat whatever the
// file's size.
//
// Who resets when: the receiver resets a stream on anything it does not
// accept (a malformed response, a chunk that does not match, bytes past
// the offered size, no data for the stall timeout) and when it stops early;
// the sender resets on a malformed request, when its file changes on disk
// mid-stream, and when the receiver stops reading for the stall timeout. A
// refusal (NOT_FOUND, CANCELLED, FAILED, RELAY_LIMIT, BUSY) is a normal
// answer followed by a clean close. Every reset of a served stream is
// counted (natter_protocol_stream_errors_total{protocol="file"}).
//
// Relayed (limited) connections: relays have small data budgets, so the
// sender answers RELAY_LIMIT for a file larger than its relay limit
// (WithRelayMax) asked for over a relayed connection, and the receiver only
// asks over a relayed connection for files under its own limit
// (FetchOptions.AllowRelayed). Otherwise data moves over a direct
// connection, a TCP one when there is one (the fastest for bulk data).
//
// Limits: a file is at most MaxFileSize (1 TiB); chunks are a power of two
// between MinChunkSize and MaxChunkSize, at most MaxChunks of them;
// requests, responses and hash frames have hard maximum sizes; one peer may
// pull at most WithStreamsPerPeer files at once (more are answered BUSY).
// The offered name is never used as a path: SafeName makes a plain,
// portable file name of it.
package file
