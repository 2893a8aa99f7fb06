package control

import "time"

// States of one of our names on one rendezvous server
// (NameServerState.State).
const (
	// NameRegistered: the server holds the name for us until ReleaseAt;
	// the node renews it.
	NameRegistered = "registered"
	// NameTaken: another key holds the name (or one that looks like it)
	// on that server.
	NameTaken = "taken"
	// NameRefused: the server refused for another reason (Error says
	// which: too many names, clock, rate limit...).
	NameRefused = "refused"
	// NameError: the server could not be asked (Error says why); the node
	// tries again.
	NameError = "error"
	// NamePending: not tried on that server yet (it is not connected).
	NamePending = "pending"
	// NameReleased: (in the answer to a release) the server let the name
	// go.
	NameReleased = "released"
)

// EventKeyChange: a contact added by a directory name (Name, PeerID: the
// contact as stored) is no longer what that name points to; Warning says
// what the directory says now. natter keeps the contact's key.
const EventKeyChange = "key_change"

// NameRequest is POST /v1/names.
type NameRequest struct {
	Name string `json:"name"`
}

// NameServerState is one of our names on one rendezvous server.
type NameServerState struct {
	// Server is the rendezvous server's peer ID.
	Server string `json:"server"`
	State  string `json:"state"`
	// Renewed is when the server last accepted our record; ReleaseAt is
	// when it will release the name unless we renew it (its word).
	Renewed   time.Time `json:"renewed,omitzero"`
	ReleaseAt time.Time `json:"release_at,omitzero"`
	Error     string    `json:"error,omitempty"`
}

// OwnName is one of our names (GET /v1/names, POST /v1/names, DELETE
// /v1/names/{name}).
type OwnName struct {
	Name      string            `json:"name"`
	CreatedAt time.Time         `json:"created_at,omitzero"`
	Servers   []NameServerState `json:"servers"`
}

// NameLookup is GET /v1/directory/{name}: who holds a name, as the
// connected rendezvous servers say and as the node verified (the record is
// signed by PeerID's key).
type NameLookup struct {
	Name   string `json:"name"`
	PeerID string `json:"peer_id"`
	// Signed is when the holder signed the record (its last renewal).
	Signed time.Time `json:"signed"`
	// Servers are the rendezvous servers that answered with it; NotFound
	// those that do not know the name.
	Servers  []string `json:"servers"`
	NotFound []string `json:"not_found,omitempty"`
}
