// Package api is the daemon's HTTP edge: the control API that the CLI, the
// terminal UI and scripts talk to (docs/control-api.md). It holds no domain
// logic. Every route decodes its request, calls one domain method through
// a small interface declared in deps.go, and writes the answer or the
// error; node wires the feature packages into those interfaces.
//
//	client ──HTTP──▶ unix socket (0600)          ─┐
//	client ──HTTP──▶ loopback TCP + bearer token ─┤
//	                                              ▼
//	                      routes (routes.go: the one route table)
//	                                              │ endpoint (adapter.go):
//	                                              │ body ≤ limit, UTF-8, JSON
//	                                              ▼
//	           Contacts · Presence · Chat · Files · Profiles · Names ·
//	           Mailbox · Node (deps.go)  ──▶ result ──▶ JSON
//	                                    └──▶ error ──▶ statusOf ──▶ {"error": ...}
//
//	GET /v1/events: a core.Bus subscription, one JSON line per event,
//	after a hello line, until the client leaves, falls behind or the
//	server closes.
//
// Errors: a domain error's kind (core.ErrInvalid, ErrNotFound, ...)
// decides the status code in one place, statusOf; its message goes to the
// client unchanged. No feature package imports net/http.
//
// The socket is created under a 0177 umask, so it is 0600 from the start.
// The TCP listener is refused unless its address is loopback, and every
// request on it must carry the token kept in the token file.
package api
