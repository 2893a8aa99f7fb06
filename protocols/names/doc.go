// Package names is natter's name directory, /natter/names/1.0.0: "find a
// friend" by a short name instead of a peer ID. The directory runs on the
// rendezvous servers; nodes claim names for their own peer ID and look
// other people's names up.
//
// One request and one response per stream:
//
//	node A                                    rendezvous (Service)
//	  |-- Request{REGISTER, record} ------------>|  verify record, policy
//	  |<------------- Response{OK, release_at} --|  store (durable) first
//	  |-- Request{RELEASE, record} ------------->|
//	  |<----------------------- Response{OK} ----|
//	node B
//	  |-- Request{LOOKUP, "bob"} --------------->|
//	  |<------------- Response{OK, A's record} --|  B verifies the record
//
// A record is a libp2p signed envelope (domain "natter-names") around a
// Claim{op, name, peer_id, seq}: the key that signed it must be the key of
// peer_id, so only the holder of a peer ID's key can claim, renew or
// release a name for it. The server checks, on every REGISTER and RELEASE:
// the signature and that the signer is peer_id (BAD_RECORD), the name rule
// (INVALID_NAME, see Normalize), that peer_id is the peer on the stream
// (WRONG_PEER: nobody can replay someone else's record), that seq — the
// signer's clock in milliseconds — is within Limits.MaxClockSkew of the
// server's clock (EXPIRED) and newer than the record it holds (OUTDATED).
//
// Policy: first come, first served. A name, and every name that looks
// like it (same Skeleton), belongs to the first key that registers it;
// nobody else can take, renew or release it (TAKEN). The holder renews
// it by registering again with a newer record; a name not renewed for
// Limits.InactiveRelease (30 days by default) is released: lookups stop
// finding it and anyone may claim it. A peer holds at most
// Limits.MaxPerPeer names (TOO_MANY_NAMES). A LOOKUP returns the holder's
// latest REGISTER record as it was signed; the asking node verifies it
// itself (Lookup does) and never trusts the server's word for more than
// that.
//
// Limits: a frame is at most MaxFrameSize on both sides and a record at
// most MaxRecordSize; every exchange has Limits.Timeout. Each peer is
// rate-limited (Limits.Rate, Limits.Burst; RATE_LIMITED beyond, other
// peers unaffected). Every refusal is answered with its status and a short
// reason, then the stream is closed cleanly, and counted in
// natter_names_requests_total{op,status}; a frame the server cannot read
// (oversized, malformed, unknown op) resets the stream and is counted in
// natter_protocol_stream_errors_total{protocol="names"}. The server resets
// on any error of its own; the client resets on any local error or when
// its context ends.
package names
