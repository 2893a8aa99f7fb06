// Package contact is natter's friend-request protocol,
// /natter/contact/1.0.0.
//
// One request and one response per stream:
//
//	requester A                               receiver B
//	  |-- Request{REQUEST, note, name} -------->|  store as pending_in
//	  |<----------------------- Response{PENDING}|
//	           ... B's user runs: natter contacts accept A ...
//	  |<-------------------- Request{ACCEPT} ----|
//	  |-- Response{OK} ------------------------->|
//
// The requester keeps its request as pending_out and sends REQUEST again
// every time it connects to the receiver until it gets a final answer, so
// an ACCEPT or REJECT that could not be delivered (A was offline) is
// learnt on the next connection: the receiver answers a repeated REQUEST
// with ACCEPTED or REJECTED. Two users who add each other are accepted at
// once (the receiver of a REQUEST that has its own pending_out request to
// the requester answers ACCEPTED). Everything is idempotent: a repeated
// REQUEST does not create a second request. A requester that removes the
// contact before an answer sends WITHDRAW (if it can reach the receiver
// then), and the receiver drops the pending request.
//
// Limits: a note is at most MaxNoteBytes and a name MaxNameBytes of UTF-8
// without control characters; a frame is at most MaxFrameSize. The service
// rate-limits each peer (WithRateLimit): a peer over its limit
// gets RATE_LIMITED, and the stream is counted
// (natter_protocol_stream_errors_total{protocol="contact",
// reason="rate_limited"}); other peers are unaffected. Streams over relayed
// (limited) connections are allowed; Send never dials. Close removes the
// handler and waits for the exchanges in flight (wire.Tracker).
package contact
