// Package rendezvous implements the libp2p rendezvous protocol
// (/rendezvous/1.0.0, https://github.com/libp2p/specs/tree/master/rendezvous):
// peers register signed peer records under a namespace on a server, and
// others discover them there.
//
// natter uses one namespace per peer, PeerNamespace(id) =
// "natter/peer/<id>": a node registers itself there, and a contact looks it
// up by peer ID (Client.Lookup). The server only accepts a registration in a
// "natter/peer/" namespace from that very peer. Any other namespace is open to
// every peer, as in the spec.
//
// Flow (one stream per request from Client; the Service also accepts several
// sequential requests on one stream until EOF):
//
//	client                                   server (Service)
//	  | -- REGISTER{ns, envelope, ttl} ----------> | verify: ns, ttl, envelope
//	  | <------------ REGISTER_RESPONSE{status, ttl} |  signed by the stream's peer
//	  | -- UNREGISTER{ns} -----------------------> | remove (no response)
//	  | -- DISCOVER{ns, limit, cookie} ----------> |
//	  | <- DISCOVER_RESPONSE{registrations, cookie} |
//	  | -- close write ---------------------------> | EOF: server closes the stream
//
// A request the server can answer, including one it refuses by policy, gets
// a response with a status (E_INVALID_NAMESPACE, E_NOT_AUTHORIZED, ...); the
// client returns a *StatusError for a non-OK status. A frame the server
// cannot read (garbage, a length prefix over the limit, an unknown or
// response message type, a missing body) makes the server reset the stream.
// The client resets its stream on any local error or when its context ends.
//
// Limits (see Limits and DefaultLimits): requests are at most
// MaxRecordSize+MaxNamespaceLen+1 KiB, responses at most 1 MiB on both sides
// (a discover page is cut short to fit, and its cookie continues after the
// last registration returned). Each request has RequestTimeout; the client
// uses its context's deadline.
//
// Abuse: MaxRegistrationsPerSource caps the registrations held for peers
// connecting from one IPv4 address or IPv6 /56, and a Gate (WithGate) may
// refuse any request before it is handled (the rendezvous server's rate
// limits per peer and per address). Every refusal is reported to
// WithRefusals with a reason from a small fixed set, for metrics.
//
// Discover cookies are opaque to clients. The server's cookie names a
// namespace and a position in a monotonic registration counter (started
// from the wall clock, so positions stay increasing across restarts):
// a Discover with the cookie returns only registrations made or refreshed
// after the last one returned before.
package rendezvous
