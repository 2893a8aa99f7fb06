// Package control is the contract between a natter daemon and its clients
// (the CLI, the terminal UI, scripts): the JSON types of the control API and
// a client for it.
//
// The API is HTTP+JSON on a unix socket in the data dir (mode 0600, so only
// the owner can talk to the daemon). Every path starts with the API version
// (/v1/...). Errors come back as a non-2xx status and {"error": "..."}.
// Field names of these types are a contract: scripts depend on them, so
// fields may be added but never renamed or removed within v1.
package control

import "time"

// Version is the control API version prefix.
const Version = "v1"

// SocketName is the control socket's file name inside the data dir.
const SocketName = "control.sock"

// Path values of ContactStatus.Path.
const (
	PathDirect  = "direct"
	PathRelayed = "relayed"
	PathNone    = "none"
)

// Contact states (Contact.State, ContactStatus.State). Only accepted
// contacts chat and see each other's presence.
const (
	StateAccepted   = "accepted"
	StatePendingIn  = "pending_in"  // they asked us; natter contacts accept|reject
	StatePendingOut = "pending_out" // we asked them; waiting for their answer
	StateBlocked    = "blocked"
	// StateRejected appears only in contact events: a request was
	// rejected (ours by them, or theirs by us) and the entry is gone.
	StateRejected = "rejected"
	// StateWithdrawn appears only in contact events: the requester took
	// its request to us back and the entry is gone.
	StateWithdrawn = "withdrawn"
)

// Presence values. Contacts never see "invisible": it is shown to them as
// "offline".
const (
	PresenceOnline    = "online"
	PresenceAway      = "away"
	PresenceBusy      = "busy"
	PresenceInvisible = "invisible"
	PresenceOffline   = "offline"
)

// Status is GET /v1/status.
type Status struct {
	PeerID  string `json:"peer_id"`
	Name    string `json:"name"`
	Version string `json:"version"`
	// Presence is ours as we set it (online, away, busy, invisible);
	// AutoAway is true while presence.idle_away shows us away.
	Presence      string `json:"presence"`
	StatusMessage string `json:"status_message,omitempty"`
	AutoAway      bool   `json:"auto_away,omitempty"`
	// Reachability is what AutoNAT concluded: "public", "private" or
	// "unknown".
	Reachability string `json:"reachability"`
	// NATMapping reports UPnP/NAT-PMP port mapping on the home router.
	NATMapping NATMapping `json:"nat_mapping"`
	// ListenAddrs are the local listen addresses; ObservedAddrs what the
	// rendezvous servers see us as (our NAT's public side).
	ListenAddrs   []string           `json:"listen_addrs"`
	ObservedAddrs []string           `json:"observed_addrs"`
	Rendezvous    []RendezvousStatus `json:"rendezvous"`
	Contacts      []ContactStatus    `json:"contacts"`
	StartedAt     time.Time          `json:"started_at"`
}

// NATMapping is the state of UPnP/NAT-PMP port mapping.
type NATMapping struct {
	Enabled bool `json:"enabled"`
	// Found is true once a UPnP/NAT-PMP gateway was discovered.
	Found bool `json:"found"`
	// Mapped are external addresses the gateway mapped for us.
	Mapped []string `json:"mapped"`
}

// RendezvousStatus is the node's link with one rendezvous server.
type RendezvousStatus struct {
	PeerID    string `json:"peer_id"`
	Connected bool   `json:"connected"`
	// Transports are the transports of the open connections ("tcp",
	// "quic"): the node connects over both so both can be hole-punched.
	Transports []string `json:"transports"`
	// Reservation is "active" while the node holds a relay slot, "none"
	// otherwise.
	Reservation        string    `json:"reservation"`
	ReservationExpires time.Time `json:"reservation_expires,omitzero"`
	Registered         bool      `json:"registered"`
	RegistrationExpiry time.Time `json:"registration_expires,omitzero"`
	RTTMillis          float64   `json:"rtt_ms"`
	LastError          string    `json:"last_error,omitempty"`
}

// ContactStatus is one contact's link.
type ContactStatus struct {
	PeerID    string `json:"peer_id"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	// Path is "direct", "relayed" or "none".
	Path       string `json:"path"`
	RemoteAddr string `json:"remote_addr"`
	// Transport of the connection in use ("tcp", "quic", "relay").
	Transport string  `json:"transport"`
	RTTMillis float64 `json:"rtt_ms"`
	// DirectSince is when the current direct link was made.
	DirectSince time.Time `json:"direct_since,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// Unread counts messages from the contact not yet marked read;
	// Queued messages (and receipts) waiting in the outbox for it.
	Unread int `json:"unread"`
	Queued int `json:"queued"`
	// Presence is what the contact shows us: online, away, busy or
	// offline (also for contacts that are not accepted: they share
	// nothing). StatusMessage is theirs.
	Presence      string `json:"presence"`
	StatusMessage string `json:"status_message,omitempty"`
	// Warning is set when the directory name the contact was added by
	// now points to another key (natter keeps the contact's key).
	Warning string `json:"warning,omitempty"`
}

// Contact is an entry of GET /v1/contacts.
type Contact struct {
	PeerID     string    `json:"peer_id"`
	Name       string    `json:"name"`
	State      string    `json:"state"`
	Rendezvous []string  `json:"rendezvous,omitempty"`
	AddedAt    time.Time `json:"added_at"`
	// ReadReceipts overrides the node's chat.read_receipts for this
	// contact; absent: the default applies.
	ReadReceipts *bool `json:"read_receipts,omitempty"`
	// Note is the friend request's note (theirs for pending_in, ours for
	// pending_out).
	Note string `json:"note,omitempty"`
	// DirName is the directory name the contact was added by.
	DirName string `json:"dir_name,omitempty"`
	// Warning: see ContactStatus.Warning.
	Warning string `json:"warning,omitempty"`
}

// AcceptRequest is POST /v1/contacts/{contact}/accept: Name optionally
// names the new contact locally.
type AcceptRequest struct {
	Name string `json:"name,omitempty"`
}

// PresenceRequest is POST /v1/presence. State is online, away, busy or
// invisible; Message, if not nil, replaces the status message.
type PresenceRequest struct {
	State   string  `json:"state,omitempty"`
	Message *string `json:"message,omitempty"`
}

// ReceiptsRequest is POST /v1/contacts/{contact}/receipts. Mode is "on",
// "off" or "default".
type ReceiptsRequest struct {
	Mode string `json:"mode"`
}

// AddContactRequest is POST /v1/contacts. Target is a peer ID, an invite
// or a name registered in the rendezvous directory.
type AddContactRequest struct {
	Target string `json:"target"`
	Name   string `json:"name,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Identity is GET /v1/id.
type Identity struct {
	PeerID string `json:"peer_id"`
	Invite string `json:"invite"`
}

// PingResult is POST /v1/contacts/{contact}/ping.
type PingResult struct {
	PeerID     string  `json:"peer_id"`
	Path       string  `json:"path"`
	RemoteAddr string  `json:"remote_addr"`
	RTTMillis  float64 `json:"rtt_ms"`
}

// Message kinds.
const (
	KindText  = "text"
	KindNudge = "nudge"
	// KindFile is a file offer (see Message.File and GET /v1/files).
	KindFile = "file"
)

// Message statuses. Outgoing messages go queued -> sent -> delivered ->
// read (or, for a contact that is offline, queued -> stored -> delivered:
// see StatusStored and StatusFailed in mailbox.go); incoming ones are
// delivered, then read once marked read.
const (
	StatusQueued    = "queued"
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusRead      = "read"
)

// Message is one history entry (GET /v1/contacts/{contact}/messages, GET
// /v1/search, message events).
type Message struct {
	// ID is the message's UUIDv7.
	ID string `json:"id"`
	// PeerID and Contact name the conversation (the contact).
	PeerID  string `json:"peer_id"`
	Contact string `json:"contact"`
	// From is the sender's peer ID: ours or the contact's.
	From string `json:"from"`
	// Direction is "out" (we sent it) or "in".
	Direction string `json:"direction"`
	Kind      string `json:"kind"`
	Text      string `json:"text"`
	// Seq is the sender's per-conversation sequence number.
	Seq uint64 `json:"seq"`
	// SentAt is the sender's clock; ReceivedAt ours (incoming only).
	SentAt     time.Time `json:"sent_at"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	Status     string    `json:"status"`
	// Via is how an outgoing message reached the contact: direct,
	// relayed or mailbox.
	Via string `json:"via,omitempty"`
	// Reason says why a failed message failed.
	Reason string `json:"reason,omitempty"`
	// File describes the offered file of a message of kind "file" (Text
	// is its note).
	File *FileRef `json:"file,omitempty"`
}

// SendRequest is POST /v1/contacts/{contact}/messages.
type SendRequest struct {
	// Kind is "text" (default) or "nudge".
	Kind string `json:"kind,omitempty"`
	Text string `json:"text,omitempty"`
	// Wait, a duration such as "30s", holds the answer until the message
	// is delivered or that long has passed. The message is queued either
	// way; the answer's status says which happened.
	Wait string `json:"wait,omitempty"`
}

// ReadResult is POST /v1/contacts/{contact}/read.
type ReadResult struct {
	// Marked is how many messages were newly marked read.
	Marked int `json:"marked"`
	// Receipts is true if the contact is told (read receipts on).
	Receipts bool `json:"receipts"`
}

// TypingRequest is POST /v1/contacts/{contact}/typing. It is best effort:
// sent now if the contact is connected, dropped otherwise.
type TypingRequest struct {
	Typing bool `json:"typing"`
}

// TypingResult says whether the typing notice was sent.
type TypingResult struct {
	Sent bool `json:"sent"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
}

// Event types of GET /v1/events, which streams one JSON Event per line.
// Clients must ignore types they do not know.
const (
	// EventHello is the first event of every stream.
	EventHello = "hello"
	// EventRendezvous: a rendezvous link went up or down (Connected).
	EventRendezvous = "rendezvous"
	// EventLink: a contact's link changed (Connected, Path).
	EventLink = "link"
	// EventMessage: a message entered the history (Message): received,
	// or sent by any client of this daemon.
	EventMessage = "message"
	// EventStatus: our messages IDs moved to Status (sent, stored,
	// delivered, read, failed); Path says how they travelled when
	// delivered (direct, relayed, mailbox); Reason says why they failed.
	EventStatus = "status"
	// EventTyping: the contact PeerID started or stopped typing (Typing).
	EventTyping = "typing"
	// EventNudge: the contact nudged us (also a message of kind nudge):
	// shake the window.
	EventNudge = "nudge"
	// EventContact: a contact's State changed (a friend request arrived
	// with Note, was accepted or rejected, a peer was blocked).
	EventContact = "contact"
	// EventPresence: the contact's Presence or StatusMessage changed.
	EventPresence = "presence"
	// EventRead: the user marked the conversation with PeerID read (from
	// any client): its unread count is now 0.
	EventRead = "read"
	// EventSelf: our own Presence (as the user set it, like
	// Status.Presence), StatusMessage or AutoAway (contacts see "away")
	// changed, through any client or by the idle timer.
	EventSelf = "self"
)

// Event is one line of the event stream.
type Event struct {
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	PeerID    string    `json:"peer_id,omitempty"`
	Name      string    `json:"name,omitempty"`
	Connected bool      `json:"connected,omitempty"`
	Path      string    `json:"path,omitempty"`
	Message   *Message  `json:"message,omitempty"`
	IDs       []string  `json:"ids,omitempty"`
	Status    string    `json:"status,omitempty"`
	Typing    *bool     `json:"typing,omitempty"`
	State     string    `json:"state,omitempty"`
	Note      string    `json:"note,omitempty"`
	Presence  string    `json:"presence,omitempty"`
	// StatusMessage accompanies presence and self events.
	StatusMessage string `json:"status_message,omitempty"`
	// AutoAway accompanies self events.
	AutoAway bool `json:"auto_away,omitempty"`
	// Warning accompanies key_change events; Version profile events.
	Warning string `json:"warning,omitempty"`
	Version uint64 `json:"version,omitempty"`
	// Reason accompanies status events to "failed".
	Reason string `json:"reason,omitempty"`
	// Transfer accompanies file events.
	Transfer *Transfer `json:"transfer,omitempty"`
}
