// Package profile is natter's profile protocol, /natter/profile/1.0.0: a
// contact's display name, status message and avatar.
//
// Profiles are pulled, and only when they changed. Every presence push
// (protocols/presence) carries the sender's profile version; a receiver
// whose cached copy is older opens a profile stream:
//
//	contact A                                  owner B
//	  |<-- Presence{..., profile_version 7} ------|  (presence stream)
//	  |  cached version 5 < 7: fetch
//	  |-- Request{} ------------------------------>|  Allow(A)? else reset
//	  |<-- Profile{7, name, status, avatar, type} -|
//	  |  validate everything, cache, show
//
// After a change of its own profile a node pushes presence again, so
// contacts learn the new version at once.
//
// Only accepted contacts may fetch (Owner.Allow); anyone else's stream is
// reset and counted (natter_protocol_stream_errors_total{protocol=
// "profile",reason="refused"}). Fetches are rate-limited per peer
// (reason "rate_limited").
//
// Limits: a display name is at most MaxNameBytes and a status message
// MaxStatusBytes of UTF-8 without control characters; an avatar is a PNG
// or JPEG of at most AvatarSide x AvatarSide pixels and MaxAvatarBytes
// (PrepareAvatar makes one from a user's file; ValidateAvatar checks one
// from the network by decoding it, header first). A frame is at most
// MaxFrameSize on both sides. The fetcher resets the stream on anything
// it refuses (its caller counts it, reason "invalid"); the owner resets on
// any error. Relayed (limited) connections are allowed: an avatar is small
// enough for the relay's budget.
package profile
