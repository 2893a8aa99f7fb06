// Package core is the small vocabulary that natter's feature packages
// (links, chat, files, offline, social, api) share without importing each
// other: the typed path of a link, the kinds of domain error the control
// API maps to status codes, the event bus the features publish on, a
// backoff, and the one rule of who can be written to (CanChat).
//
// It holds no state of its own and imports no feature package. A feature
// package declares the narrow interfaces it needs from the others in its
// own deps.go; node wires them; core only carries the words they agree on.
package core
