package control

import "time"

// EventProfile: the profile of PeerID (a contact, or this node after a
// change made through any client) changed to Version.
const EventProfile = "profile"

// Profile is a user's profile: GET /v1/profile (ours), GET
// /v1/contacts/{contact}/profile (a contact's cached copy).
type Profile struct {
	PeerID string `json:"peer_id"`
	// Contact is our local name for the contact (contacts only).
	Contact string `json:"contact,omitempty"`
	// Name is the display name its owner chose; Status the status message
	// (the one presence carries).
	Name    string `json:"name"`
	Status  string `json:"status,omitempty"`
	Version uint64 `json:"version"`
	// Avatar is the image (base64 in JSON), at most 128x128 pixels;
	// AvatarType is "image/png" or "image/jpeg".
	Avatar       []byte `json:"avatar,omitempty"`
	AvatarType   string `json:"avatar_type,omitempty"`
	AvatarBytes  int    `json:"avatar_bytes,omitempty"`
	AvatarWidth  int    `json:"avatar_width,omitempty"`
	AvatarHeight int    `json:"avatar_height,omitempty"`
	// UpdatedAt is when it last changed (ours) or was fetched (a
	// contact's).
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// ProfileRequest is POST /v1/profile. Nil fields are left as they are.
// Avatar is a PNG or JPEG file's contents (base64 in JSON, at most 1 MiB),
// which the daemon checks and re-encodes; ClearAvatar removes it.
type ProfileRequest struct {
	Name        *string `json:"name,omitempty"`
	Status      *string `json:"status,omitempty"`
	Avatar      []byte  `json:"avatar,omitempty"`
	ClearAvatar bool    `json:"clear_avatar,omitempty"`
}
