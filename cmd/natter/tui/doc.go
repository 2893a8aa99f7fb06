// Package tui is natter's terminal chat client: a contact list with
// presence, unread counts, link paths and friend requests on the left, the
// open conversation on the right, an input line at the bottom.
//
// It is a client of the daemon's control API only (node/control), like the
// CLI and scripts: it never touches the database. Everything it shows comes
// from one load of the state and then from the event stream:
//
//	Run ──▶ pump ──GET /v1/events──▶ daemon
//	         │ hello, message, status, typing, nudge, link, presence,
//	         │ contact, file
//	         ▼
//	       Model.Update ──▶ API calls (send, history pages, read, typing,
//	         │               accept, presence, search, files) as tea.Cmds
//	         ▼
//	       Model.View (alt screen; lipgloss degrades colours by itself)
//
// The pump reconnects when the stream drops (the daemon restarted, or cut
// off a client that fell behind); every hello makes the model reload the
// contacts and the open conversation, so nothing missed while disconnected
// stays missing. History is paged on demand: scrolling up past the oldest
// loaded message asks for the page before it. File transfers (files.go)
// show below their contact's conversation while they run and for a while
// after; a hello also loads GET /v1/files, so transfers in flight show
// after a restart of the UI.
package tui
